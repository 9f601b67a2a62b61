//! Webhook pages: every hook for admins (`/-/web/admin/hooks`), one hook with
//! its latest deliveries for its owner or an admin (`/-/web/hooks/ID`), and
//! deleting a hook. Who may see and delete what is `domain::hooks`'s rule, the
//! same as `/-/npm/v1/hooks`'s; no page shows a hook's secret.

use http::StatusCode;

use crate::domain::hooks;

use super::super::{ApiError, Req, Response};
use super::admin::require_admin;
use super::ctx::{field, form};
use super::{views, Ctx};

/// Hooks per page of the admin list.
const ROWS: i64 = 50;

/// `GET /-/web/admin/hooks?page=N`: every user's hooks.
pub async fn admin_list(req: &Req, ctx: &Ctx) -> Result<Response, ApiError> {
    require_admin(ctx)?;
    let page = req.query("page").and_then(|v| v.parse::<i64>().ok()).unwrap_or(1).clamp(1, 10_000);
    let list = hooks::overview(&req.app, ctx.person()?, true, (page - 1) * ROWS, ROWS).await?;
    let more = list.len() as i64 == ROWS;
    Ok(ctx.html(StatusCode::OK, views::hooks::admin_list(ctx, &list, page, more)))
}

/// `GET /-/web/hooks/ID`: a hook and its latest deliveries.
pub async fn page(req: &Req, ctx: &Ctx, id: &str) -> Result<Response, ApiError> {
    let (hook, deliveries) = hooks::with_deliveries(&req.app, ctx.person()?, id).await?;
    Ok(ctx.html(StatusCode::OK, views::hooks::hook(ctx, &hook, &deliveries)))
}

/// `POST /-/web/hooks/ID/delete`: deletes the hook (with its deliveries), then
/// back to the list it was deleted from (`from=admin`: the admin list).
pub async fn delete(mut req: Req, ctx: &mut Ctx, id: &str) -> Result<Response, ApiError> {
    let fields = form(&mut req).await?;
    ctx.check_csrf(&fields)?;
    let person = ctx.person()?;
    hooks::delete(&req.app, person, id).await?;
    Ok(ctx.redirect(if field(&fields, "from") == "admin" && person.is_admin { "/-/web/admin/hooks" } else { "/-/web/user" }))
}
