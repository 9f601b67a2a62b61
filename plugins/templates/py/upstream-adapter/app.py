"""{{name}} (upstream-adapter): serves the packages listed in its
configuration, whose tarballs it downloads through the host's `fetch` (only
from hosts in the plugin's `allowed_hosts`). Replace `packument` with a call
to your own source: `fetch` a listing and build the document."""

import json
from typing import Optional

import wit_world
from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import fetch, host
from wit_world.imports.types import HttpRequest

# [plugins.config.packages.NAME] "1.0.0" = "https://host/NAME-1.0.0.tgz"
PACKAGES: dict = {}


class WitWorld(wit_world.WitWorld):
    def init(self) -> None:
        packages = json.loads(host.config()).get("packages", {})
        if not isinstance(packages, dict) or not all(isinstance(v, dict) for v in packages.values()):
            raise Err("`packages` must map names to {version = url}")
        PACKAGES.update(packages)


class Adapter(exports.Adapter):
    def packument(self, name: str) -> Optional[str]:
        versions = PACKAGES.get(name)
        if versions is None:
            return None
        docs = {v: {"name": name, "version": v, "dist": {"tarball": url}} for v, url in versions.items()}
        latest = sorted(versions)[-1]
        return json.dumps({"name": name, "dist-tags": {"latest": latest}, "versions": docs})

    def tarball(self, name: str, version: str, url: str) -> bytes:
        # A refused or failed request raises Err, which answers the call with that error.
        response = fetch.fetch(HttpRequest("GET", url, [], None))
        if response.status != 200:
            raise Err(f"GET {url}: status {response.status}")
        return response.body
