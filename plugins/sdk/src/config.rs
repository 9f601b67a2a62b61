//! The plugin's configuration: the `[plugins.config]` table of its entry in
//! Cairn's configuration file, handed over by the host as a JSON object.

use serde::de::DeserializeOwned;

use crate::auth_policy::cairn::plugin::host;

/// Parses the whole configuration table into `T`.
///
/// A plugin with no table gets `{}`, so give optional settings
/// `#[serde(default)]`. The error names the offending key, e.g.
/// ``invalid plugin configuration at `publishers.@acme[0]`: invalid type: integer `5`, expected a string``;
/// return it from `init` to refuse the plugin with that message. Add
/// `#[serde(deny_unknown_fields)]` to catch misspelt keys.
pub fn config<T: DeserializeOwned>() -> Result<T, String> {
    parse(&host::config(), None)
}

/// Parses one key of the configuration table into `T`; `Ok(None)` when the
/// key is absent.
pub fn config_get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, String> {
    match host::config_get(key) {
        None => Ok(None),
        Some(json) => parse(&json, Some(key)).map(Some),
    }
}

/// Parses `json` (the host's text) into `T`, naming the failing path in the
/// error. `key` prefixes the path when `json` is one key's value.
pub fn parse<T: DeserializeOwned>(json: &str, key: Option<&str>) -> Result<T, String> {
    let json = match json.trim() {
        "" | "null" if key.is_none() => "{}",
        _ => json,
    };
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let at = match (key, path.as_str()) {
            (None, ".") => String::new(),
            (None, path) => format!(" at `{path}`"),
            (Some(key), ".") => format!(" at `{key}`"),
            (Some(key), path) => format!(" at `{key}.{path}`"),
        };
        // The position in the host's JSON means nothing to whoever wrote the
        // TOML: keep the message only.
        let message = e.into_inner().to_string();
        let message = match message.rfind(" at line ") {
            Some(i) => &message[..i],
            None => &message,
        };
        format!("invalid plugin configuration{at}: {message}")
    })
}
