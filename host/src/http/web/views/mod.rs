//! The templates (maud: compiled into the binary, every value escaped unless
//! wrapped in `PreEscaped`, which only the sanitised readme is). `mod.rs` has
//! the layout and the pieces pages share; one file per page group beside it.

pub mod admin;
pub mod home;
pub mod hooks;
pub mod login;
pub mod package;
pub mod user;

use http::StatusCode;
use maud::{html, Markup, DOCTYPE};

use super::Ctx;

/// The frame of every page: header with the search box and the person's
/// links, the content in `<main>`, a footer.
pub fn layout(ctx: &Ctx, title: &str, content: Markup) -> Markup {
    layout_with_head(ctx, title, html! {}, content)
}

/// [`layout`] with more in `<head>` (e.g. a refresh).
pub fn layout_with_head(ctx: &Ctx, title: &str, head: Markup, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (ctx.title) }
                // No /favicon.ico request (it would be a 404 on every page).
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(ctx.url("/-/web/app.css"));
                script src=(ctx.url("/-/web/app.js")) defer {}
                (head)
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.site {
                    a.brand href=(ctx.url("/-/web/")) {
                        @if ctx.has_logo { img src=(ctx.url("/-/web/logo")) alt="" height="28"; }
                        span { (ctx.title) }
                    }
                    form.search role="search" action=(ctx.url("/-/web/search")) method="get" {
                        label.hidden for="site-q" { "Search packages" }
                        input #site-q type="search" name="q" placeholder="Search packages";
                        button type="submit" { "Search" }
                    }
                    nav aria-label="Account" { (account(ctx)) }
                }
                main #main { (content) }
                footer.site { "Served by Cairn" }
            }
        }
    }
}

fn account(ctx: &Ctx) -> Markup {
    html! {
        @if let Some(id) = &ctx.identity {
            @if id.is_admin { a href=(ctx.url("/-/web/admin")) { "Admin" } }
            a href=(ctx.url("/-/web/user")) { (id.name) }
            form.inline method="post" action=(ctx.url("/-/web/signout")) {
                (csrf(ctx))
                button type="submit" { "Sign out" }
            }
        } @else {
            a href=(ctx.url("/-/web/signin")) { "Sign in" }
        }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf); }
}

pub fn error(ctx: &Ctx, status: StatusCode, heading: &str, reason: &str) -> Markup {
    layout(
        ctx,
        heading,
        html! {
            h1 { (heading) }
            p.notice { (reason) }
            @if status == StatusCode::UNAUTHORIZED {
                p { a href=(ctx.url("/-/web/signin")) { "Sign in" } }
            }
            p { a href=(ctx.url("/-/web/")) { "Back to the home page" } }
        },
    )
}

/// `2026-11-30` of milliseconds since the epoch.
pub fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

/// `2026-11-30 12:34:56 UTC` of milliseconds since the epoch.
pub fn datetime(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default()
}

/// What a path segment keeps unencoded (`@` too: scoped names stay readable).
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'@');

/// A query value, encoded.
pub fn q(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The page of package `name`, at `version` when given.
pub fn package_url(ctx: &Ctx, name: &str, version: Option<&str>) -> String {
    let path: Vec<String> = name.split('/').map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()).collect();
    let url = ctx.url(&format!("/-/web/package/{}", path.join("/")));
    match version {
        Some(v) => format!("{url}?version={}", q(v)),
        None => url,
    }
}
