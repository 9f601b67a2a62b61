"""{{name}} (hook-formatter): turns a registry event into a chat message,
`{"channel": ..., "text": "alice published left-pad@1.0.0"}`."""

import json

import wit_world
from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import Event, Header, Outbound

# [plugins.config] channel = "#releases"
CONFIG: dict = {}

VERBS = {
    "package:publish": "published",
    "package:unpublish": "unpublished",
    "package:deprecate": "deprecated",
    "package:dist-tag": "moved a dist-tag of",
    "package:owner": "changed the owners of",
}


class WitWorld(wit_world.WitWorld):
    def init(self) -> None:
        channel = json.loads(host.config()).get("channel")
        if not isinstance(channel, str):
            raise Err("`channel` (a string) is missing")
        CONFIG["channel"] = channel


class Formatter(exports.Formatter):
    def format(self, event: Event) -> Outbound:
        who = event.actor or "someone"
        version = f"@{event.version}" if event.version else ""
        text = f"{who} {VERBS.get(event.kind, event.kind)} {event.package}{version}"
        body = json.dumps({"channel": CONFIG["channel"], "text": text}, separators=(",", ":"))
        return Outbound(body.encode(), "application/json", [Header("x-chat-source", "cairn")])
