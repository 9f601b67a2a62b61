//! `block_rules.wasm` (block-rule): blocks package versions by name, license
//! or install scripts, on publish and on sync.
//!
//! ```toml
//! [plugins.config]
//! # Regular expressions (Rust `regex` syntax), searched anywhere in the package
//! # name: anchor them with ^ and $ to match whole names.
//! name_patterns = ["^evil-", "^@bad/"]
//! # License ids, compared case-insensitively with the manifest's `license`
//! # (also the old `{ "type": ... }` and `licenses: [...]` forms; in an SPDX
//! # expression such as `(MIT OR GPL-3.0)` any listed id blocks).
//! licenses = ["GPL-3.0", "AGPL-3.0-only"]
//! # Block versions that run code at install: a preinstall, install or
//! # postinstall script, or a binding.gyp that npm builds with node-gyp.
//! block_install_scripts = true
//! ```
//!
//! The first rule that matches gives the reason, which names it.

use cairn_plugin_sdk::block_rule::{Guest, Rule, Verdict, VersionInfo};
use cairn_plugin_sdk::{log, Loaded};
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    name_patterns: Vec<String>,
    #[serde(default)]
    licenses: Vec<String>,
    #[serde(default)]
    block_install_scripts: bool,
}

struct Rules {
    name_patterns: Vec<Regex>,
    /// (lower-cased, as configured)
    licenses: Vec<(String, String)>,
    block_install_scripts: bool,
}

static RULES: Loaded<Rules> = Loaded::new();

