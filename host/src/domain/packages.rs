//! Publishing and changing packages: npm's own write flows.

use base64::Engine;
use serde_json::{Map, Value};
use sha1::Digest as _;

use crate::app::App;
use crate::store::{now_ms, Block, NewVersion, PackageChange, PackageRecord, PublishOutcome, VersionRecord};
use crate::util::{next_rev, random_bytes};

use super::packument;
use super::policy::{self, Action};
use super::{names, Error, Identity, Result};


fn is_maintainer(record: &PackageRecord, caller: &Identity) -> bool {
    caller.is_admin || record.maintainers.iter().any(|(n, _)| n == &caller.name)
}

fn require_maintainer(record: &PackageRecord, caller: &Identity) -> Result<()> {
    if is_maintainer(record, caller) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!("{} is not a maintainer of {}", caller.name, record.name)))
    }
}

fn blocked_error(block: &Block) -> Error {
    Error::Blocked(format!("package {} was blocked, reason: {}", block.package, block.reason))
}

/// Refuses any use of a blocked package.
pub async fn check_not_blocked(app: &App, name: &str) -> Result<()> {
    match app.store.block(name).await? {
        Some(b) => Err(blocked_error(&b)),
        None => Ok(()),
    }
}

async fn load(app: &App, name: &str) -> Result<PackageRecord> {
    app.store.package(name).await?.ok_or_else(|| Error::NotFound(format!("package {name} not found")))
}

fn obj<'a>(v: &'a Value, field: &str) -> Result<Option<&'a Map<String, Value>>> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(Error::Invalid(format!("{field} must be an object"))),
    }
}

fn search_fields(manifest: &Value) -> (Option<String>, Option<String>) {
    let description = manifest.get("description").and_then(Value::as_str).map(str::to_string);
    let keywords = manifest.get("keywords").filter(|k| k.is_array()).map(|k| k.to_string());
    (description, keywords)
}

/// Checks the attachment bytes against the manifest's `dist` and returns
/// (integrity, shasum) to store. The tarball must be gzip.
fn verify_tarball(bytes: &[u8], dist: Option<&Map<String, Value>>) -> Result<(String, String)> {
    let sha512 = base64::engine::general_purpose::STANDARD.encode(<sha2::Sha512 as sha2::Digest>::digest(bytes));
    let sha1_hex = hex::encode(sha1::Sha1::digest(bytes));
    let integrity = format!("sha512-{sha512}");
    if let Some(dist) = dist {
        if let Some(given) = dist.get("shasum") {
            let given = given.as_str().ok_or_else(|| Error::Invalid("dist.shasum must be a string".into()))?;
            if !given.eq_ignore_ascii_case(&sha1_hex) {
                return Err(Error::Invalid(format!("dist.shasum {given} does not match the tarball ({sha1_hex})")));
            }
        }
        if let Some(given) = dist.get("integrity") {
            let given = given.as_str().ok_or_else(|| Error::Invalid("dist.integrity must be a string".into()))?;
            super::integrity::check(given, &super::integrity::Digests::new(bytes)).map_err(|e| match e {
                super::integrity::IntegrityError::Mismatch => Error::Invalid(format!("dist.integrity {given} does not match the tarball ({integrity})")),
                super::integrity::IntegrityError::NoDigest => Error::Invalid(format!("dist.integrity {given} has no sha512 or sha1 digest")),
                super::integrity::IntegrityError::Malformed(why) => Error::Invalid(format!("dist.integrity {given} is malformed: {why}")),
            })?;
        }
    }
    // A gzip stream whose first tar header block decodes.
    let mut decoder = flate2::read::GzDecoder::new(bytes);
    let mut header = [0u8; 512];
    if bytes.len() < 18 || bytes[0] != 0x1f || bytes[1] != 0x8b || std::io::Read::read_exact(&mut decoder, &mut header).is_err() {
        return Err(Error::Invalid("the attachment is not a gzipped tarball".into()));
    }
    Ok((integrity, sha1_hex))
}

