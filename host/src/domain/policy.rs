//! Asking the plugins: auth policies for every action, block rules for every
//! new version. Runs after the built-in rules (maintainers, admins, readonly
//! tokens), which a plugin can only tighten.

use std::net::IpAddr;

use crate::domain::App;
use crate::plugins::{types, Refusal};

use super::{Error, Identity, Result};

pub use types::{Action, Origin};

fn refusal(r: Refusal) -> Error {
    match r {
        Refusal::Denied { plugin, reason } => Error::Forbidden(format!("denied by plugin {plugin}: {reason}")),
        Refusal::Failed { plugin, message } => {
            Error::Unavailable(format!("plugin {plugin} failed ({message}); refusing because its on_error is deny"))
        }
    }
}

fn package_ref(name: &str, version: Option<&str>) -> types::PackageRef {
    types::PackageRef {
        name: name.to_string(),
        scope: name.strip_prefix('@').and_then(|n| n.split_once('/')).map(|(s, _)| format!("@{s}")),
        version: version.map(str::to_string),
    }
}

/// Asks the auth-policy plugins whether `identity` (or an anonymous caller from `ip`) may do `action`.
pub async fn authorize(
    app: &App,
    action: Action,
    package: Option<(&str, Option<&str>)>,
    identity: Option<&Identity>,
    ip: IpAddr,
) -> Result<()> {
    if !app.plugins.has_auth_policies() {
        return Ok(());
    }
    let caller = types::Caller {
        user: identity.map(|i| i.name.clone()),
        admin: identity.is_some_and(|i| i.is_admin),
        token_readonly: identity.is_some_and(|i| i.readonly),
        token_automation: identity.is_some_and(|i| i.automation),
        client_ip: ip.to_string(),
    };
    // Boxed: a plugin call's future is large, and every read's future would carry it.
    Box::pin(app.plugins.authorize(action, package.map(|(n, v)| package_ref(n, v)), caller)).await.map_err(refusal)
}

/// The same for an authenticated caller, whose address is known.
pub async fn authorize_caller(app: &App, action: Action, package: Option<(&str, Option<&str>)>, caller: &Identity) -> Result<()> {
    authorize(app, action, package, Some(caller), caller.client_ip).await
}

/// Asks the block-rule plugins about a version about to be stored.
pub async fn check_version(
    app: &App,
    name: &str,
    version: &str,
    manifest_json: String,
    tarball: &[u8],
    origin: types::Origin,
) -> Result<()> {
    if !app.plugins.has_block_rules() {
        return Ok(());
    }
    let files = list_files(tarball)?;
    let info = types::VersionInfo {
        name: name.to_string(),
        version: version.to_string(),
        manifest_json,
        tarball_size: tarball.len() as u64,
        files,
        origin,
    };
    app.plugins.check_version(info).await.map_err(|r| match r {
        Refusal::Denied { plugin, reason } => Error::Forbidden(format!("blocked by plugin {plugin}: {reason}")),
        failed => refusal(failed),
    })
}

/// The files of a gzipped tarball, with their sizes.
pub fn list_files(tarball: &[u8]) -> Result<Vec<types::FileEntry>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tarball));
    let entries = archive.entries().map_err(|e| Error::Invalid(format!("the tarball cannot be read: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::Invalid(format!("the tarball cannot be read: {e}")))?;
        let path = entry.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        files.push(types::FileEntry { path, size: entry.size() });
        if files.len() > 100_000 {
            return Err(Error::Invalid("the tarball has more than 100000 entries".into()));
        }
    }
    Ok(files)
}
