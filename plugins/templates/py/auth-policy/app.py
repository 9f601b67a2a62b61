"""{{name}} (auth-policy): only the users listed for a scope may publish in it.
Everything else is allowed (Cairn's own permission checks still apply)."""

import json
from typing import Optional

import wit_world
from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import Action, Caller, Decision, Decision_Allow, Decision_Deny, PackageRef

# [plugins.config] publishers = { "@acme" = ["alice"] }
PUBLISHERS: dict = {}


class WitWorld(wit_world.WitWorld):
    def init(self) -> None:
        publishers = json.loads(host.config()).get("publishers", {})
        if not isinstance(publishers, dict) or not all(isinstance(u, list) for u in publishers.values()):
            raise Err("`publishers` must map scopes to lists of users")
        PUBLISHERS.update(publishers)
        host.log(host.Level.INFO, f"{len(PUBLISHERS)} scope(s) restricted")


class Policy(exports.Policy):
    def authorize(self, action: Action, package: Optional[PackageRef], caller: Caller) -> Decision:
        users = PUBLISHERS.get(package.scope) if package else None
        if users is None or action != Action.PUBLISH or caller.user in users:
            return Decision_Allow()
        return Decision_Deny(f"only {', '.join(users)} may publish in {package.scope}")
