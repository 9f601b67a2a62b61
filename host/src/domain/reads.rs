//! The one way in for reads: every route that shows something about a package
//! (packument, version, tarball, dist-tags, collaborators, download counts,
//! blocks, sync tasks and their logs)
//! comes through here, and lists (search, `_changes`, stars) are filtered by
//! [`readable`]. The order is always the same: authorize (the auth-policy
//! plugins are asked about `read`), then look up here, then ask the upstream
//! (proxy mode). A refused caller therefore gets the same answer for a package
//! that exists and one that does not, and never makes Cairn contact an upstream.

use std::net::IpAddr;
use std::sync::Arc;

use futures_util::future::join_all;
use serde_json::Value;

use crate::blob::Blob;
use crate::domain::App;

use super::packages::refuse_blocked;
use super::packument::{self, resolve_spec, Cached, Lookup};
use super::policy::{self, Action};
use super::{names, packages, proxy, Error, Identity, Result};

/// Who reads: the authenticated caller, if any, and the address the request came from.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    pub identity: Option<&'a Identity>,
    pub ip: IpAddr,
}

impl<'a> Reader<'a> {
    pub fn new(identity: Option<&'a Identity>, ip: IpAddr) -> Self {
        Reader { identity, ip }
    }
}

/// Plugin calls in flight at once when a list is filtered.
const BATCH_PARALLELISM: usize = 8;

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("package {name} not found"))
}

/// Whether `name` could be a package at all (reads of names that never could
/// are simply not found, before anything is asked or looked up).
fn plausible(name: &str) -> bool {
    !(name.is_empty()
        || name.len() > names::MAX_NAME_LEN
        || name.split('/').any(|p| p.is_empty() || p == "." || p == "..")
        || name.matches('/').count() > 1
        || name.chars().any(char::is_control))
}

/// Asks the auth-policy plugins whether `reader` may read `name` (at `version`).
pub async fn authorize(app: &App, reader: Reader<'_>, name: &str, version: Option<&str>) -> Result<()> {
    policy::authorize(app, Action::Read, Some((name, version)), reader.identity, reader.ip).await
}

/// The checks every single-package read starts with: a plausible name, then the policy.
async fn admit(app: &App, reader: Reader<'_>, name: &str, version: Option<&str>) -> Result<()> {
    if !plausible(name) {
        return Err(not_found(name));
    }
    authorize(app, reader, name, version).await
}

