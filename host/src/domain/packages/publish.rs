//! `npm publish`: a libnpmpublish document with one version and its tarball,
//! checked in order (name, block, shape, publisher, manifest, tags,
//! attachment, integrity, plugins), then stored by [`super::store_version`].

use base64::Engine;
use serde_json::{Map, Value};
use sha1::Digest as _;

use crate::domain::App;
use crate::store::{now_ms, NewVersion, PackageRecord, PublishOutcome, VersionRecord};
use crate::util::next_rev;

use super::super::integrity::{self, IntegrityError};
use super::super::policy::{self, Action};
use super::super::{names, Error, Identity, Result};
use super::{check_not_blocked, obj, require_maintainer, store_version, stored_manifest};

pub struct Published {
    pub rev: String,
}

/// The one version of a publish document: (version, manifest, attachment name, attachment).
type Single<'a> = (&'a String, &'a Map<String, Value>, &'a String, &'a Value);

/// `PUT /:name` with an attachment: a libnpmpublish document.
pub async fn publish(app: &App, caller: &Identity, url_name: &str, body: &Value) -> Result<Published> {
    let name = body.get("name").and_then(Value::as_str).ok_or_else(|| Error::Invalid("name is required".into()))?;
    if name != url_name {
        return Err(Error::Invalid(format!("name {name:?} in the body differs from {url_name:?} in the URL")));
    }
    check_not_blocked(app, name).await?;
    let (version, manifest, file_key, attachment) = single_version(body)?;
    let existing = check_publisher(app, caller, name, version).await?;
    check_manifest(name, version, manifest)?;
    let tags = publish_tags(body, version, existing.as_ref())?;
    let bytes = attachment_bytes(name, version, file_key, attachment)?;
    let dist = manifest_dist(manifest, version)?;
    let (integrity, shasum) = verify_tarball(&bytes, dist)?;
    policy::authorize_caller(app, Action::Publish, Some((name, Some(version))), caller).await?;
    policy::check_version(app, name, version, Value::Object(manifest.clone()).to_string(), &bytes, policy::Origin::Publish).await?;

    let (mut stored, readme) = stored_manifest(name, version, manifest.clone(), dist.cloned().unwrap_or_default(), &integrity, shasum);
    let readme = readme.or_else(|| body.get("readme").and_then(Value::as_str).map(str::to_string));
    stored.insert("_npmUser".into(), serde_json::json!({"name": caller.name, "email": caller.email}));
    let stored = Value::Object(stored);
    let becomes_latest = tags.iter().any(|t| t == "latest");
    let (description, keywords) = if becomes_latest { search_fields(&stored) } else { (None, None) };
    let new_rev = next_rev(existing.as_ref().map(|r| r.rev.as_str()));
    let new = NewVersion {
        package: name.to_string(),
        version: VersionRecord {
            version: version.clone(),
            manifest: stored.to_string(),
            readme,
            tarball_key: String::new(),
            tarball_file: names::tarball_file(name, version),
            size: bytes.len() as i64,
            integrity,
            publisher: Some(caller.name.clone()),
            created_at: now_ms(),
        },
        tags,
        publisher: caller.name.clone(),
        publisher_is_admin: caller.is_admin,
        new_rev: new_rev.clone(),
        description,
        keywords,
        sync_registry: None,
    };
    let outcome = store_version(app, new, bytes.into()).await;
    app.packuments.invalidate(name);
    match outcome? {
        PublishOutcome::Published => Ok(Published { rev: new_rev }),
        PublishOutcome::NotMaintainer => Err(Error::Forbidden(format!("{} is not a maintainer of {name}", caller.name))),
        PublishOutcome::VersionExists => Err(Error::Conflict(format!("version {version} of {name} was published concurrently"))),
        PublishOutcome::RegistryMismatch => Err(Error::Forbidden(format!("{name} is synced from an upstream registry"))),
    }
}

/// Exactly one version, as an object, and exactly one attachment.
fn single_version(body: &Value) -> Result<Single<'_>> {
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
    let (file_key, attachment) = attachments.iter().next().expect("one attachment");
    Ok((version, manifest, file_key, attachment))
}

/// The caller may publish this version: a maintainer of the existing package
/// (or allowed to create it), a version that is new, valid and was never
/// unpublished. Returns the existing package.
async fn check_publisher(app: &App, caller: &Identity, name: &str, version: &str) -> Result<Option<PackageRecord>> {
    let existing = app.store.package(name).await?;
    match &existing {
        Some(record) => {
            require_maintainer(record, caller)?;
            if record.versions.iter().any(|v| v.version == version) {
                return Err(Error::Forbidden(format!("cannot publish over the previously published version {version} of {name}")));
            }
        }
        None => super::super::scopes::check_new_package(app, caller, name).await?,
    }
    names::validate_version(version)?;
    if app.store.is_tombstoned(name, version).await? {
        return Err(Error::Forbidden(format!("{name}@{version} was unpublished; a version can never be reused, publish a new one")));
    }
    Ok(existing)
}

/// The manifest's dependencies, name and version.
fn check_manifest(name: &str, version: &str, manifest: &Map<String, Value>) -> Result<()> {
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
    if manifest.get("version").and_then(Value::as_str) != Some(version) {
        return Err(Error::Invalid(format!("versions[{version}].version must be {version:?}")));
    }
    Ok(())
}

/// The document's dist-tags (all on the published version), plus `latest`
/// when the package has none yet.
fn publish_tags(body: &Value, version: &str, existing: Option<&PackageRecord>) -> Result<Vec<String>> {
    let mut tags: Vec<String> = Vec::new();
    if let Some(dist_tags) = obj(body, "dist-tags")? {
        for (tag, target) in dist_tags {
            names::validate_tag(tag)?;
            if target.as_str() != Some(version) {
                return Err(Error::Invalid(format!("dist-tags.{tag} must point at the published version {version}")));
            }
            tags.push(tag.clone());
        }
    }
    let has_latest = existing.is_some_and(|r| r.tags.iter().any(|(t, _)| t == "latest"));
    if !has_latest && !tags.iter().any(|t| t == "latest") {
        tags.push("latest".into());
    }
    Ok(tags)
}

/// The attachment's bytes: named after the version, base64, not empty, of its `length`.
fn attachment_bytes(name: &str, version: &str, file_key: &str, attachment: &Value) -> Result<Vec<u8>> {
    let full_file = format!("{name}-{version}.tgz");
    if file_key != full_file && file_key != names::tarball_file(name, version) {
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
    Ok(bytes)
}

/// The manifest's `dist`, which must carry an integrity or a shasum.
fn manifest_dist<'a>(manifest: &'a Map<String, Value>, version: &str) -> Result<Option<&'a Map<String, Value>>> {
    match manifest.get("dist") {
        Some(Value::Object(d)) if d.contains_key("integrity") || d.contains_key("shasum") => Ok(Some(d)),
        Some(Value::Object(_)) | None | Some(Value::Null) => {
            Err(Error::Invalid(format!("versions[{version}].dist must carry the tarball's integrity or shasum")))
        }
        Some(_) => Err(Error::Invalid("dist must be an object".into())),
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
            integrity::check(given, &integrity::Digests::new(bytes)).map_err(|e| match e {
                IntegrityError::Mismatch => Error::Invalid(format!("dist.integrity {given} does not match the tarball ({integrity})")),
                IntegrityError::NoDigest => Error::Invalid(format!("dist.integrity {given} has no sha512 or sha1 digest")),
                IntegrityError::Malformed(why) => Error::Invalid(format!("dist.integrity {given} is malformed: {why}")),
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
