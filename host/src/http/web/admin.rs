//! Pages for admins: sync tasks with their logs (reloading while a task
//! runs), blocks, registries and scopes, plugins with their call statistics,
//! a link to the hooks (`hooks.rs`).

use http::StatusCode;

use crate::domain::sync;

use super::super::{ApiError, Req, Response};
use super::{views, Ctx};

/// Rows per list.
const ROWS: i64 = 50;

pub(super) fn require_admin(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.person()?.is_admin {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "only admins may see this page"))
    }
}

/// `GET /-/web/admin`.
pub async fn page(req: &Req, ctx: &Ctx) -> Result<Response, ApiError> {
    require_admin(ctx)?;
    let store = &req.app.store;
    let tasks = store.recent_tasks(ROWS).await?;
    let blocks = store.recent_blocks(ROWS).await?;
    let (registries, _) = store.list_registries(0, ROWS).await?;
    let scopes = store.scopes(None).await?;
    let plugins = req.app.plugins.current().summaries();
    let data = views::admin::Admin { tasks: &tasks, blocks: &blocks, registries: &registries, scopes: &scopes, plugins: &plugins };
    Ok(ctx.html(StatusCode::OK, views::admin::page(ctx, &data)))
}

/// `GET /-/web/admin/tasks/ID`: a task and its log.
pub async fn task(req: &Req, ctx: &Ctx, id: &str) -> Result<Response, ApiError> {
    require_admin(ctx)?;
    let task = req.app.store.task(id).await?.ok_or_else(|| ApiError::not_found(format!("task {id} not found")))?;
    let log = sync::read_log(&req.app, id).await.unwrap_or_default();
    let running = !sync::TaskState::parse(&task.state).is_some_and(sync::TaskState::is_finished);
    Ok(ctx.html(StatusCode::OK, views::admin::task(ctx, &task, &log, running)))
}