pub struct Published {
    pub rev: String,
}

/// `PUT /:name` with an attachment: a libnpmpublish document.
pub async fn publish(app: &App, caller: &Identity, url_name: &str, body: &Value) -> Result<Published> {
    let name = body.get("name").and_then(Value::as_str).ok_or_else(|| Error::Invalid("name is required".into()))?;
    if name != url_name {
        return Err(Error::Invalid(format!("name {name:?} in the body differs from {url_name:?} in the URL")));
    }
    check_not_blocked(app, name).await?;
    let versions = obj(body, "versions")?.ok_or_else(|| Error::Invalid("versions is required".into()))?;
    let attachments = obj(body, "_attachments")?.ok_or_else(|| Error::Invalid("_attachments is required".into()))?;
    if versions.len() != 1 {
        return Err(Error::Invalid(format!("exactly one version must be published at a time, got {}", versions.len())));
    }
    if attachments.len() != 1 {
        return Err(Error::Invalid(format!("exactly one attachment is required, got {}", attachments.len())));
    }
    let (version, manifest) = versions.iter().next().expect("one version");
    let manifest = manifest.as_object().ok_or_else(|| Error::Invalid("a version must be an object".into()))?;
    let existing = app.store.package(name).await?;
    match &existing {
        Some(record) => {
            require_maintainer(record, caller)?;
            if record.versions.iter().any(|v| &v.version == version) {
                return Err(Error::Forbidden(format!("cannot publish over the previously published version {version} of {name}")));
            }
        }
        None => super::scopes::check_new_package(app, caller, name).await?,
    }
    names::validate_version(version)?;
    if app.store.is_tombstoned(name, version).await? {
        return Err(Error::Forbidden(format!("{name}@{version} was unpublished; a version can never be reused, publish a new one")));
    }
    for field in ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies"] {
        match manifest.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(deps)) if deps.values().all(Value::is_string) => {}
            Some(_) => return Err(Error::Invalid(format!("versions[{version}].{field} must be an object of name to version range"))),
        }
    }
    if manifest.get("name").and_then(Value::as_str) != Some(name) {
        return Err(Error::Invalid(format!("versions[{version}].name must be {name:?}")));
    }
    if manifest.get("version").and_then(Value::as_str) != Some(version.as_str()) {
        return Err(Error::Invalid(format!("versions[{version}].version must be {version:?}")));
    }
    let mut tags: Vec<String> = Vec::new();
    if let Some(dist_tags) = obj(body, "dist-tags")? {
        for (tag, target) in dist_tags {
            names::validate_tag(tag)?;
            if target.as_str() != Some(version.as_str()) {
                return Err(Error::Invalid(format!("dist-tags.{tag} must point at the published version {version}")));
            }
            tags.push(tag.clone());
        }
    }
    let has_latest = existing.as_ref().is_some_and(|r| r.tags.iter().any(|(t, _)| t == "latest"));
    if !has_latest && !tags.iter().any(|t| t == "latest") {
        tags.push("latest".into());
    }

    let (file_key, attachment) = attachments.iter().next().expect("one attachment");
    let full_file = format!("{name}-{version}.tgz");
    if file_key != &full_file && file_key != &names::tarball_file(name, version) {
        return Err(Error::Invalid(format!("the attachment must be named {full_file:?}, got {file_key:?}")));
    }
    let data = attachment
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Invalid("_attachments[].data must be a base64 string".into()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| Error::Invalid(format!("_attachments[].data is not valid base64: {e}")))?;
    if bytes.is_empty() {
        return Err(Error::Invalid("the attachment is empty".into()));
    }
    if let Some(length) = attachment.get("length") {
        if length.as_u64() != Some(bytes.len() as u64) {
            return Err(Error::Invalid(format!("_attachments[].length {length} does not match the {} bytes sent", bytes.len())));
        }
    }
    let dist = match manifest.get("dist") {
        Some(Value::Object(d)) if d.contains_key("integrity") || d.contains_key("shasum") => Some(d),
        Some(Value::Object(_)) | None | Some(Value::Null) => {
            return Err(Error::Invalid(format!("versions[{version}].dist must carry the tarball's integrity or shasum")))
        }
        Some(_) => return Err(Error::Invalid("dist must be an object".into())),
    };
    let (integrity, shasum) = verify_tarball(&bytes, dist)?;
    policy::authorize_caller(app, Action::Publish, Some((name, Some(version))), caller).await?;
    policy::check_version(app, name, version, Value::Object(manifest.clone()).to_string(), &bytes, policy::Origin::Publish).await?;

    let file = names::tarball_file(name, version);
    let mut stored = manifest.clone();
    let readme = stored
        .remove("readme")
        .and_then(|r| r.as_str().map(str::to_string))
        .or_else(|| body.get("readme").and_then(Value::as_str).map(str::to_string));
    stored.insert("_id".into(), Value::String(format!("{name}@{version}")));
    stored.insert("_npmUser".into(), serde_json::json!({"name": caller.name, "email": caller.email}));
    let mut dist_out = dist.cloned().unwrap_or_default();
    dist_out.insert("integrity".into(), Value::String(integrity.clone()));
    dist_out.insert("shasum".into(), Value::String(shasum));
    dist_out.insert("tarball".into(), Value::String(format!("/{name}/-/{file}")));
    stored.insert("dist".into(), Value::Object(dist_out));
    let stored = Value::Object(stored);

    let now = now_ms();
    let key = format!("tarballs/{name}/{}-{}.tgz", file.trim_end_matches(".tgz"), hex::encode(random_bytes(6)));
    let becomes_latest = tags.iter().any(|t| t == "latest");
    let (description, keywords) = if becomes_latest { search_fields(&stored) } else { (None, None) };
    let new = NewVersion {
        package: name.to_string(),
        version: VersionRecord {
            version: version.clone(),
            manifest: stored.to_string(),
            readme,
            tarball_key: key.clone(),
            tarball_file: file,
            size: bytes.len() as i64,
            integrity,
            publisher: Some(caller.name.clone()),
            created_at: now,
        },
        tags,
        publisher: caller.name.clone(),
        publisher_is_admin: caller.is_admin,
        new_rev: next_rev(existing.as_ref().map(|r| r.rev.as_str())),
        description,
        keywords,
        sync_registry: None,
    };
    // The blob goes in first under a key of its own; the row that makes it
    // visible is committed after, and the blob is removed if that fails.
    app.blobs.put(&key, bytes.into()).await?;
    let outcome = app.store.publish(&new).await;
    let result = match outcome {
        Ok(PublishOutcome::Published) => Ok(Published { rev: new.new_rev.clone() }),
        Ok(PublishOutcome::NotMaintainer) => Err(Error::Forbidden(format!("{} is not a maintainer of {name}", caller.name))),
        Ok(PublishOutcome::VersionExists) => Err(Error::Conflict(format!("version {version} of {name} was published concurrently"))),
        Ok(PublishOutcome::RegistryMismatch) => Err(Error::Forbidden(format!("{name} is synced from an upstream registry"))),
        Err(e) => Err(e.into()),
    };
    if result.is_err() {
        if let Err(e) = app.blobs.delete(&key).await {
            tracing::warn!(error = %e, key, "removing the blob of a failed publish");
        }
    }
    app.packuments.invalidate(name);
    result
}

