//! The user page: packages, tokens (create, revoke), the new token shown once,
//! the person's hooks (with their deliveries one click away; delete).

use maud::{html, Markup};

use super::hooks::{self as hook_views, ListedOn};
use super::{csrf, date, layout, package_url};
use crate::domain::Identity;
use crate::http::web::Ctx;
use crate::store::hooks::HookOverview;
use crate::store::Token;

/// What the user page lists.
pub struct UserPage<'a> {
    pub packages: &'a [String],
    pub tokens: &'a [Token],
    pub hooks: &'a [HookOverview],
    /// A token just created, shown this once.
    pub created: Option<&'a str>,
}

pub fn page(ctx: &Ctx, person: &Identity, data: &UserPage) -> Markup {
    let UserPage { packages, tokens, hooks, created } = *data;
    layout(
        ctx,
        &person.name,
        html! {
            h1 { (person.name) @if person.is_admin { " " span.badge { "admin" } } }
            @if let Some(raw) = created {
                section.card.ok aria-labelledby="new-token" {
                    h2 #new-token { "New token" }
                    p { "Copy it now: it is shown only this once." }
                    div.copy {
                        code #new-token-value { (raw) }
                        button.copy-button type="button" data-copy="new-token-value" { "Copy" }
                    }
                }
            }
            section aria-labelledby="packages" {
                h2 #packages { "Packages" }
                @if packages.is_empty() { p { "No packages yet." } }
                ul.plain { @for p in packages { li { a href=(package_url(ctx, p, None)) { (p) } } } }
            }
            section aria-labelledby="tokens" {
                h2 #tokens { "Tokens" }
                (token_table(ctx, tokens))
                (token_form(ctx))
            }
            section aria-labelledby="hooks" {
                h2 #hooks { "Hooks" }
                @if hooks.is_empty() { p { "No hooks. Add one with " code { "npm hook add" } "." } }
                @else { (hook_views::table(ctx, hooks, ListedOn::User)) }
            }
        },
    )
}

fn token_table(ctx: &Ctx, tokens: &[Token]) -> Markup {
    html! {
        div.scroll {
            table.tokens {
                thead { tr { th { "Token" } th { "Name" } th { "Kind" } th { "CIDR" } th { "Created" } th { "Last used" } th { span.hidden { "Revoke" } } } }
                tbody {
                    @for t in tokens {
                        tr data-key=(t.key) {
                            td { code { (t.mark) } }
                            td { (t.name.as_deref().unwrap_or("")) }
                            td { @if t.readonly { "read-only" } @else if t.automation { "automation" } @else { "publish" } }
                            td { (t.cidr_whitelist.join(", ")) }
                            td { (date(t.created_at)) }
                            td { (t.last_used_at.map(date).unwrap_or_else(|| "never".into())) }
                            td {
                                form.inline method="post" action=(ctx.url(&format!("/-/web/tokens/{}/delete", t.key))) {
                                    (csrf(ctx))
                                    button.danger type="submit" aria-label={ "Revoke token " (t.mark) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn token_form(ctx: &Ctx) -> Markup {
    html! {
        form.card #create-token method="post" action=(ctx.url("/-/web/tokens")) {
            h3 { "Create a token" }
            (csrf(ctx))
            label for="token-name" { "Name" }
            input #token-name name="name" type="text" maxlength="100" placeholder="ci";
            label.check { input #token-readonly name="readonly" type="checkbox"; " Read-only" }
            label for="token-cidr" { "Allowed addresses (CIDR, comma separated; empty: any)" }
            input #token-cidr name="cidr" type="text" placeholder="10.0.0.0/8";
            label for="token-password" { "Your password" }
            input #token-password name="password" type="password" autocomplete="current-password" required;
            button type="submit" { "Create token" }
        }
    }
}
