//! What a package document changes in the stored package: its dist-tags,
//! deprecations and maintainers against the package's record, as the fields
//! of a `PackageChange`. The document is a client's edit (`update`) or an
//! upstream's packument (sync); where the two are taken differently, [`Doc`]
//! says which.

use serde_json::{Map, Value};

use crate::domain::packument::highest;
use crate::store::PackageRecord;

use super::super::{names, Error, Result};

/// Whose document it is.
#[derive(Debug, Clone, Copy)]
pub enum Doc<'a> {
    /// A client's edit: malformed parts are refused; it never removes
    /// `latest` (the store moves it) nor the tags of the versions it removes.
    Client,
    /// An upstream's packument: malformed parts are skipped, user names take
    /// the registry's prefix, an empty maintainer list changes nothing, and
    /// `latest` falls back to the highest remaining version.
    Upstream { user_prefix: &'a str },
}

impl Doc<'_> {
    fn strict(self) -> bool {
        matches!(self, Doc::Client)
    }
}

/// Deprecations of the versions the document has, and the stored versions it
/// does not have (the caller decides whether they go).
#[derive(Debug, Default)]
pub struct Deprecations {
    /// (version, message or `None` to undeprecate), where it differs from the stored one.
    pub changed: Vec<(String, Option<String>)>,
    pub missing: Vec<String>,
}

/// Each stored version's `deprecated` (an empty one is none) against the
/// document's `versions`.
pub fn deprecations(record: &PackageRecord, versions: &Map<String, Value>, doc: Doc) -> Result<Deprecations> {
    let mut out = Deprecations::default();
    for v in &record.versions {
        let Some(sent) = versions.get(&v.version) else {
            out.missing.push(v.version.clone());
            continue;
        };
        let sent_dep = match sent.get("deprecated") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) if doc.strict() => return Err(Error::Invalid(format!("versions[{}].deprecated must be a string", v.version))),
            Some(_) => None,
        };
        let manifest: Value = match serde_json::from_str(&v.manifest) {
            Ok(m) => m,
            Err(e) if doc.strict() => return Err(Error::Internal(e.to_string())),
            Err(_) => Value::Null,
        };
        let current = manifest.get("deprecated").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        if current != sent_dep {
            out.changed.push((v.version.clone(), sent_dep));
        }
    }
    Ok(out)
}

/// Dist-tags: what to set and remove to go from the stored tags to the document's.
#[derive(Debug, Default)]
pub struct TagChange {
    /// The tags the document wants (on versions that remain).
    pub wanted: Vec<(String, String)>,
    pub set: Vec<(String, String)>,
    pub remove: Vec<String>,
}

/// The document's `dist-tags` (without them: the stored tags that remain)
/// against the stored ones. `remaining` are the versions left after the
/// change, `removed` the ones it removes.
pub fn tags(
    current: &[(String, String)],
    doc_tags: Option<&Map<String, Value>>,
    remaining: &[&str],
    removed: &[String],
    doc: Doc,
) -> Result<TagChange> {
    let wanted = match doc_tags {
        Some(t) => wanted_tags(t, remaining, removed, doc)?,
        None => current.iter().filter(|(_, v)| remaining.contains(&v.as_str())).cloned().collect(),
    };
    let mut change = TagChange::default();
    for (tag, v) in &wanted {
        if !current.iter().any(|(t, cv)| t == tag && cv == v) {
            names::validate_tag(tag)?;
            change.set.push((tag.clone(), v.clone()));
        }
    }
    for (tag, v) in current {
        let kept = doc.strict() && (tag == "latest" || removed.contains(v));
        if !kept && !wanted.iter().any(|(t, _)| t == tag) {
            change.remove.push(tag.clone());
        }
    }
    change.wanted = wanted;
    Ok(change)
}

/// The document's tags on remaining versions. A client's tag on a version
/// that is not published (and not being removed) is refused; an upstream's is
/// skipped, as are its invalid tag names.
fn wanted_tags(tags: &Map<String, Value>, remaining: &[&str], removed: &[String], doc: Doc) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (tag, v) in tags {
        let Some(v) = v.as_str() else {
            if doc.strict() {
                return Err(Error::Invalid(format!("dist-tags.{tag} must be a version string")));
            }
            continue;
        };
        if remaining.contains(&v) {
            if doc.strict() || names::validate_tag(tag).is_ok() {
                out.push((tag.clone(), v.to_string()));
            }
        } else if doc.strict() && !removed.iter().any(|r| r == v) {
            return Err(Error::Invalid(format!("dist-tags.{tag} points at {v}, which is not published")));
        }
    }
    if !doc.strict() && !out.iter().any(|(t, _)| t == "latest") {
        if let Some(h) = highest(remaining.iter().copied()) {
            out.push(("latest".into(), h.to_string()));
        }
    }
    Ok(out)
}

/// The document's `maintainers` (objects with a `name`, or names), deduplicated,
/// when they differ from the stored ones as a set. A client's empty list is
/// returned (the caller refuses it).
pub fn maintainers(record: &PackageRecord, list: Option<&Value>, doc: Doc) -> Result<Option<Vec<String>>> {
    let Some(list) = list else { return Ok(None) };
    let items = match list.as_array() {
        Some(items) => items,
        None if doc.strict() => return Err(Error::Invalid("maintainers must be an array".into())),
        None => return Ok(None),
    };
    let mut wanted: Vec<String> = Vec::new();
    for m in items {
        let Some(n) = m.get("name").and_then(Value::as_str).or_else(|| m.as_str()) else {
            if doc.strict() {
                return Err(Error::Invalid("each maintainer needs a name".into()));
            }
            continue;
        };
        let n = match doc {
            Doc::Client => n.to_string(),
            Doc::Upstream { user_prefix } => format!("{user_prefix}{n}"),
        };
        if !wanted.contains(&n) {
            wanted.push(n);
        }
    }
    let mut current: Vec<&str> = record.maintainers.iter().map(|(n, _)| n.as_str()).collect();
    current.sort_unstable();
    let mut sorted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    if sorted == current || (wanted.is_empty() && !doc.strict()) {
        return Ok(None);
    }
    Ok(Some(wanted))
}
