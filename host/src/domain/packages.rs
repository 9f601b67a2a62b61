//! Publishing and changing packages: npm's own write flows.

use base64::Engine;
use serde_json::{Map, Value};
use sha1::Digest as _;

use crate::app::App;
use crate::store::{now_ms, Block, NewVersion, PackageChange, PackageRecord, PublishOutcome, VersionRecord};
use crate::util::{next_rev, random_bytes};

use super::packument::{self, highest, latest_version};
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
            let sha1_b64 = base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(bytes));
            let mut checked = false;
            for part in given.split_whitespace() {
                let (algo, digest) = part.split_once('-').unwrap_or(("", ""));
                let digest = digest.split('?').next().unwrap_or("");
                let ok = match algo {
                    "sha512" => digest == sha512,
                    "sha1" => digest == sha1_b64,
                    _ => continue,
                };
                if !ok {
                    return Err(Error::Invalid(format!("dist.integrity {given} does not match the tarball ({integrity})")));
                }
                checked = true;
            }
            if !checked {
                return Err(Error::Invalid(format!("dist.integrity {given} has no sha512 or sha1 digest")));
            }
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

/// `PUT /:name` without attachments and `PUT /:name/-rev/:rev`: the client
/// sends the whole packument back with its change (deprecations, removed
/// versions, maintainers, dist-tags, stars). Only what differs is applied.
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
    let expected_rev = rev.map(str::to_string).or_else(|| body.get("_rev").and_then(Value::as_str).map(str::to_string));
    if let Some(expected) = &expected_rev {
        if expected != &record.rev {
            return Err(Error::Conflict(format!("document update conflict: rev {expected} is not the current {}", record.rev)));
        }
    }
    let mut change = PackageChange { expected_rev, new_rev: next_rev(Some(&record.rev)), now: now_ms(), ..Default::default() };
    let mut needs_maintainer = false;

    // Stars: a caller may only add or remove their own.
    if let Some(users) = obj(body, "users")? {
        let wanted: Vec<&String> = users.iter().filter(|(_, v)| v.as_bool() == Some(true)).map(|(k, _)| k).collect();
        for u in record.stars.iter().filter(|u| !wanted.contains(u)).chain(wanted.iter().copied().filter(|u| !record.stars.contains(u))) {
            if u != &caller.name {
                return Err(Error::Forbidden(format!("{} may not change the star of {u}", caller.name)));
            }
            change.star = Some((caller.name.clone(), !record.stars.contains(u)));
        }
    }

    let mut remaining: Vec<&str> = record.versions.iter().map(|v| v.version.as_str()).collect();
    if let Some(versions) = obj(body, "versions")? {
        for v in &record.versions {
            match versions.get(&v.version) {
                None => {
                    change.remove_versions.push(v.version.clone());
                    needs_maintainer = true;
                }
                Some(sent) => {
                    let sent_dep = match sent.get("deprecated") {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) if s.is_empty() => None,
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(_) => return Err(Error::Invalid(format!("versions[{}].deprecated must be a string", v.version))),
                    };
                    let mut manifest: Value = serde_json::from_str(&v.manifest).map_err(|e| Error::Internal(e.to_string()))?;
                    let current = manifest.get("deprecated").and_then(Value::as_str).map(str::to_string);
                    if current != sent_dep {
                        let m = manifest.as_object_mut().expect("stored manifests are objects");
                        match &sent_dep {
                            Some(msg) => m.insert("deprecated".into(), Value::String(msg.clone())),
                            None => m.remove("deprecated"),
                        };
                        change.manifests.push((v.version.clone(), manifest.to_string()));
                        needs_maintainer = true;
                    }
                }
            }
        }
        if let Some(unknown) = versions.keys().find(|k| !record.versions.iter().any(|v| &&v.version == k)) {
            return Err(Error::Invalid(format!("version {unknown} is not published; publish it with its tarball")));
        }
        remaining.retain(|v| !change.remove_versions.iter().any(|r| r == v));
    }

    if let Some(list) = body.get("maintainers") {
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
        if sorted != current {
            if wanted.is_empty() {
                return Err(Error::Invalid("a package needs at least one maintainer".into()));
            }
            for n in &wanted {
                if !current.contains(n) && app.store.user_by_name(n).await?.is_none() {
                    return Err(Error::Invalid(format!("user {n} does not exist")));
                }
            }
            change.maintainers = Some(wanted);
            needs_maintainer = true;
        }
    }

    // Dist-tags: the document's tags, restricted to the versions that remain.
    let current_tags: Vec<(String, String)> = record.tags.clone();
    let mut final_tags: Vec<(String, String)> = match obj(body, "dist-tags")? {
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
    if !final_tags.iter().any(|(t, _)| t == "latest") {
        if let Some(h) = highest(remaining.iter().copied()) {
            final_tags.push(("latest".into(), h.to_string()));
        }
    }
    for (tag, v) in &final_tags {
        if !current_tags.iter().any(|(t, cv)| t == tag && cv == v) {
            names::validate_tag(tag)?;
            change.set_tags.push((tag.clone(), v.clone()));
        }
    }
    for (tag, _) in &current_tags {
        if !final_tags.iter().any(|(t, _)| t == tag) {
            change.remove_tags.push(tag.clone());
        }
    }
    if !change.set_tags.is_empty() || !change.remove_tags.is_empty() {
        needs_maintainer = true;
    }
    if needs_maintainer {
        require_maintainer(&record, caller)?;
    }
    let pkg = Some((record.name.as_str(), None));
    if !change.remove_versions.is_empty() {
        policy::authorize_caller(app, Action::Unpublish, pkg, caller).await?;
    }
    if !change.manifests.is_empty() {
        policy::authorize_caller(app, Action::Deprecate, pkg, caller).await?;
    }
    if !change.set_tags.is_empty() || !change.remove_tags.is_empty() {
        policy::authorize_caller(app, Action::DistTag, pkg, caller).await?;
    }
    if change.maintainers.is_some() {
        policy::authorize_caller(app, Action::Owner, pkg, caller).await?;
    }
    if !needs_maintainer && change.star.is_none() {
        return Ok(Updated { rev: record.rev });
    }
    if remaining.is_empty() {
        remove_package(app, &record.name, Some(&record.rev)).await?;
        return Ok(Updated { rev: change.new_rev });
    }
    let latest_before = latest_version(&record).map(str::to_string);
    let latest_after = final_tags.iter().find(|(t, _)| t == "latest").map(|(_, v)| v.clone());
    if latest_after != latest_before || change.manifests.iter().any(|(v, _)| Some(v) == latest_after.as_ref()) {
        if let Some(v) = record.versions.iter().find(|v| Some(&v.version) == latest_after.as_ref()) {
            change.search_fields = Some(search_fields(&serde_json::from_str(&v.manifest).unwrap_or(Value::Null)));
        }
    }
    let removed = app.store.update_package(&record.name, &change).await?;
    app.packuments.invalidate(&record.name);
    let Some(removed) = removed else {
        return Err(Error::Conflict("the package changed concurrently; read it again and retry".into()));
    };
    delete_blobs(app, &removed).await;
    Ok(Updated { rev: change.new_rev })
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
/// the trimmed packument, so the version is usually gone already).
pub async fn delete_tarball(app: &App, caller: &Identity, name: &str, file: &str, rev: &str) -> Result<()> {
    let record = load(app, name).await?;
    require_maintainer(&record, caller)?;
    if rev != record.rev {
        return Err(Error::Conflict(format!("document update conflict: rev {rev} is not the current {}", record.rev)));
    }
    let Some(v) = record.versions.iter().find(|v| v.tarball_file == file) else {
        return Ok(());
    };
    policy::authorize_caller(app, Action::Unpublish, Some((name, Some(&v.version))), caller).await?;
    let remaining: Vec<&str> = record.versions.iter().filter(|x| x.version != v.version).map(|x| x.version.as_str()).collect();
    if remaining.is_empty() {
        return remove_package(app, name, None).await;
    }
    let mut change = PackageChange {
        expected_rev: Some(record.rev.clone()),
        new_rev: next_rev(Some(&record.rev)),
        now: now_ms(),
        remove_versions: vec![v.version.clone()],
        ..Default::default()
    };
    if record.tags.iter().any(|(t, tv)| t == "latest" && tv == &v.version) {
        if let Some(h) = highest(remaining.into_iter()) {
            change.set_tags.push(("latest".into(), h.to_string()));
        }
    }
    let removed = app.store.update_package(name, &change).await?;
    app.packuments.invalidate(name);
    let Some(removed) = removed else {
        return Err(Error::Conflict("the package changed concurrently; read it again and retry".into()));
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
    let mut change = PackageChange {
        new_rev: next_rev(Some(&record.rev)),
        now: now_ms(),
        set_tags: vec![(tag.to_string(), version.to_string())],
        ..Default::default()
    };
    if tag == "latest" {
        change.search_fields = Some(search_fields(&serde_json::from_str(&v.manifest).unwrap_or(Value::Null)));
    }
    app.store.update_package(name, &change).await?;
    app.packuments.invalidate(name);
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
