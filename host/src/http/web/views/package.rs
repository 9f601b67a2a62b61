//! The package page.

use maud::{html, Markup, PreEscaped};
use serde_json::Value;

use super::{layout, package_url, q};
use crate::http::web::package::{PackageView, VERSION_ROWS, WEEKS};
use crate::http::web::{home::keywords, readme, Ctx};

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o.get("type").or_else(|| o.get("name")).and_then(Value::as_str).unwrap_or("").to_string(),
        _ => String::new(),
    }
}

/// Bytes for people: `12.3 kB`.
fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

/// Only http(s) links are linked.
fn web_link(url: &str) -> Option<&str> {
    (url.starts_with("https://") || url.starts_with("http://")).then_some(url)
}

pub fn page(ctx: &Ctx, v: &PackageView) -> Markup {
    let deprecated = v.manifest.get("deprecated").and_then(Value::as_str).filter(|d| !d.is_empty());
    let description = text(v.manifest.get("description"));
    layout(
        ctx,
        &format!("{}@{}", v.name, v.version),
        html! {
            h1 #package-name { (v.name) " " span.badge #package-version { (v.version) } }
            @if !description.is_empty() { p.lead { (description) } }
            @if let Some(d) = deprecated { div.banner.deprecated role="alert" { strong { "Deprecated: " } (d) } }
            div.layout {
                div {
                    (version_selector(ctx, v))
                    section.readme #readme aria-label="Readme" { (PreEscaped(&v.readme_html)) }
                    (dependencies(ctx, v))
                    (versions(ctx, v))
                }
                aside { (install(v)) (sidebar(ctx, v)) }
            }
        },
    )
}

fn version_selector(ctx: &Ctx, v: &PackageView) -> Markup {
    html! {
        form.inline #version-form method="get" action=(package_url(ctx, v.name, None)) {
            label for="version-select" { "Version " }
            select #version-select name="version" data-autosubmit {
                @for (ver, _) in &v.versions { option value=(ver) selected[*ver == v.version] { (ver) } }
            }
            " " button type="submit" { "Show" }
        }
    }
}

fn install(v: &PackageView) -> Markup {
    let latest = v.doc.pointer("/dist-tags/latest").and_then(Value::as_str) == Some(v.version.as_str());
    let spec = if latest { v.name.to_string() } else { format!("{}@{}", v.name, v.version) };
    html! {
        section aria-labelledby="install" {
            h2 #install { "Install" }
            @for (id, cmd) in [("install-npm", format!("npm install {spec}")), ("install-pnpm", format!("pnpm add {spec}")), ("install-yarn", format!("yarn add {spec}"))] {
                div.copy {
                    code id=(id) { (cmd) }
                    button.copy-button type="button" data-copy=(id) aria-label={ "Copy " (cmd) } { "Copy" }
                }
            }
        }
    }
}

