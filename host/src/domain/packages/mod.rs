//! Publishing and changing packages: npm's own write flows. One file per
//! concern: `publish` (a new version from a client), `store` (storing a
//! verified version: the blob, then the row; shared with sync), `update`
//! (npm's read-modify-write, applied as the change it means), `diff` (tags,
//! deprecations and maintainers of a document against the stored package;
//! shared with sync), `unpublish`, `tags` (dist-tags and maintainers) and
//! `blocks`. This file holds what they share.

mod blocks;
pub mod diff;
mod publish;
mod store;
mod tags;
mod unpublish;
mod update;

use serde_json::{Map, Value};

use crate::domain::App;
use crate::store::{PackageRecord, VersionRecord};

use super::{Error, Identity, Result};

pub use blocks::{block, check_not_blocked, refuse_blocked, unblock};
pub use publish::{publish, Published};
pub use store::{store_version, stored_manifest, StoreVersionError};
pub use tags::{dist_tags, maintainers, remove_dist_tag, set_dist_tag};
pub use unpublish::{delete_tarball, unpublish_package};
pub use update::{update, Updated};

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

pub fn require_admin(caller: &Identity) -> Result<()> {
    if caller.is_admin {
        Ok(())
    } else {
        Err(Error::Forbidden("only admins may do this".into()))
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

pub use super::packument::resolve_spec;