fn load() -> Result<Rules, String> {
    let config: Config = cairn_plugin_sdk::config()?;
    let name_patterns = config
        .name_patterns
        .iter()
        .map(|pattern| Regex::new(pattern).map_err(|e| format!("block-rules: invalid regex `{pattern}` in `name_patterns`: {e}")))
        .collect::<Result<_, _>>()?;
    let licenses = config
        .licenses
        .iter()
        .map(|id| {
            let id = id.trim();
            if id.is_empty() {
                Err("block-rules: empty license id in `licenses`".to_string())
            } else {
                Ok((id.to_ascii_lowercase(), id.to_string()))
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(Rules { name_patterns, licenses, block_install_scripts: config.block_install_scripts })
}

/// The license strings a manifest declares: `license` as a string or as
/// `{ "type": ... }`, and the old `licenses: [{ "type": ... }]` list.
fn declared_licenses(manifest: &Value) -> Vec<&str> {
    fn text(value: &Value) -> Option<&str> {
        match value {
            Value::String(s) => Some(s),
            Value::Object(o) => o.get("type").and_then(Value::as_str),
            _ => None,
        }
    }
    let mut out: Vec<&str> = manifest.get("license").and_then(text).into_iter().collect();
    if let Some(Value::Array(list)) = manifest.get("licenses") {
        out.extend(list.iter().filter_map(text));
    }
    out
}

/// Whether `license` (a plain id or an SPDX expression) names `blocked`
/// (lower-case), ignoring case.
fn license_matches(license: &str, blocked: &str) -> bool {
    let license = license.trim().to_ascii_lowercase();
    license == blocked || license.split(|c: char| c.is_whitespace() || c == '(' || c == ')').any(|term| term == blocked)
}

/// The install-time script the manifest would run, if any.
fn install_script(manifest: &Value, version: &VersionInfo) -> Option<String> {
    let scripts = manifest.get("scripts").and_then(Value::as_object);
    for hook in ["preinstall", "install", "postinstall"] {
        if let Some(script) = scripts.and_then(|s| s.get(hook)) {
            let shown = script.as_str().map(str::trim).unwrap_or("");
            return Some(if shown.is_empty() {
                format!("a {hook} script")
            } else {
                format!("a {hook} script (`{}`)", truncate(shown, 80))
            });
        }
    }
    // npm runs `node-gyp rebuild` for a package with a top-level binding.gyp
    // unless it has its own (pre)install script or says `gypfile: false`.
    let gyp = version.files.iter().any(|f| f.path.split_once('/').map(|(_, rest)| rest) == Some("binding.gyp"));
    if gyp && manifest.get("gypfile") != Some(&Value::Bool(false)) {
        return Some("a binding.gyp (npm runs `node-gyp rebuild` at install)".to_string());
    }
    None
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_string(),
    }
}

fn check(rules: &Rules, version: &VersionInfo) -> Verdict {
    let id = format!("{}@{}", version.name, version.version);
    if let Some(pattern) = rules.name_patterns.iter().find(|p| p.is_match(&version.name)) {
        return Verdict::Block(format!("{id} blocked by rule name_patterns: package name matches `{}`", pattern.as_str()));
    }
    if rules.licenses.is_empty() && !rules.block_install_scripts {
        return Verdict::Accept;
    }
    let manifest: Value = match serde_json::from_str(&version.manifest_json) {
        Ok(manifest) => manifest,
        Err(e) => return Verdict::Block(format!("{id} blocked: its manifest is not valid JSON ({e})")),
    };
    for license in declared_licenses(&manifest) {
        if let Some((_, blocked)) = rules.licenses.iter().find(|(b, _)| license_matches(license, b)) {
            return Verdict::Block(if license.trim().eq_ignore_ascii_case(blocked) {
                format!("{id} blocked by rule licenses: license `{license}` is blocked")
            } else {
                format!("{id} blocked by rule licenses: license `{license}` includes blocked `{blocked}`")
            });
        }
    }
    if rules.block_install_scripts {
        if let Some(script) = install_script(&manifest, version) {
            return Verdict::Block(format!("{id} blocked by rule block_install_scripts: it has {script}"));
        }
    }
    Verdict::Accept
}

struct BlockRules;

impl Guest for BlockRules {
    fn init() -> Result<(), String> {
        let rules = RULES.get_or_load(load)?;
        log::info(format!(
            "{} name pattern(s), {} blocked license(s), install scripts {}",
            rules.name_patterns.len(),
            rules.licenses.len(),
            if rules.block_install_scripts { "blocked" } else { "allowed" }
        ));
        Ok(())
    }
}

impl Rule for BlockRules {
    fn check(version: VersionInfo) -> Verdict {
        match RULES.get_or_load(load) {
            Ok(rules) => check(rules, &version),
            Err(e) => Verdict::Block(e),
        }
    }
}

cairn_plugin_sdk::export_block_rule!(BlockRules);

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_sdk::block_rule::{FileEntry, Origin};

    fn rules() -> Rules {
        Rules {
            name_patterns: vec![Regex::new("^evil-").unwrap()],
            licenses: vec![("gpl-3.0".into(), "GPL-3.0".into())],
            block_install_scripts: true,
        }
    }

    fn version(name: &str, manifest: &str, files: &[&str]) -> VersionInfo {
        VersionInfo {
            name: name.into(),
            version: "1.0.0".into(),
            manifest_json: manifest.into(),
            tarball_size: 1,
            files: files.iter().map(|p| FileEntry { path: p.to_string(), size: 1 }).collect(),
            origin: Origin::Publish,
        }
    }

    fn reason(v: &VersionInfo) -> Option<String> {
        match check(&rules(), v) {
            Verdict::Accept => None,
            Verdict::Block(reason) => Some(reason),
        }
    }

    #[test]
    fn each_rule() {
        assert!(reason(&version("evil-x", "{}", &[])).unwrap().contains("name_patterns"));
        assert!(reason(&version("x", r#"{"license":"gpl-3.0"}"#, &[])).unwrap().contains("licenses"));
        assert!(reason(&version("x", r#"{"license":{"type":"GPL-3.0"}}"#, &[])).is_some());
        assert!(reason(&version("x", r#"{"license":"(MIT OR GPL-3.0)"}"#, &[])).is_some());
        assert!(reason(&version("x", r#"{"license":"GPL-3.0-or-later"}"#, &[])).is_none());
        let scripts = reason(&version("x", r#"{"scripts":{"install":"node x"}}"#, &[])).unwrap();
        assert!(scripts.contains("block_install_scripts") && scripts.contains("install"), "{scripts}");
        assert!(reason(&version("x", r#"{"scripts":{"test":"x"}}"#, &[])).is_none());
        assert!(reason(&version("x", "{}", &["package/binding.gyp"])).is_some());
        assert!(reason(&version("x", r#"{"gypfile":false}"#, &["package/binding.gyp"])).is_none());
        assert!(reason(&version("ok", r#"{"license":"MIT"}"#, &["package/index.js"])).is_none());
    }
}