/// What an update changed, for the response.
pub struct Updated {
    pub rev: String,
}

/// The document a client edited, as far as it matters to apply its change.
struct Base {
    /// The client read an older rev than the current one (npm read-modify-write
    /// racing other writes): only what the client itself changed is applied.
    stale: bool,
    /// The versions the client's document had (its `time` keys), when it says:
    /// a current version missing from the document was removed by the client
    /// only if it is one of these; the others were published after it read.
    known: Option<Vec<String>>,
}

fn base_of(record: &PackageRecord, rev: Option<&str>, body: &Value) -> Result<Base> {
    let known = body
        .get("time")
        .and_then(Value::as_object)
        .map(|time| time.keys().filter(|k| !matches!(k.as_str(), "created" | "modified" | "unpublished")).cloned().collect());
    let expected = rev.or_else(|| body.get("_rev").and_then(Value::as_str));
    let stale = expected.is_some_and(|r| r != record.rev);
    if stale && known.is_none() {
        let expected = expected.unwrap_or_default();
        return Err(Error::Conflict(format!("document update conflict: rev {expected} is not the current {}", record.rev)));
    }
    Ok(Base { stale, known })
}

/// `PUT /:name` without attachments and `PUT /:name/-rev/:rev`: the client
/// sends the whole packument back with its change (deprecations, removed
/// versions, maintainers, dist-tags, stars). Only what differs is applied, as
/// a change of its own (remove these versions, set these deprecations) under
/// the package's lock: a publish between the client's read and its write does
/// not make it fail. A client editing a version removed meanwhile, or owners
/// changed meanwhile, gets 409.
pub async fn update(app: &App, caller: &Identity, url_name: &str, rev: Option<&str>, body: &Value) -> Result<Updated> {
    if !body.is_object() {
        return Err(Error::Invalid("the body must be a package document".into()));
    }
    if let Some(name) = body.get("name").or_else(|| body.get("_id")) {
        if name.as_str() != Some(url_name) {
            return Err(Error::Invalid(format!("the document names {name}, not {url_name:?}")));
        }
    }
    check_not_blocked(app, url_name).await?;
    let record = load(app, url_name).await?;
    let base = base_of(&record, rev, body)?;
    let mut change = PackageChange { new_rev: next_rev(Some(&record.rev)), now: now_ms(), ..Default::default() };
    change.star = star_change(&record, caller, body, base.stale)?;
    versions_change(&record, body, &base, &mut change)?;
    let remaining: Vec<&str> =
        record.versions.iter().map(|v| v.version.as_str()).filter(|v| !change.remove_versions.iter().any(|r| r == v)).collect();
    change.maintainers = maintainers_change(app, &record, body, base.stale).await?;
    if !base.stale {
        tags_change(&record, body, &remaining, &mut change)?;
    }
    let tags_changed = !change.set_tags.is_empty() || !change.remove_tags.is_empty();
    let needs_maintainer = !change.remove_versions.is_empty() || !change.deprecations.is_empty() || change.maintainers.is_some() || tags_changed;
    if needs_maintainer {
        require_maintainer(&record, caller)?;
    }
    let pkg = Some((record.name.as_str(), None));
    if !change.remove_versions.is_empty() {
        policy::authorize_caller(app, Action::Unpublish, pkg, caller).await?;
    }
    if !change.deprecations.is_empty() {
        policy::authorize_caller(app, Action::Deprecate, pkg, caller).await?;
    }
    if tags_changed {
        policy::authorize_caller(app, Action::DistTag, pkg, caller).await?;
    }
    if change.maintainers.is_some() {
        policy::authorize_caller(app, Action::Owner, pkg, caller).await?;
        // Owners are replaced as a whole list: only on the document read last.
        change.expected_rev = Some(record.rev.clone());
    }
    if !needs_maintainer && change.star.is_none() {
        return Ok(Updated { rev: record.rev });
    }
    if remaining.is_empty() {
        remove_package(app, &record.name, Some(&record.rev)).await?;
        return Ok(Updated { rev: change.new_rev });
    }
    let removed = app.store.update_package(&record.name, &change).await;
    app.packuments.invalidate(&record.name);
    let Some(removed) = removed? else {
        return Err(Error::Conflict("the package changed concurrently; read it again and retry".into()));
    };
    delete_blobs(app, &removed).await;
    Ok(Updated { rev: change.new_rev })
}