fn sidebar(ctx: &Ctx, v: &PackageView) -> Markup {
    let m = v.manifest;
    let homepage = text(m.get("homepage"));
    let repo = readme::repository_url(m).map(|(u, _)| u);
    let maintainers: Vec<String> =
        v.doc.get("maintainers").and_then(Value::as_array).map(|a| a.iter().map(|x| text(x.get("name"))).collect()).unwrap_or_default();
    let keywords = keywords(m.get("keywords"));
    html! {
        @if let Some(r) = repo { section { h2 { "Repository" } a #repository href=(r) rel="noopener noreferrer nofollow" { (r) } } }
        @if let Some(h) = web_link(&homepage) { section { h2 { "Homepage" } a href=(h) rel="noopener noreferrer nofollow" { (h) } } }
        section { h2 { "License" } span #license { (text(m.get("license"))) } }
        @if let Some((bytes, integrity)) = &v.tarball {
            section { h2 { "Tarball" } span #tarball-size { (size(*bytes)) } br; code.integrity #integrity { (integrity) } }
        }
        section { h2 { "Weekly downloads" } (chart(&v.weekly)) }
        section { h2 { "Dist-tags" } ul.plain #dist-tags {
            @if let Some(tags) = v.doc.get("dist-tags").and_then(Value::as_object) {
                @for (tag, ver) in tags { li { (tag) ": " a href=(package_url(ctx, v.name, ver.as_str())) { (ver.as_str().unwrap_or("")) } } }
            }
        } }
        section { h2 { "Maintainers" } ul.plain #maintainers { @for n in &maintainers { li { (n) } } } }
        @if !keywords.is_empty() {
            section { h2 { "Keywords" } div.keywords { @for k in &keywords { a href=(ctx.url(&format!("/-/web/search?q={}", q(k)))) { (k) } } } }
        }
    }
}

/// A bar per week, the last one the most recent; the figure is last week's.
fn chart(weekly: &[i64]) -> Markup {
    let max = weekly.iter().copied().max().unwrap_or(0).max(1);
    let last = weekly.last().copied().unwrap_or(0);
    let bar = 100.0 / WEEKS as f64;
    html! {
        strong #weekly-downloads { (last) }
        svg.chart viewBox="0 0 100 40" preserveAspectRatio="none" role="img" aria-label={ "Downloads per week, last " (WEEKS) " weeks" } {
            @for (i, n) in weekly.iter().enumerate() {
                @let h = (*n as f64 / max as f64 * 38.0).max(if *n > 0 { 1.0 } else { 0.0 });
                rect x=(format!("{:.2}", i as f64 * bar + 0.5)) y=(format!("{:.2}", 40.0 - h)) width=(format!("{:.2}", bar - 1.0)) height=(format!("{h:.2}")) {
                    title { (n) " downloads" }
                }
            }
        }
    }
}

fn dependencies(ctx: &Ctx, v: &PackageView) -> Markup {
    html! {
        section aria-labelledby="deps" {
            h2 #deps { "Dependencies (" (v.dependencies.len()) ")" }
            ul.plain #dependencies {
                @for (field, name, range) in &v.dependencies {
                    li { a href=(package_url(ctx, name, None)) { (name) } " " span.muted { (range) @if *field != "dependencies" { " · " (field) } } }
                }
            }
            h2 #dependents-heading { "Dependents (" (v.dependents.len()) ")" }
            ul.plain #dependents { @for name in &v.dependents { li { a href=(package_url(ctx, name, None)) { (name) } } } }
        }
    }
}

fn versions(ctx: &Ctx, v: &PackageView) -> Markup {
    let rows = if v.all_versions { v.versions.len() } else { VERSION_ROWS.min(v.versions.len()) };
    let tags: Vec<(String, String)> = v
        .doc
        .get("dist-tags")
        .and_then(Value::as_object)
        .map(|t| t.iter().map(|(k, x)| (k.clone(), x.as_str().unwrap_or("").to_string())).collect())
        .unwrap_or_default();
    html! {
        section aria-labelledby="versions-heading" {
            h2 #versions-heading { "Versions (" (v.versions.len()) ")" }
            div.scroll { table.versions #versions {
                thead { tr { th { "Version" } th { "Published" } th { "Tags" } } }
                tbody { @for (ver, date) in &v.versions[..rows] {
                    tr {
                        td { a href=(package_url(ctx, v.name, Some(ver))) { (ver) } }
                        td { (date.get(..10).unwrap_or("")) }
                        td { @for (t, _) in tags.iter().filter(|(_, x)| x == ver) { span.badge { (t) } " " } }
                    }
                } }
            } }
            @if rows < v.versions.len() {
                p { a href={ (package_url(ctx, v.name, Some(&v.version))) "&all=1#versions-heading" } { "Show all " (v.versions.len()) " versions" } }
            }
        }
    }
}

pub fn blocked(ctx: &Ctx, name: &str, reason: &str) -> Markup {
    layout(
        ctx,
        name,
        html! {
            h1 { (name) }
            div.banner.blocked role="alert" { strong { "Blocked: " } (reason) }
            p { "An administrator blocked this package: it cannot be installed from this registry." }
        },
    )
}
