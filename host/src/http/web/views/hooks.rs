//! Webhook pages: a table of hooks (the admin list, the user page), one hook
//! with its deliveries. Endpoints are shown with their user info redacted,
//! error texts with URL credentials redacted; secrets are never given to
//! these templates.

use maud::{html, Markup};

use super::{csrf, datetime, layout};
use crate::config::redact_url;
use crate::http::web::Ctx;
use crate::store::hooks::{Delivery, Hook, HookOverview};

/// Which page a hook table is on (delete forms come back to it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ListedOn {
    Admin,
    User,
}

fn when(ms: Option<i64>) -> String {
    ms.map(datetime).unwrap_or_else(|| "never".into())
}

fn status_code(c: Option<i64>) -> String {
    c.map(|c| c.to_string()).unwrap_or_else(|| "–".into())
}

/// The delete button of a hook.
fn delete_form(ctx: &Ctx, hook: &Hook, from: ListedOn) -> Markup {
    html! {
        form.inline.delete-hook method="post" action=(ctx.url(&format!("/-/web/hooks/{}/delete", hook.id))) {
            (csrf(ctx))
            input type="hidden" name="from" value=(if from == ListedOn::Admin { "admin" } else { "user" });
            button.danger type="submit" aria-label={ "Delete hook " (hook.kind) " " (hook.name) } { "Delete" }
        }
    }
}

/// Hooks with their last delivery and how many deliveries wait or failed.
pub fn table(ctx: &Ctx, list: &[HookOverview], from: ListedOn) -> Markup {
    html! {
        div.scroll { table.versions.hooks {
            thead { tr {
                @if from == ListedOn::Admin { th { "Owner" } }
                th { "Type" } th { "Name" } th { "Endpoint" } th { "Formatter" } th { "Status" } th { "Last delivery" }
                th { "Response" } th { "Pending" } th { "Failed" } th { span.hidden { "Delete" } }
            } }
            tbody { @for o in list { tr data-hook=(o.hook.id) {
                @if from == ListedOn::Admin { td { (o.hook.owner) } }
                td { (o.hook.kind) }
                td { a href=(ctx.url(&format!("/-/web/hooks/{}", o.hook.id))) { (o.hook.name) } }
                td { code.endpoint { (redact_url(&o.hook.endpoint)) } }
                td { (o.hook.formatter.as_deref().unwrap_or("npm")) }
                td { span.badge { (o.hook.status) } }
                td { (when(o.hook.last_delivery)) }
                td.response { (status_code(o.hook.response_code)) }
                td.pending { (o.pending) }
                td.failed { (o.failed) }
                td { (delete_form(ctx, &o.hook, from)) }
            } } }
        } }
    }
}

/// `/-/web/admin/hooks`: every user's hooks, a page at a time.
pub fn admin_list(ctx: &Ctx, list: &[HookOverview], page: i64, more: bool) -> Markup {
    layout(
        ctx,
        "Hooks",
        html! {
            h1 { "Hooks" }
            p { a href=(ctx.url("/-/web/admin")) { "Admin" } }
            @if list.is_empty() { p #no-hooks { "No hooks on this page." } }
            @else { (table(ctx, list, ListedOn::Admin)) }
            nav.pager aria-label="Pages" {
                @if page > 1 { a rel="prev" href=(ctx.url(&format!("/-/web/admin/hooks?page={}", page - 1))) { "← Previous" } }
                span.muted { "Page " (page) }
                @if more { a rel="next" href=(ctx.url(&format!("/-/web/admin/hooks?page={}", page + 1))) { "Next →" } }
            }
        },
    )
}

/// `/-/web/hooks/ID`: the hook and its latest deliveries, newest first.
pub fn hook(ctx: &Ctx, hook: &Hook, deliveries: &[Delivery]) -> Markup {
    let from = if ctx.identity.as_ref().is_some_and(|i| i.is_admin && i.name != hook.owner) { ListedOn::Admin } else { ListedOn::User };
    layout(
        ctx,
        &format!("Hook {} {}", hook.kind, hook.name),
        html! {
            h1 { "Hook on " (hook.kind) " " (hook.name) }
            dl.hook #hook-detail {
                dt { "Owner" } dd { (hook.owner) }
                dt { "Endpoint" } dd { code.endpoint { (redact_url(&hook.endpoint)) } }
                dt { "Formatter" } dd { (hook.formatter.as_deref().unwrap_or("npm")) }
                dt { "Status" } dd { span.badge { (hook.status) } }
                dt { "Created" } dd { (datetime(hook.created_at)) }
                dt { "Updated" } dd { (datetime(hook.updated_at)) }
                dt { "Last delivery" } dd { (when(hook.last_delivery)) " · response " (status_code(hook.response_code)) }
            }
            p { (delete_form(ctx, hook, from)) }
            h2 #deliveries { "Deliveries" }
            @if deliveries.is_empty() { p #no-deliveries { "No deliveries yet." } }
            @else { div.scroll { table.versions #delivery-list {
                thead { tr {
                    th { "Event" } th { "Package" } th { "State" } th { "Attempts" } th { "Response" } th { "Created" }
                    th { "Updated" } th { "Finished / next attempt" } th { "Last error" }
                } }
                tbody { @for d in deliveries { tr data-delivery=(d.id) {
                    td { (d.event) } td { (d.package) } td { span.badge.state { (d.state) } } td.attempts { (d.attempts) }
                    td.response { (status_code(d.response_code)) } td { (datetime(d.created_at)) } td { (datetime(d.updated_at)) }
                    td { @if d.state == "pending" { "next " (datetime(d.run_after)) } @else { (when(d.finished_at)) } }
                    td.error-text { (d.last_error.as_deref().map(redact_url).unwrap_or_default()) }
                } } }
            } } }
            p {
                @if from == ListedOn::Admin { a href=(ctx.url("/-/web/admin/hooks")) { "All hooks" } }
                @else { a href=(ctx.url("/-/web/user")) { "Your page" } }
            }
        },
    )
}