/// Stars: a caller may only add or remove their own. Others' stars that
/// differ in a stale document changed after the client read it: ignored.
fn star_change(record: &PackageRecord, caller: &Identity, body: &Value, stale: bool) -> Result<Option<(String, bool)>> {
    let Some(users) = obj(body, "users")? else { return Ok(None) };
    let wanted: Vec<&String> = users.iter().filter(|(_, v)| v.as_bool() == Some(true)).map(|(k, _)| k).collect();
    let mut star = None;
    for u in record.stars.iter().filter(|u| !wanted.contains(u)).chain(wanted.iter().copied().filter(|u| !record.stars.contains(u))) {
        if u != &caller.name {
            if stale {
                continue;
            }
            return Err(Error::Forbidden(format!("{} may not change the star of {u}", caller.name)));
        }
        star = Some((caller.name.clone(), !record.stars.contains(u)));
    }
    Ok(star)
}

/// Removed versions and deprecation messages: the document against the package as it is now.
fn versions_change(record: &PackageRecord, body: &Value, base: &Base, change: &mut PackageChange) -> Result<()> {
    let Some(versions) = obj(body, "versions")? else { return Ok(()) };
    for v in &record.versions {
        let Some(sent) = versions.get(&v.version) else {
            if base.known.as_ref().is_none_or(|known| known.contains(&v.version)) {
                change.remove_versions.push(v.version.clone());
            }
            continue;
        };
        let sent_dep = match sent.get("deprecated") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(Error::Invalid(format!("versions[{}].deprecated must be a string", v.version))),
        };
        let manifest: Value = serde_json::from_str(&v.manifest).map_err(|e| Error::Internal(e.to_string()))?;
        let current = manifest.get("deprecated").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        if current != sent_dep {
            change.deprecations.push((v.version.clone(), sent_dep));
        }
    }
    if let Some(unknown) = versions.keys().find(|k| !record.versions.iter().any(|v| &&v.version == k)) {
        if base.stale {
            return Err(Error::Conflict(format!("version {unknown} was removed after the document was read; read it again")));
        }
        return Err(Error::Invalid(format!("version {unknown} is not published; publish it with its tarball")));
    }
    Ok(())
}