/// The names of `names` that `reader` may read, in their order (duplicates
/// kept). Asks the plugins once per distinct name, a few at a time; a refusal
/// or a failed plugin hides the name. Without auth-policy plugins, all of them.
pub async fn readable(app: &App, reader: Reader<'_>, names: Vec<String>) -> Result<Vec<String>> {
    if !app.plugins.has_auth_policies() || names.is_empty() {
        return Ok(names);
    }
    let mut distinct: Vec<&str> = names.iter().map(String::as_str).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let mut allowed = std::collections::HashSet::new();
    for chunk in distinct.chunks(BATCH_PARALLELISM) {
        let verdicts = join_all(chunk.iter().map(|name| authorize(app, reader, name, None))).await;
        for (name, verdict) in chunk.iter().zip(verdicts) {
            match verdict {
                Ok(()) => {
                    allowed.insert(name.to_string());
                }
                Err(Error::Forbidden(_) | Error::Unavailable(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(names.into_iter().filter(|n| allowed.contains(n)).collect())
}

/// The packument of `name`: authorized, then from storage (the cache), then,
/// in proxy mode, from the upstream. `fresh` skips the cache (npm's `?write=true`).
pub async fn packument(app: &App, reader: Reader<'_>, name: &str, fresh: bool) -> Result<Arc<Cached>> {
    admit(app, reader, name, None).await?;
    find(app, name, fresh).await
}

/// The lookup behind [`packument`], for callers that have authorized already.
async fn find(app: &App, name: &str, fresh: bool) -> Result<Arc<Cached>> {
    match packument::lookup(app, name, fresh).await? {
        Lookup::Found(entry) => {
            refuse_blocked(entry.blocked.as_ref())?;
            Ok(entry)
        }
        Lookup::Missing(block) => {
            refuse_blocked(block.as_ref())?;
            Box::pin(proxy::packument(app, name, false)).await?.ok_or_else(|| not_found(name))
        }
    }
}

/// The manifest of the version `spec` (a version, a tag or a range) names.
/// The package is authorized before anything is resolved; the version once
/// it is known (a plugin may hide single versions).
pub async fn version(app: &App, reader: Reader<'_>, name: &str, spec: &str) -> Result<Value> {
    admit(app, reader, name, None).await?;
    let mut entry = find(app, name, false).await?;
    let mut resolved = resolve_spec(&entry.value, spec);
    if resolved.is_none() && proxy::enabled(app) && app.store.package_rev(name).await?.is_none() {
        // A version missing from a proxied packument: ask the upstream again.
        if let Some(fresh) = proxy::packument(app, name, true).await? {
            resolved = resolve_spec(&fresh.value, spec);
            entry = fresh;
        }
    }
    let Some(version) = resolved else {
        return Err(Error::NotFound(format!("version {spec} of {name} not found")));
    };
    authorize(app, reader, name, Some(&version)).await?;
    Ok(entry.value["versions"][&version].clone())
}

/// A tarball to send: its version, entity tag (its integrity, quoted) and bytes.
pub struct TarballRead {
    pub version: Arc<str>,
    pub etag: bytes::Bytes,
    pub blob: Blob,
}

/// The version a tarball file name of `name` stands for (`n-1.0.0.tgz` → `1.0.0`).
fn version_in_file<'f>(name: &str, file: &'f str) -> Option<&'f str> {
    file.strip_prefix(names::base_name(name))?.strip_prefix('-')?.strip_suffix(".tgz").filter(|v| !v.is_empty())
}

/// The tarball `file` of `name`: authorized (with the version its file name
/// names) before the lookup; then the local copy, or in proxy mode the
/// upstream's, stored as it is first downloaded. A local tarball is found
/// through the cached packument (its block state and files: no query on a
/// hit) and read from memory when small and hot.
pub async fn tarball(app: &App, reader: Reader<'_>, name: &str, file: &str) -> Result<TarballRead> {
    admit(app, reader, name, version_in_file(name, file)).await?;
    let missing = || Error::NotFound(format!("tarball {file} of {name} not found"));
    match packument::lookup(app, name, false).await? {
        Lookup::Found(entry) => {
            refuse_blocked(entry.blocked.as_ref())?;
            if let Some(t) = entry.tarballs.get(file) {
                if let Some(blob) = app.hot_tarballs.get(app.blobs.as_ref(), &t.key, t.size).await? {
                    return Ok(TarballRead { version: t.version.clone(), etag: t.etag.clone(), blob });
                }
            }
            // Not in the cached document, or its blob is gone: the document may
            // predate a write another node made (its signal not here yet), so
            // storage decides.
            Box::pin(stored_tarball(app, name, file)).await?.ok_or_else(missing)
        }
        Lookup::Missing(block) => {
            refuse_blocked(block.as_ref())?;
            if !proxy::enabled(app) {
                return Err(missing());
            }
            let t = Box::pin(proxy::tarball(app, name, file)).await?.ok_or_else(missing)?;
            Ok(TarballRead { version: t.version.into(), etag: packument::quoted(&t.integrity), blob: t.blob })
        }
    }
}

/// The tarball `file` of `name` as storage has it now.
async fn stored_tarball(app: &App, name: &str, file: &str) -> Result<Option<TarballRead>> {
    if let Some(block) = app.store.block(name).await? {
        refuse_blocked(Some(&block))?;
    }
    let Some(version) = app.store.version_by_file(name, file).await? else { return Ok(None) };
    let Some(blob) = app.hot_tarballs.get(app.blobs.as_ref(), &version.tarball_key, u64::try_from(version.size).unwrap_or(0)).await? else {
        tracing::error!(package = name, file, key = version.tarball_key, "tarball row without its blob");
        return Ok(None);
    };
    Ok(Some(TarballRead { version: version.version.into(), etag: packument::quoted(&version.integrity), blob }))
}

/// The dist-tags of `name` (of the proxied packument in proxy mode, when it is not here).
pub async fn dist_tags(app: &App, reader: Reader<'_>, name: &str) -> Result<Vec<(String, String)>> {
    admit(app, reader, name, None).await?;
    match packages::dist_tags(app, name).await {
        Err(Error::NotFound(_)) if proxy::enabled(app) => {
            let entry = find(app, name, false).await?;
            let tags = entry.value.get("dist-tags").and_then(Value::as_object);
            Ok(tags.into_iter().flatten().filter_map(|(t, v)| Some((t.clone(), v.as_str()?.to_string()))).collect())
        }
        other => other,
    }
}

/// The maintainers of `name`.
pub async fn maintainers(app: &App, reader: Reader<'_>, name: &str) -> Result<Vec<String>> {
    admit(app, reader, name, None).await?;
    packages::maintainers(app, name).await
}

/// Daily download counts of `name` between two `YYYY-MM-DD` days, inclusive.
pub async fn downloads(app: &App, reader: Reader<'_>, name: &str, start: &str, end: &str) -> Result<Vec<(String, i64)>> {
    admit(app, reader, name, None).await?;
    if app.store.package_rev(name).await?.is_none() {
        return Err(not_found(name));
    }
    Ok(app.store.downloads(name, start, end).await?)
}

/// The block of `name`, if an admin blocked it.
pub async fn block(app: &App, reader: Reader<'_>, name: &str) -> Result<Option<crate::store::Block>> {
    admit(app, reader, name, None).await?;
    Ok(app.store.block(name).await?)
}

/// The sync task `id` of `name` (its state, and the key of its log).
pub async fn sync_task(app: &App, reader: Reader<'_>, name: &str, id: &str) -> Result<crate::store::Task> {
    admit(app, reader, name, None).await?;
    super::sync::find_task(app, name, id).await
}

/// The packages `user` starred that `reader` may read.
pub async fn starred_by(app: &App, reader: Reader<'_>, user: &str) -> Result<Vec<String>> {
    let starred = app.store.starred_by(user).await?;
    readable(app, reader, starred).await
}

#[cfg(test)]
mod tests {
    use super::{plausible, version_in_file};

    #[test]
    fn versions_in_file_names() {
        assert_eq!(version_in_file("left-pad", "left-pad-1.3.0.tgz"), Some("1.3.0"));
        assert_eq!(version_in_file("@s/n", "n-1.0.0-beta.1.tgz"), Some("1.0.0-beta.1"));
        assert_eq!(version_in_file("@s/n", "other-1.0.0.tgz"), None);
        assert_eq!(version_in_file("n", "n-.tgz"), None);
        assert_eq!(version_in_file("n", "n-1.0.0.tar"), None);
    }

    #[test]
    fn plausible_names() {
        assert!(plausible("@s/n") && plausible("left-pad"));
        assert!(!plausible("") && !plausible("a/b/c") && !plausible("@s/..") && !plausible("a\u{1}"));
    }
}
