//! The home page and search results.

use maud::{html, Markup};

use super::{date, layout, package_url, q};
use crate::domain::web_pages::Home;
use crate::http::web::home::{Listed, PAGE_SIZE};
use crate::http::web::Ctx;

pub fn home(ctx: &Ctx, h: &Home) -> Markup {
    let plus = if h.complete { "" } else { "+" };
    layout(
        ctx,
        "Home",
        html! {
            h1 { (ctx.title) }
            form.card method="get" action=(ctx.url("/-/web/search")) role="search" {
                label for="home-q" { "Search packages" }
                div.copy { input #home-q type="search" name="q" placeholder="name, keyword or description"; button type="submit" { "Search" } }
            }
            div.stats {
                div { strong #count-packages { (h.packages) (plus) } "packages" }
                div { strong #count-versions { (h.versions) (plus) } "versions" }
            }
            h2 { "Recently published" }
            @if h.recent.is_empty() { p.muted { "Nothing published yet." } }
            ul.results #recent {
                @for p in &h.recent {
                    li {
                        a.name href=(package_url(ctx, &p.name, None)) { (p.name) }
                        " " span.muted { (date(p.modified_at)) }
                        @if let Some(d) = &p.description { div { (d) } }
                    }
                }
            }
        },
    )
}

/// `total` is (the number of results, whether there are more than that).
pub fn results(ctx: &Ctx, text: &str, listed: &[Listed], total: (i64, bool), page: i64) -> Markup {
    let (total, more) = total;
    let title = if text.is_empty() { "Search".to_string() } else { format!("Search: {text}") };
    let page_url = |n: i64| ctx.url(&format!("/-/web/search?q={}&page={n}", q(text)));
    layout(
        ctx,
        &title,
        html! {
            h1 { "Search" }
            form.card method="get" action=(ctx.url("/-/web/search")) role="search" {
                label for="results-q" { "Search packages" }
                div.copy { input #results-q type="search" name="q" value=(text); button type="submit" { "Search" } }
            }
            @if !text.is_empty() {
                p #result-count { (total) @if more { "+" } " result" @if total != 1 || more { "s" } " for " strong { (text) } }
                ul.results #results {
                    @for p in listed {
                        li {
                            a.name href=(package_url(ctx, &p.name, None)) { (p.name) }
                            " " span.badge { (p.version) } " " span.muted { (p.date) }
                            @if !p.description.is_empty() { div { (p.description) } }
                            @if !p.keywords.is_empty() {
                                div.keywords { @for k in &p.keywords { a href=(ctx.url(&format!("/-/web/search?q={}", q(k)))) { (k) } } }
                            }
                        }
                    }
                }
                nav.pager aria-label="Pages" {
                    @if page > 1 { a rel="prev" href=(page_url(page - 1)) { "← Previous" } }
                    span.muted { "Page " (page) }
                    @if page * PAGE_SIZE < total || more { a rel="next" href=(page_url(page + 1)) { "Next →" } }
                }
            }
        },
    )
}
