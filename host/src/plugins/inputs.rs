//! A plugin call's input written as data (JSON or TOML), the same for
//! `POST /-/admin/plugins/:name/test` and `cairn plugin test`, converted to
//! the host types of `types`.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;

use super::types;

/// An auth-policy call: `{"action", "package", "version", "user", "admin", "readonly", "automation", "ip"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthInput {
    pub action: String,
    pub package: Option<String>,
    pub version: Option<String>,
    pub user: Option<String>,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub readonly: bool,
    #[serde(default)]
    pub automation: bool,
    pub ip: Option<IpAddr>,
}

impl AuthInput {
    /// The call's arguments; `ip` defaults to `client_ip`.
    pub fn into_call(self, client_ip: IpAddr) -> Result<(types::Action, Option<types::PackageRef>, types::Caller), String> {
        let action = action(&self.action)?;
        let package = self.package.map(|n| types::PackageRef {
            scope: n.strip_prefix('@').and_then(|x| x.split_once('/')).map(|(s, _)| format!("@{s}")),
            name: n,
            version: self.version,
        });
        let caller = types::Caller {
            user: self.user,
            admin: self.admin,
            token_readonly: self.readonly,
            token_automation: self.automation,
            client_ip: self.ip.unwrap_or(client_ip).to_string(),
        };
        Ok((action, package, caller))
    }
}

fn action(name: &str) -> Result<types::Action, String> {
    use types::Action::*;
    Ok(match name {
        "read" => Read,
        "publish" => Publish,
        "unpublish" => Unpublish,
        "deprecate" => Deprecate,
        "dist-tag" => DistTag,
        "owner" => Owner,
        "token" => Token,
        "sync" => Sync,
        "block" => Block,
        "registry-admin" => RegistryAdmin,
        "hook-admin" => HookAdmin,
        other => return Err(format!("unknown action {other:?}")),
    })
}

/// A block-rule call: `{"manifest": {name, version, ...}, "files": [[path, size]], "tarball_size", "origin"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockInput {
    pub manifest: Value,
    #[serde(default)]
    pub files: Vec<(String, u64)>,
    #[serde(default)]
    pub tarball_size: u64,
    /// `publish` (default) or `sync`.
    #[serde(default)]
    pub origin: Option<String>,
}

impl BlockInput {
    pub fn into_version(self) -> Result<types::VersionInfo, String> {
        let origin = match self.origin.as_deref() {
            None | Some("publish") => types::Origin::Publish,
            Some("sync") => types::Origin::Sync,
            Some(other) => return Err(format!("unknown origin {other:?} (publish or sync)")),
        };
        Ok(types::VersionInfo {
            name: self.manifest["name"].as_str().unwrap_or("").to_string(),
            version: self.manifest["version"].as_str().unwrap_or("").to_string(),
            manifest_json: self.manifest.to_string(),
            tarball_size: self.tarball_size,
            files: self.files.into_iter().map(|(path, size)| types::FileEntry { path, size }).collect(),
            origin,
        })
    }
}

/// An upstream-adapter call: `{"package"}` (its packument), `{"package", "version", "url"}`
/// (a tarball) or `{"binary_path"}` (a binary source's directory).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamInput {
    #[serde(default)]
    pub package: String,
    pub version: Option<String>,
    pub url: Option<String>,
    /// A directory of the plugin's binary source (0.1.1) to list instead.
    pub binary_path: Option<String>,
}

/// A hook-formatter call: `{"kind", "package", "version", "actor", "payload", "document"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookInput {
    pub kind: String,
    pub package: String,
    pub version: Option<String>,
    pub actor: Option<String>,
    #[serde(default)]
    pub payload: Value,
    /// The package document a rich formatter gets (0.1.1).
    pub document: Option<Value>,
}

impl HookInput {
    /// The event, and a context as if `hook_owner` had a package hook on it.
    pub fn into_event(self, hook_owner: &str, public_url: &str, time: String) -> (types::Event, types::HookContext) {
        let registry_url = public_url.trim_end_matches('/').to_string();
        let context = types::HookContext {
            delivery_id: "test".into(),
            attempt: 1,
            hook_id: "test".into(),
            hook_owner: hook_owner.to_string(),
            hook_type: "package".into(),
            hook_name: self.package.clone(),
            package_url: format!("{registry_url}/{}", self.package),
            registry_url,
            package_json: self.document.map(|d| d.to_string()),
        };
        let event = types::Event {
            kind: self.kind,
            package: self.package,
            version: self.version,
            actor: self.actor,
            time,
            payload_json: self.payload.to_string(),
        };
        (event, context)
    }
}