async fn maintainers_change(app: &App, record: &PackageRecord, body: &Value, stale: bool) -> Result<Option<Vec<String>>> {
    let Some(list) = body.get("maintainers") else { return Ok(None) };
    let list = list.as_array().ok_or_else(|| Error::Invalid("maintainers must be an array".into()))?;
    let mut wanted = Vec::new();
    for m in list {
        let n = m
            .get("name")
            .and_then(Value::as_str)
            .or_else(|| m.as_str())
            .ok_or_else(|| Error::Invalid("each maintainer needs a name".into()))?;
        if !wanted.iter().any(|w| w == n) {
            wanted.push(n.to_string());
        }
    }
    let mut current: Vec<String> = record.maintainers.iter().map(|(n, _)| n.clone()).collect();
    current.sort();
    let mut sorted = wanted.clone();
    sorted.sort();
    if sorted == current {
        return Ok(None);
    }
    if stale {
        return Err(Error::Conflict(format!("the maintainers of {} changed after the document was read; read it again", record.name)));
    }
    if wanted.is_empty() {
        return Err(Error::Invalid("a package needs at least one maintainer".into()));
    }
    for n in &wanted {
        if !current.contains(n) && app.store.user_by_name(n).await?.is_none() {
            return Err(Error::Invalid(format!("user {n} does not exist")));
        }
    }
    Ok(Some(wanted))
}

