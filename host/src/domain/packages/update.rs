//! npm's read-modify-write (`PUT /:name` without attachments, `PUT
//! /:name/-rev/:rev`): the client's document is compared with the package as
//! it is now, and only the difference is applied, as a change of its own.

use serde_json::Value;

use crate::domain::App;
use crate::store::{now_ms, PackageChange, PackageRecord};
use crate::util::next_rev;

use super::super::policy::{self, Action};
use super::super::{Error, Identity, Result};
use super::diff::{self, Doc};
use super::{check_not_blocked, delete_blobs, load, obj, remove_package, require_maintainer};

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
        let tags = diff::tags(&record.tags, obj(body, "dist-tags")?, &remaining, &change.remove_versions, Doc::Client)?;
        (change.set_tags, change.remove_tags) = (tags.set, tags.remove);
    }
    let needs_maintainer = authorize_change(app, caller, &record, &mut change).await?;
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

/// Everything but a star needs a maintainer, and the plugins' leave for each
/// kind of change. Owner changes become compare-and-swap on the rev. Returns
/// whether the change needs a maintainer (a change besides the star).
async fn authorize_change(app: &App, caller: &Identity, record: &PackageRecord, change: &mut PackageChange) -> Result<bool> {
    let tags_changed = !change.set_tags.is_empty() || !change.remove_tags.is_empty();
    let needs_maintainer =
        !change.remove_versions.is_empty() || !change.deprecations.is_empty() || change.maintainers.is_some() || tags_changed;
    if needs_maintainer {
        require_maintainer(record, caller)?;
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
    Ok(needs_maintainer)
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
    let deprecations = diff::deprecations(record, versions, Doc::Client)?;
    change.deprecations = deprecations.changed;
    change.remove_versions =
        deprecations.missing.into_iter().filter(|v| base.known.as_ref().is_none_or(|known| known.contains(v))).collect();
    if let Some(unknown) = versions.keys().find(|k| !record.versions.iter().any(|v| &&v.version == k)) {
        if base.stale {
            return Err(Error::Conflict(format!("version {unknown} was removed after the document was read; read it again")));
        }
        return Err(Error::Invalid(format!("version {unknown} is not published; publish it with its tarball")));
    }
    Ok(())
}

/// The document's maintainers, when they differ: refused in a stale
/// document (owners changed after it was read), when empty, or naming a user
/// who does not exist.
async fn maintainers_change(app: &App, record: &PackageRecord, body: &Value, stale: bool) -> Result<Option<Vec<String>>> {
    let Some(wanted) = diff::maintainers(record, body.get("maintainers"), Doc::Client)? else { return Ok(None) };
    if stale {
        return Err(Error::Conflict(format!("the maintainers of {} changed after the document was read; read it again", record.name)));
    }
    if wanted.is_empty() {
        return Err(Error::Invalid("a package needs at least one maintainer".into()));
    }
    for n in &wanted {
        if !record.maintainers.iter().any(|(m, _)| m == n) && app.store.user_by_name(n).await?.is_none() {
            return Err(Error::Invalid(format!("user {n} does not exist")));
        }
    }
    Ok(Some(wanted))
}
