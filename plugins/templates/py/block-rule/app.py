"""{{name}} (block-rule): blocks package versions whose install scripts use
one of the configured words (say `curl` or `wget`), on publish and on sync."""

import json

import wit_world
from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import Verdict, Verdict_Accept, Verdict_Block, VersionInfo

# [plugins.config] words = ["curl", "wget"]
WORDS: list = []


class WitWorld(wit_world.WitWorld):
    def init(self) -> None:
        words = json.loads(host.config()).get("words", [])
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise Err("`words` must be a list of strings")
        WORDS.extend(words)
        host.log(host.Level.INFO, f"blocking install scripts that use {', '.join(WORDS)}")


class Rule(exports.Rule):
    def check(self, version: VersionInfo) -> Verdict:
        scripts = json.loads(version.manifest_json).get("scripts") or {}
        for hook in ["preinstall", "install", "postinstall"]:
            script = scripts.get(hook) or ""
            for word in WORDS:
                if word in script:
                    return Verdict_Block(f"{version.name}@{version.version}: its {hook} script uses {word}")
        return Verdict_Accept()