/// Dist-tags of a document read at the current rev: its tags, restricted to
/// the versions that remain. `latest` is never removed here: when its version
/// goes, the store moves it to the highest remaining version.
fn tags_change(record: &PackageRecord, body: &Value, remaining: &[&str], change: &mut PackageChange) -> Result<()> {
    let current_tags = &record.tags;
    let final_tags: Vec<(String, String)> = match obj(body, "dist-tags")? {
        Some(t) => {
            let mut out = Vec::new();
            for (tag, v) in t {
                let v = v.as_str().ok_or_else(|| Error::Invalid(format!("dist-tags.{tag} must be a version string")))?;
                if remaining.contains(&v) {
                    out.push((tag.clone(), v.to_string()));
                } else if !change.remove_versions.iter().any(|r| r == v) {
                    return Err(Error::Invalid(format!("dist-tags.{tag} points at {v}, which is not published")));
                }
            }
            out
        }
        None => current_tags.iter().filter(|(_, v)| remaining.contains(&v.as_str())).cloned().collect(),
    };
    for (tag, v) in &final_tags {
        if !current_tags.iter().any(|(t, cv)| t == tag && cv == v) {
            names::validate_tag(tag)?;
            change.set_tags.push((tag.clone(), v.clone()));
        }
    }
    for (tag, v) in current_tags {
        let removed_with_version = change.remove_versions.contains(v);
        if tag != "latest" && !removed_with_version && !final_tags.iter().any(|(t, _)| t == tag) {
            change.remove_tags.push(tag.clone());
        }
    }
    Ok(())
}

async fn delete_blobs(app: &App, versions: &[VersionRecord]) {
    for v in versions {
        if let Err(e) = app.blobs.delete(&v.tarball_key).await {
            tracing::warn!(error = %e, key = v.tarball_key, "removing an unpublished tarball");
        }
    }
}

async fn remove_package(app: &App, name: &str, rev: Option<&str>) -> Result<()> {
    let removed = app.store.delete_package(name, rev).await?;
    app.packuments.invalidate(name);
    let Some(removed) = removed else {
        return Err(Error::Conflict("the package changed concurrently; read it again and retry".into()));
    };
    delete_blobs(app, &removed).await;
    Ok(())
}

/// `DELETE /:name/-rev/:rev`: unpublish the whole package.
pub async fn unpublish_package(app: &App, caller: &Identity, name: &str, rev: &str) -> Result<()> {
    let record = load(app, name).await?;
    require_maintainer(&record, caller)?;
    policy::authorize_caller(app, Action::Unpublish, Some((name, None)), caller).await?;
    if rev != record.rev {
        return Err(Error::Conflict(format!("document update conflict: rev {rev} is not the current {}", record.rev)));
    }
    remove_package(app, name, Some(rev)).await
}

/// `DELETE /:name/-/:file/-rev/:rev`: remove one tarball (npm sends it after
/// the trimmed packument, so the version is usually gone already). The intent
/// is "remove this version", so a rev moved by a concurrent publish does not
/// refuse it; the store moves or removes the tags that named it.
pub async fn delete_tarball(app: &App, caller: &Identity, name: &str, file: &str, _rev: &str) -> Result<()> {
    let record = load(app, name).await?;
    require_maintainer(&record, caller)?;
    let Some(v) = record.versions.iter().find(|v| v.tarball_file == file) else {
        return Ok(());
    };
    policy::authorize_caller(app, Action::Unpublish, Some((name, Some(&v.version))), caller).await?;
    if record.versions.len() == 1 {
        return remove_package(app, name, Some(&record.rev)).await;
    }
    let change = PackageChange { new_rev: next_rev(Some(&record.rev)), now: now_ms(), remove_versions: vec![v.version.clone()], ..Default::default() };
    let removed = app.store.update_package(name, &change).await;
    app.packuments.invalidate(name);
    let Some(removed) = removed? else {
        return Err(Error::NotFound(format!("package {name} not found")));
    };
    delete_blobs(app, &removed).await;
    Ok(())
}

