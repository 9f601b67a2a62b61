//! Admin pages.

use maud::{html, Markup};

use super::{date, layout, layout_with_head, package_url};
use crate::http::web::Ctx;
use crate::plugins::PluginSummary;
use crate::store::{Block, Registry, Scope, Task};

pub struct Admin<'a> {
    pub tasks: &'a [Task],
    pub blocks: &'a [Block],
    pub registries: &'a [Registry],
    pub scopes: &'a [Scope],
    pub plugins: &'a [PluginSummary],
}

fn ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2} ms")).unwrap_or_else(|| "–".into())
}

pub fn page(ctx: &Ctx, a: &Admin) -> Markup {
    layout(
        ctx,
        "Admin",
        html! {
            h1 { "Admin" }
            p { a #hooks-link href=(ctx.url("/-/web/admin/hooks")) { "Webhooks and their deliveries" } }
            section aria-labelledby="tasks" { h2 #tasks { "Sync tasks" } div.scroll { table.versions #task-list {
                thead { tr { th { "Task" } th { "Kind" } th { "Target" } th { "State" } th { "Created" } th { "Error" } } }
                tbody { @for t in a.tasks { tr {
                    td { a href=(ctx.url(&format!("/-/web/admin/tasks/{}", t.id))) { (t.id.get(..8).unwrap_or(&t.id)) } }
                    td { (t.kind) } td { (t.target) } td { span.badge { (t.state) } } td { (date(t.created_at)) }
                    td { (t.error.as_deref().map(crate::config::redact_url).unwrap_or_default()) }
                } } }
            } } }
            section aria-labelledby="blocks" { h2 #blocks { "Blocks" } ul.plain #block-list {
                @for b in a.blocks { li { a href=(package_url(ctx, &b.package, None)) { (b.package) } " — " (b.reason) " " span.muted { "by " (b.operator) ", " (date(b.created_at)) } } }
            } }
            section aria-labelledby="registries" { h2 #registries { "Registries and scopes" } div.scroll { table.versions {
                thead { tr { th { "Name" } th { "Host" } th { "Kind" } th { "Scopes" } } }
                tbody { @for r in a.registries { tr {
                    td { (r.name) @if r.is_default { " " span.badge { "default" } } }
                    td { (crate::config::strip_userinfo(&r.host)) } td { (r.kind) }
                    td { @for s in a.scopes.iter().filter(|s| s.registry_id == r.id) { span.badge { (s.name) } " " } }
                } } }
            } } }
            section aria-labelledby="plugins" { h2 #plugins { "Plugins" } div.scroll { table.versions #plugin-list {
                thead { tr { th { "Name" } th { "Kind" } th { "Calls" } th { "Errors" } th { "p50" } th { "p99" } th { "On error" } } }
                tbody { @for p in a.plugins { tr {
                    td { (p.name) } td { (p.kind) } td { (p.calls) } td { (p.errors) } td { (ms(p.p50_ms)) } td { (ms(p.p99_ms)) } td { (p.on_error) }
                } } }
            } } }
        },
    )
}

/// A task with its log; while it runs the page reloads itself (no script needed).
pub fn task(ctx: &Ctx, t: &Task, log: &str, running: bool) -> Markup {
    // While the task runs, a refresh keeps the log live without JavaScript.
    let head = html! { @if running { meta http-equiv="refresh" content="2"; } };
    layout_with_head(
        ctx,
        &format!("Task {}", t.id),
        head,
        html! {
            h1 { "Sync of " (t.target) }
            p { "Task " code { (t.id) } " · " (t.kind) " · " span.badge #task-state { (t.state) } @if running { " · reloading every 2 s" } }
            @if let Some(e) = &t.error { p.error { (crate::config::redact_url(e)) } }
            pre #task-log { (log) }
            p { a href=(ctx.url("/-/web/admin")) { "All tasks" } }
        },
    )
}
