//! Blocked packages: an admin's block list, and the refusal of any use of a
//! blocked package.

use crate::domain::App;
use crate::store::{now_ms, Block};

use super::super::policy::{self, Action};
use super::super::{names, Error, Identity, Result};
use super::require_admin;

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

/// The blocked state of a lookup: refuse reads of a blocked package.
pub fn refuse_blocked(block: Option<&Block>) -> Result<()> {
    match block {
        Some(b) => Err(blocked_error(b)),
        None => Ok(()),
    }
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