pub async fn dist_tags(app: &App, name: &str) -> Result<Vec<(String, String)>> {
    check_not_blocked(app, name).await?;
    Ok(load(app, name).await?.tags)
}

pub async fn set_dist_tag(app: &App, caller: &Identity, name: &str, tag: &str, version: &str) -> Result<()> {
    names::validate_tag(tag)?;
    check_not_blocked(app, name).await?;
    let record = load(app, name).await?;
    require_maintainer(&record, caller)?;
    let Some(v) = record.versions.iter().find(|v| v.version == version) else {
        return Err(Error::Invalid(format!("version {version} of {name} is not published")));
    };
    policy::authorize_caller(app, Action::DistTag, Some((name, Some(version))), caller).await?;
    let change = PackageChange {
        new_rev: next_rev(Some(&record.rev)),
        now: now_ms(),
        set_tags: vec![(tag.to_string(), v.version.clone())],
        ..Default::default()
    };
    // The store refuses the tag if the version was unpublished meanwhile.
    let result = app.store.update_package(name, &change).await;
    app.packuments.invalidate(name);
    result?;
    Ok(())
}

pub async fn remove_dist_tag(app: &App, caller: &Identity, name: &str, tag: &str) -> Result<()> {
    if tag == "latest" {
        return Err(Error::Invalid("the latest tag cannot be removed; point it at another version instead".into()));
    }
    let record = load(app, name).await?;
    require_maintainer(&record, caller)?;
    if !record.tags.iter().any(|(t, _)| t == tag) {
        return Ok(());
    }
    policy::authorize_caller(app, Action::DistTag, Some((name, None)), caller).await?;
    let change = PackageChange {
        new_rev: next_rev(Some(&record.rev)),
        now: now_ms(),
        remove_tags: vec![tag.to_string()],
        ..Default::default()
    };
    app.store.update_package(name, &change).await?;
    app.packuments.invalidate(name);
    Ok(())
}

pub async fn maintainers(app: &App, name: &str) -> Result<Vec<String>> {
    Ok(load(app, name).await?.maintainers.into_iter().map(|(n, _)| n).collect())
}

pub async fn block(app: &App, caller: &Identity, name: &str, reason: &str) -> Result<(Block, bool)> {
    require_admin(caller)?;
    if names::validate(name).is_err() && app.store.package(name).await?.is_none() {
        names::validate(name)?;
    }
    policy::authorize_caller(app, Action::Block, Some((name, None)), caller).await?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::Invalid("reason must be a non-empty string".into()));
    }
    let block = Block {
        id: uuid::Uuid::new_v4().simple().to_string(),
        package: name.to_string(),
        reason: reason.to_string(),
        operator: caller.name.clone(),
        created_at: now_ms(),
    };
    let stored = app.store.put_block(&block).await?;
    app.packuments.invalidate(name);
    let exists = app.store.package(name).await?.is_some();
    Ok((stored, exists))
}

pub async fn unblock(app: &App, caller: &Identity, name: &str) -> Result<()> {
    require_admin(caller)?;
    policy::authorize_caller(app, Action::Block, Some((name, None)), caller).await?;
    let removed = app.store.delete_block(name).await?;
    app.packuments.invalidate(name);
    if removed {
        Ok(())
    } else {
        Err(Error::NotFound(format!("package {name} is not blocked")))
    }
}

pub fn require_admin(caller: &Identity) -> Result<()> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(Error::Forbidden("only admins may do this".into()))
    }
}

/// The blocked state of a lookup: refuse reads of a blocked package.
pub fn refuse_blocked(block: Option<&Block>) -> Result<()> {
    match block {
        Some(b) => Err(blocked_error(b)),
        None => Ok(()),
    }
}

pub use packument::resolve_spec;
