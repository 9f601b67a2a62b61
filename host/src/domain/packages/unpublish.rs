//! `npm unpublish`: a whole package, or one version by its tarball.

use crate::domain::App;
use crate::store::{now_ms, PackageChange};
use crate::util::next_rev;

use super::super::policy::{self, Action};
use super::super::{Error, Identity, Result};
use super::{delete_blobs, load, remove_package, require_maintainer};

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
    let change = PackageChange {
        new_rev: next_rev(Some(&record.rev)),
        now: now_ms(),
        remove_versions: vec![v.version.clone()],
        ..Default::default()
    };
    let removed = app.store.update_package(name, &change).await;
    app.packuments.invalidate(name);
    let Some(removed) = removed? else {
        return Err(Error::NotFound(format!("package {name} not found")));
    };
    delete_blobs(app, &removed).await;
    Ok(())
}
