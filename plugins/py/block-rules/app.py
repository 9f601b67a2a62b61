"""`block_rules_py.wasm` (block-rule): blocks package versions by name,
license or install scripts, on publish and on sync. The Python twin of the
Rust `block_rules.wasm`: same configuration, same verdicts, same reasons.

    [plugins.config]
    # Regular expressions (Python `re` syntax), searched anywhere in the
    # package name: anchor them with ^ and $ to match whole names.
    name_patterns = ["^evil-", "^@bad/"]
    # License ids, compared case-insensitively with the manifest's `license`
    # (also the old `{ "type": ... }` and `licenses: [...]` forms; in an SPDX
    # expression such as `(MIT OR GPL-3.0)` any listed id blocks).
    licenses = ["GPL-3.0", "AGPL-3.0-only"]
    # Block versions that run code at install: a preinstall, install or
    # postinstall script, or a binding.gyp that npm builds with node-gyp.
    block_install_scripts = true

The first rule that matches gives the reason, which names it.
"""

# world: block-rule

import json
import re

import wit_world
from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import Verdict, Verdict_Accept, Verdict_Block, VersionInfo

KEYS = {"name_patterns", "licenses", "block_install_scripts"}


class Rules:
    def __init__(self, config: dict):
        unknown = sorted(set(config) - KEYS)
        if unknown:
            raise ValueError(f"unknown field `{unknown[0]}`, expected one of {', '.join(sorted(KEYS))}")
        self.name_patterns = [compile_pattern(p) for p in strings(config, "name_patterns")]
        self.licenses = []
        for id in strings(config, "licenses"):
            if not id.strip():
                raise ValueError("block-rules: empty license id in `licenses`")
            self.licenses.append((id.strip().lower(), id.strip()))
        self.block_install_scripts = config.get("block_install_scripts", False)
        if not isinstance(self.block_install_scripts, bool):
            raise ValueError("`block_install_scripts` must be true or false")


def strings(config: dict, key: str) -> list:
    value = config.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"`{key}` must be a list of strings")
    return value


def compile_pattern(pattern: str):
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ValueError(f"block-rules: invalid regex `{pattern}` in `name_patterns`: {e}")


def declared_licenses(manifest: dict) -> list:
    """`license` as a string or `{ "type": ... }`, and the old `licenses` list."""

    def text(value):
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and isinstance(value.get("type"), str):
            return value["type"]
        return None

    found = [text(manifest.get("license"))]
    if isinstance(manifest.get("licenses"), list):
        found += [text(v) for v in manifest["licenses"]]
    return [f for f in found if f is not None]


def license_matches(license: str, blocked: str) -> bool:
    """Whether `license` (an id or an SPDX expression) names `blocked` (lower-case)."""
    license = license.strip().lower()
    return license == blocked or blocked in re.split(r"[\s()]", license)


def install_script(manifest: dict, version: VersionInfo):
    scripts = manifest.get("scripts")
    scripts = scripts if isinstance(scripts, dict) else {}
    for hook in ["preinstall", "install", "postinstall"]:
        if hook in scripts:
            shown = scripts[hook].strip() if isinstance(scripts[hook], str) else ""
            return f"a {hook} script (`{truncate(shown, 80)}`)" if shown else f"a {hook} script"
    # npm runs `node-gyp rebuild` for a package with a top-level binding.gyp
    # unless it has its own (pre)install script or says `gypfile: false`.
    gyp = any(f.path.partition("/")[1] and f.path.partition("/")[2] == "binding.gyp" for f in version.files)
    if gyp and manifest.get("gypfile") is not False:
        return "a binding.gyp (npm runs `node-gyp rebuild` at install)"
    return None


def truncate(s: str, max: int) -> str:
    return s[:max] + "..." if len(s) > max else s


def check(rules: Rules, version: VersionInfo) -> Verdict:
    id = f"{version.name}@{version.version}"
    for pattern in rules.name_patterns:
        if pattern.search(version.name):
            return Verdict_Block(f"{id} blocked by rule name_patterns: package name matches `{pattern.pattern}`")
    if not rules.licenses and not rules.block_install_scripts:
        return Verdict_Accept()
    try:
        manifest = json.loads(version.manifest_json)
    except ValueError as e:
        return Verdict_Block(f"{id} blocked: its manifest is not valid JSON ({e})")
    if not isinstance(manifest, dict):
        manifest = {}
    for license in declared_licenses(manifest):
        for lower, blocked in rules.licenses:
            if license_matches(license, lower):
                if license.strip().lower() == lower:
                    return Verdict_Block(f"{id} blocked by rule licenses: license `{license}` is blocked")
                return Verdict_Block(f"{id} blocked by rule licenses: license `{license}` includes blocked `{blocked}`")
    if rules.block_install_scripts:
        script = install_script(manifest, version)
        if script:
            return Verdict_Block(f"{id} blocked by rule block_install_scripts: it has {script}")
    return Verdict_Accept()


RULES = None


def load() -> Rules:
    global RULES
    if RULES is None:
        RULES = Rules(json.loads(host.config()))
    return RULES


class WitWorld(wit_world.WitWorld):
    def init(self) -> None:
        try:
            rules = load()
        except ValueError as e:
            raise Err(str(e))
        scripts = "blocked" if rules.block_install_scripts else "allowed"
        host.log(
            host.Level.INFO,
            f"{len(rules.name_patterns)} name pattern(s), {len(rules.licenses)} blocked license(s), install scripts {scripts}",
        )


class Rule(exports.Rule):
    def check(self, version: VersionInfo) -> Verdict:
        try:
            return check(load(), version)
        except ValueError as e:
            return Verdict_Block(str(e))
