//! Dist-tags (`npm dist-tag`) and the maintainer list as read by `npm owner ls`.

use crate::domain::App;
use crate::store::{now_ms, PackageChange};
use crate::util::next_rev;

use super::super::policy::{self, Action};
use super::super::{names, Error, Identity, Result};
use super::{check_not_blocked, load, require_maintainer};

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
    let change =
        PackageChange { new_rev: next_rev(Some(&record.rev)), now: now_ms(), remove_tags: vec![tag.to_string()], ..Default::default() };
    app.store.update_package(name, &change).await?;
    app.packuments.invalidate(name);
    Ok(())
}

pub async fn maintainers(app: &App, name: &str) -> Result<Vec<String>> {
    Ok(load(app, name).await?.maintainers.into_iter().map(|(n, _)| n).collect())
}
