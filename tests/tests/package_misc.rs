//! Package blocks, search, collaborators, download counts, and publishes with
//! bad input (which must be refused with nothing stored).

use cairn_e2e::publish::*;
use cairn_e2e::{assert_error, both_backends, Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::{json, Value};

both_backends!(
    blocks,
    block_errors,
    search,
    search_pagination_and_bad_params,
    collaborators,
    downloads,
    download_ranges_and_errors,
    publish_rejects_bad_names,
    publish_rejects_path_tricks,
    publish_rejects_bad_versions,
    publish_rejects_bad_tarballs,
    publish_rejects_bad_shapes,
    publish_rejects_oversized_body,
    bad_input_on_existing_package,
);

// ---------------------------------------------------------------- blocks

async fn blocks(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let admin = s.add_admin("admin", PW).await;
    let tgz = publish_ok(&s, &alice, "foo", "1.0.0").await;

    let (status, body) = s.get("/-/package/foo/blocks", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["blocked"], json!(false), "{body}");

    let (status, body) =
        s.call(Method::PUT, "/-/package/foo/blocks", Some(&admin), Some(&json!({"reason": "malware in postinstall"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["ok"], json!(true), "{body}");
    assert!(body.get("id").is_some_and(|v| !v.is_null()), "id in {body}");
    assert!(body.get("package_id").is_some_and(|v| !v.is_null()), "package_id in {body}");

    let (status, body) = s.get("/-/package/foo/blocks", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["blocked"], json!(true), "{body}");
    assert!(body["reason"].as_str().is_some_and(|r| r.contains("malware in postinstall")), "{body}");
    assert!(body["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')), "createdAt in {body}");

    // Every read of the package is 451 with the reason.
    for (path, accept) in [
        ("/foo", "application/json"),
        ("/foo", CORGI_ACCEPT),
        ("/foo/1.0.0", "application/json"),
        ("/foo/latest", "application/json"),
        ("/foo/-/foo-1.0.0.tgz", "*/*"),
    ] {
        let r = request(&s, Method::GET, path, None, &[("accept", accept)], None).await;
        let body = r.json();
        assert_error(r.status, &body, 451);
        assert!(body["reason"].as_str().unwrap().contains("malware in postinstall"), "GET {path}: {body}");
        // Tokens do not bypass it.
        let r = request(&s, Method::GET, path, Some(&alice), &[("accept", accept)], None).await;
        assert_eq!(r.status.as_u16(), 451, "GET {path} as the maintainer");
    }
    let before = blob_files(&s);
    let p = publish_with(&s, Some(&alice), "foo", "1.1.0", json!({}), None).await;
    assert_error_in(p.status, &p.body, &[403, 451], "publish while blocked");
    assert_eq!(blob_files(&s), before, "nothing stored by a blocked publish");

    // Only admins lift it.
    let (status, body) = s.call(Method::DELETE, "/-/package/foo/blocks", Some(&alice), None).await;
    assert_error(status, &body, 403);
    let (status, body) = s.call(Method::DELETE, "/-/package/foo/blocks", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], json!(true));
    let (status, body) = s.get("/-/package/foo/blocks", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["blocked"], json!(false), "{body}");

    let doc = packument(&s, "foo").await;
    assert!(doc["versions"].get("1.1.0").is_none(), "publish while blocked stored a version");
    let r = request(&s, Method::GET, "/foo/-/foo-1.0.0.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.bytes, tgz);
    let (status, _) = s.get("/foo/1.0.0", None).await;
    assert_eq!(status, StatusCode::OK);
    publish_ok(&s, &alice, "foo", "1.1.0").await;

    // Scoped, with the name encoded as npm does.
    publish_ok(&s, &alice, "@acme/w", "1.0.0").await;
    let (status, body) = s.call(Method::PUT, "/-/package/@acme%2fw/blocks", Some(&admin), Some(&json!({"reason": "typosquat"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for path in ["/@acme%2fw", "/@acme/w", "/@acme/w/-/w-1.0.0.tgz"] {
        let (status, body) = s.get(path, None).await;
        assert_error(status, &body, 451);
        assert!(body["reason"].as_str().unwrap().contains("typosquat"), "{body}");
    }
    // Other packages are unaffected.
    let (status, _) = s.get("/foo", None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn block_errors(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let admin = s.add_admin("admin", PW).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    // Not an admin (even the maintainer), anonymous, readonly admin token.
    let (status, body) = s.call(Method::PUT, "/-/package/foo/blocks", Some(&alice), Some(&json!({"reason": "x"}))).await;
    assert_error(status, &body, 403);
    let (status, body) = s.call(Method::PUT, "/-/package/foo/blocks", None, Some(&json!({"reason": "x"}))).await;
    assert_error(status, &body, 401);
    let ro = readonly_token(&s, &admin).await;
    let (status, body) = s.call(Method::PUT, "/-/package/foo/blocks", Some(&ro), Some(&json!({"reason": "x"}))).await;
    assert_error(status, &body, 403);
    // Bad bodies.
    let (status, body) = s.call(Method::PUT, "/-/package/foo/blocks", Some(&admin), Some(&json!({"reason": 5}))).await;
    assert_error_in(status, &body, &[400, 422], "reason not a string");
    let r =
        request(&s, Method::PUT, "/-/package/foo/blocks", Some(&admin), &[("content-type", "application/json")], Some(b"{nope".to_vec()))
            .await;
    assert_error(r.status, &r.json(), 400);
    let (status, _) = s.get("/foo", None).await;
    assert_eq!(status, StatusCode::OK, "nothing blocked by refused requests");
    // Unknown package.
    let (status, body) = s.call(Method::DELETE, "/-/package/nope/blocks", Some(&admin), None).await;
    assert_error(status, &body, 404);
}

// ---------------------------------------------------------------- search

async fn search_names(s: &Server, query: &str) -> (Value, Vec<String>) {
    let (status, body) = s.get(&format!("/-/v1/search?{query}"), None).await;
    assert_eq!(status, StatusCode::OK, "search {query}: {body}");
    let names = body["objects"]
        .as_array()
        .unwrap_or_else(|| panic!("objects in {body}"))
        .iter()
        .map(|o| o["package"]["name"].as_str().unwrap().to_string())
        .collect();
    (body, names)
}

async fn seed_search(s: &Server, alice: &str) {
    for (name, extra) in [
        ("alpha-parser", json!({"description": "A fast parser for alpha files", "keywords": ["alpha"]})),
        ("beta-tool", json!({"description": "utility with a parser inside", "keywords": ["cli", "tool"]})),
        ("gamma", json!({"description": "does gamma things", "keywords": ["parser", "gamma"]})),
        ("unrelated", json!({"description": "nothing to see", "keywords": ["misc"]})),
        ("@acme/parser-kit", json!({"description": "scoped kit", "keywords": ["kit"]})),
    ] {
        let p = publish_with(s, Some(alice), name, "1.0.0", extra, None).await;
        assert_published(&p);
    }
}

async fn search(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    seed_search(&s, &alice).await;

    // Indexing may lag a little behind the publish.
    let sr = &s;
    let found = poll(5, || async move {
        let (_, names) = search_names(sr, "text=parser&size=20").await;
        (names.len() >= 4).then_some(names)
    })
    .await;
    let mut names = found.expect("search finds the packages within 5 s");
    names.sort();
    assert_eq!(names, ["@acme/parser-kit", "alpha-parser", "beta-tool", "gamma"]);

    let (body, _) = search_names(&s, "text=parser&size=20").await;
    assert_eq!(body["total"], json!(4), "{body}");
    assert!(body["time"].is_string(), "time in {body}");
    let o = body["objects"].as_array().unwrap().iter().find(|o| o["package"]["name"] == json!("gamma")).unwrap();
    let p = &o["package"];
    assert_eq!(p["version"], json!("1.0.0"));
    assert_eq!(p["description"], json!("does gamma things"));
    assert_eq!(p["keywords"], json!(["parser", "gamma"]));
    assert!(p["date"].as_str().is_some_and(|d| d.ends_with('Z')), "date in {p}");
    assert_eq!(p["publisher"]["username"], json!("alice"), "{p}");
    assert_eq!(p["publisher"]["email"], json!("alice@example.com"), "{p}");
    let m = p["maintainers"].as_array().unwrap_or_else(|| panic!("maintainers in {p}"));
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["username"], json!("alice"), "{p}");
    assert_eq!(m[0]["email"], json!("alice@example.com"), "{p}");
    assert!(p["links"].is_object(), "links in {p}");
    let score = &o["score"];
    assert!(score["final"].is_number(), "{score}");
    for k in ["quality", "popularity", "maintenance"] {
        assert!(score["detail"][k].is_number(), "score.detail.{k} in {score}");
    }
    assert!(o["searchScore"].is_number(), "searchScore in {o}");

    // Names, descriptions and keywords.
    let (_, names) = search_names(&s, "text=cli").await;
    assert_eq!(names, ["beta-tool"]);
    let (_, names) = search_names(&s, "text=utility").await;
    assert_eq!(names, ["beta-tool"]);
    let (_, names) = search_names(&s, "text=unrelated").await;
    assert_eq!(names, ["unrelated"]);
    let (body, names) = search_names(&s, "text=zzzznotthere").await;
    assert!(names.is_empty());
    assert_eq!(body["total"], json!(0));
    // An exact name match ranks first.
    let (_, names) = search_names(&s, "text=gamma").await;
    assert_eq!(names.first().map(String::as_str), Some("gamma"));
    let (_, names) = search_names(&s, "text=alpha-parser").await;
    assert_eq!(names.first().map(String::as_str), Some("alpha-parser"));
    // Case does not matter.
    let (_, names) = search_names(&s, "text=UTILITY").await;
    assert_eq!(names, ["beta-tool"]);

    // The latest version is what search shows.
    let p = publish_with(
        &s,
        Some(&alice),
        "gamma",
        "1.1.0",
        json!({"description": "does gamma things better", "keywords": ["parser", "gamma"]}),
        None,
    )
    .await;
    assert_published(&p);
    let shown = poll(5, || async move {
        let (body, _) = search_names(sr, "text=gamma").await;
        let o = body["objects"].as_array()?.iter().find(|o| o["package"]["name"] == json!("gamma"))?.clone();
        (o["package"]["version"] == json!("1.1.0")).then_some(o)
    })
    .await;
    let o = shown.expect("search shows gamma 1.1.0 within 5 s");
    assert_eq!(o["package"]["description"], json!("does gamma things better"));

    // Unpublished packages disappear.
    let doc = write_doc(&s, &alice, "unrelated").await;
    let rev = doc["_rev"].as_str().unwrap();
    let (status, body) = s.call(Method::DELETE, &format!("/unrelated/-rev/{rev}"), Some(&alice), None).await;
    assert!(status.is_success(), "{status} {body}");
    let gone = poll(5, || async move {
        let (_, names) = search_names(sr, "text=unrelated").await;
        names.is_empty().then_some(())
    })
    .await;
    assert!(gone.is_some(), "unpublished package still in search");
}

async fn search_pagination_and_bad_params(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    seed_search(&s, &alice).await;
    let sr = &s;
    poll(5, || async move {
        let (_, names) = search_names(sr, "text=parser&size=20").await;
        (names.len() >= 4).then_some(())
    })
    .await
    .expect("indexed");

    let (body, page1) = search_names(&s, "text=parser&size=2").await;
    assert_eq!(page1.len(), 2);
    assert_eq!(body["total"], json!(4), "total counts every match, not the page");
    let (body, page2) = search_names(&s, "text=parser&size=2&from=2").await;
    assert_eq!(page2.len(), 2);
    assert_eq!(body["total"], json!(4));
    let (_, page3) = search_names(&s, "text=parser&size=2&from=4").await;
    assert!(page3.is_empty());
    let mut all: Vec<String> = page1.iter().chain(page2.iter()).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4, "pages do not overlap: {page1:?} {page2:?}");
    let (_, one) = search_names(&s, "text=parser&size=1&from=3").await;
    assert_eq!(one.len(), 1);

    // Bad or out-of-range parameters: a 4xx, or clamped to something sane.
    for q in ["text=parser&size=abc", "text=parser&size=-1", "text=parser&from=-5", "text=parser&size=100000", "text=parser&from=abc"] {
        let (status, body) = s.get(&format!("/-/v1/search?{q}"), None).await;
        if status.is_success() {
            let n = body["objects"].as_array().unwrap_or_else(|| panic!("objects for {q}: {body}")).len();
            assert!(n <= 250, "{q}: {n} objects");
        } else {
            assert_error_in(status, &body, &[400, 422], &format!("search {q}"));
        }
    }
    // Blank text is not a 500.
    let (status, body) = s.get("/-/v1/search?text=", None).await;
    assert!(status.is_success() || status.is_client_error(), "{status} {body}");
    let (status, body) = s.get("/-/v1/search", None).await;
    assert!(status.is_success() || status.is_client_error(), "{status} {body}");
}

// ---------------------------------------------------------------- collaborators

async fn collaborators(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let _bob = s.add_user("bob", PW).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    let (status, body) = s.get("/-/package/foo/collaborators", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"alice": "read-write"}));

    let doc = write_doc(&s, &alice, "foo").await;
    let rev = doc["_rev"].as_str().unwrap();
    let owners = json!({"_id": "foo", "_rev": rev, "maintainers": [
        {"name": "alice", "email": "alice@example.com"}, {"name": "bob", "email": "bob@example.com"}]});
    let (status, body) = s.call(Method::PUT, &format!("/foo/-rev/{rev}"), Some(&alice), Some(&owners)).await;
    assert!(status.is_success(), "{status} {body}");
    let (_, body) = s.get("/-/package/foo/collaborators", None).await;
    assert_eq!(body, json!({"alice": "read-write", "bob": "read-write"}));

    publish_ok(&s, &alice, "@acme/w", "1.0.0").await;
    let (status, body) = s.get("/-/package/@acme%2fw/collaborators", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"alice": "read-write"}));

    let (status, body) = s.get("/-/package/nope/collaborators", None).await;
    assert_error(status, &body, 404);
}

// ---------------------------------------------------------------- downloads

async fn start_downloads_server(backend: Backend) -> Server {
    Server::start_with(ServerOptions::new(backend).toml("downloads_flush_secs = 1")).await
}

async fn fetch_tarball_times(s: &Server, path: &str, n: usize) {
    for _ in 0..n {
        let r = request(s, Method::GET, path, None, &[], None).await;
        assert_eq!(r.status, StatusCode::OK, "GET {path}");
    }
}

async fn wait_point(s: &Server, period: &str, name: &str, want: u64) -> Value {
    let got = poll(15, || async move {
        let (status, body) = s.get(&format!("/downloads/point/{period}/{name}"), None).await;
        (status == StatusCode::OK && body["downloads"] == json!(want)).then_some(body)
    })
    .await;
    match got {
        Some(b) => b,
        None => {
            let (status, body) = s.get(&format!("/downloads/point/{period}/{name}"), None).await;
            panic!("downloads/point/{period}/{name} never reached {want} in 15 s; last answer {status} {body}");
        }
    }
}

async fn downloads(backend: Backend) {
    let s = start_downloads_server(backend).await;
    let alice = s.add_user("alice", PW).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    publish_ok(&s, &alice, "bar", "1.0.0").await;
    let today = today_utc();

    let (status, body) = s.get("/downloads/point/last-day/foo", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["downloads"], json!(0));

    fetch_tarball_times(&s, "/foo/-/foo-1.0.0.tgz", 3).await;
    fetch_tarball_times(&s, "/bar/-/bar-1.0.0.tgz", 1).await;
    // Metadata reads and HEAD are not downloads.
    let _ = s.get("/foo", None).await;
    let _ = request(&s, Method::HEAD, "/foo/-/foo-1.0.0.tgz", None, &[], None).await;

    let body = wait_point(&s, "last-day", "foo", 3).await;
    assert_eq!(body["package"], json!("foo"));
    let (start, end) = (body["start"].as_str().unwrap(), body["end"].as_str().unwrap());
    assert_eq!(start.len(), 10, "YYYY-MM-DD: {body}");
    assert_eq!(end.len(), 10, "YYYY-MM-DD: {body}");
    assert!(start <= end);
    assert_eq!(end, today, "{body}");
    wait_point(&s, "last-day", "bar", 1).await;
    let body = wait_point(&s, "last-week", "foo", 3).await;
    assert_eq!(body["package"], json!("foo"));
    wait_point(&s, &format!("{today}:{today}"), "foo", 3).await;

    let (status, body) = s.get("/downloads/range/last-week/foo", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["package"], json!("foo"));
    assert!(body["start"].is_string() && body["end"].is_string(), "{body}");
    let days = body["downloads"].as_array().unwrap_or_else(|| panic!("downloads list in {body}"));
    assert!((7..=8).contains(&days.len()), "a week of days: {body}");
    let total: u64 = days.iter().map(|d| d["downloads"].as_u64().unwrap()).sum();
    assert_eq!(total, 3, "{body}");
    let today_entry = days.iter().find(|d| d["day"] == json!(today)).unwrap_or_else(|| panic!("today in {body}"));
    assert_eq!(today_entry["downloads"], json!(3));
    let mut sorted: Vec<&str> = days.iter().map(|d| d["day"].as_str().unwrap()).collect();
    let orig = sorted.clone();
    sorted.sort();
    assert_eq!(orig, sorted, "days in order");

    let (status, body) = s.get(&format!("/downloads/range/{today}:{today}/foo"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["downloads"], json!([{"day": today, "downloads": 3}]));
    assert_eq!(body["start"], json!(today));
    assert_eq!(body["end"], json!(today));

    // Counts survive the buffer flush and a restart.
    let mut s = s;
    s.restart().await;
    let body = wait_point(&s, "last-day", "foo", 3).await;
    assert_eq!(body["package"], json!("foo"));
    fetch_tarball_times(&s, "/foo/-/foo-1.0.0.tgz", 1).await;
    wait_point(&s, "last-day", "foo", 4).await;

    // Scoped.
    publish_ok(&s, &alice, "@acme/w", "1.0.0").await;
    fetch_tarball_times(&s, "/@acme/w/-/w-1.0.0.tgz", 2).await;
    let body = wait_point(&s, "last-day", "@acme/w", 2).await;
    assert_eq!(body["package"], json!("@acme/w"));
}

async fn download_ranges_and_errors(backend: Backend) {
    let s = start_downloads_server(backend).await;
    let alice = s.add_user("alice", PW).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    for period in ["last-day", "last-week", "last-month", "2024-01-01:2024-01-31"] {
        let (status, body) = s.get(&format!("/downloads/point/{period}/foo"), None).await;
        assert_eq!(status, StatusCode::OK, "point {period}: {body}");
        assert_eq!(body["downloads"], json!(0), "point {period}");
        let (status, body) = s.get(&format!("/downloads/range/{period}/foo"), None).await;
        assert_eq!(status, StatusCode::OK, "range {period}: {body}");
        assert!(body["downloads"].is_array(), "range {period}: {body}");
    }
    let (_, body) = s.get("/downloads/range/2024-01-01:2024-01-31/foo", None).await;
    assert_eq!(body["start"], json!("2024-01-01"));
    assert_eq!(body["end"], json!("2024-01-31"));
    let days = body["downloads"].as_array().unwrap();
    assert_eq!(days.len(), 31, "one entry per day: {body}");
    assert_eq!(days[0], json!({"day": "2024-01-01", "downloads": 0}));
    assert_eq!(days[30], json!({"day": "2024-01-31", "downloads": 0}));

    for period in
        ["yesterday-ish", "2024-13-01:2024-12-31", "2024-02-30:2024-03-01", "2024-03-01:2024-01-01", "2024-01-01:", "last-century"]
    {
        let (status, body) = s.get(&format!("/downloads/point/{period}/foo"), None).await;
        assert_error_in(status, &body, &[400, 404, 422], &format!("point {period}"));
        let (status, body) = s.get(&format!("/downloads/range/{period}/foo"), None).await;
        assert_error_in(status, &body, &[400, 404, 422], &format!("range {period}"));
    }
    let (status, body) = s.get("/downloads/point/last-day/nope", None).await;
    assert_error(status, &body, 404);
    let (status, body) = s.get("/downloads/range/last-day/nope", None).await;
    assert_error(status, &body, 404);
}

// ---------------------------------------------------------------- bad publishes

/// Sends `body` to PUT `path` as `token`; expects a 4xx (one of `allowed`) with
/// the error body and nothing stored: no new blob, and `path` still 404.
/// Returns what went wrong, if anything.
async fn refused(s: &Server, token: &str, path: &str, body: &Value, allowed: &[u16], what: &str) -> Option<String> {
    let before = blob_files(s);
    let (status, resp) = s.call(Method::PUT, path, Some(token), Some(body)).await;
    let mut problems = Vec::new();
    let error_body = resp["error"].as_str().is_some_and(|e| !e.is_empty()) && resp["reason"].as_str().is_some_and(|r| !r.is_empty());
    if !allowed.contains(&status.as_u16()) || !error_body {
        problems.push(format!("PUT {path} answered {status} {resp}, expected one of {allowed:?} with an error body"));
    }
    if blob_files(s) != before {
        problems.push("a blob was stored".to_string());
    }
    let (status, doc) = s.get(path, None).await;
    if status != StatusCode::NOT_FOUND {
        problems.push(format!("GET {path} afterwards answered {status} (package stored): {doc}"));
    }
    (!problems.is_empty()).then(|| format!("{what}: {}", problems.join("; ")))
}

#[track_caller]
fn assert_no_failures(failures: &[String]) {
    assert!(failures.is_empty(), "{} case(s) failed:\n  {}", failures.len(), failures.join("\n  "));
}

/// A change to an otherwise correct publish body of `name`@1.0.0.
type Mutation = fn(&mut Value, &str);

/// Each case publishes its own package name, so an accepted bad body cannot spoil the next case.
async fn refuse_cases(s: &Server, token: &str, cases: &[(&str, &[u16], Mutation)]) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, (what, allowed, mutate)) in cases.iter().enumerate() {
        let name = format!("case-{i}");
        let tgz = tarball(&name, "1.0.0", json!({}));
        let mut body = publish_body(&name, "1.0.0", &tgz, None, &s.base);
        mutate(&mut body, &name);
        failures.extend(refused(s, token, &format!("/{name}"), &body, allowed, what).await);
    }
    failures
}

fn att(name: &str) -> String {
    format!("{name}-1.0.0.tgz")
}

async fn publish_rejects_bad_names(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let mut failures = Vec::new();

    // URL name and body name differ.
    let tgz = tarball("bar", "1.0.0", json!({}));
    let body = publish_body("bar", "1.0.0", &tgz, None, &s.base);
    failures.extend(refused(&s, &alice, "/foo", &body, &[422], "URL name != body name").await);
    let (status, _) = s.get("/bar", None).await;
    if status != StatusCode::NOT_FOUND {
        failures.push(format!("URL name != body name: GET /bar answered {status}"));
    }

    let long = "a".repeat(215);
    for name in
        ["Uppercase", "MIXED-case", ".hidden", "_private", "has space", "a:b", "é-unicode", long.as_str(), "@scope/", "@/x", "@Scope/x"]
    {
        let tgz = tarball(name, "1.0.0", json!({}));
        let body = publish_body(name, "1.0.0", &tgz, None, &s.base);
        let path = format!("/{}", enc(name).replace(' ', "%20"));
        failures.extend(refused(&s, &alice, &path, &body, &[422], &format!("name {name:?}")).await);
    }
    assert_no_failures(&failures);
    // 214 characters is fine.
    let ok = "b".repeat(214);
    publish_ok(&s, &alice, &ok, "1.0.0").await;
}

async fn publish_rejects_path_tricks(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let before = blob_files(&s);
    let mut failures = Vec::new();
    for (raw_path, name) in [
        ("/%2e%2e", ".."),
        ("/%2E%2E", ".."),
        ("/%2e", "."),
        ("/foo%2f..%2fbar", "foo/../bar"),
        ("/foo%2F..%2Fbar", "foo/../bar"),
        ("/..%2fetc%2fpasswd", "../etc/passwd"),
        ("/%40scope%2f..%2f..%2fx", "@scope/../../x"),
        ("/foo%00bar", "foo\u{0}bar"),
        ("/foo%5cbar", "foo\\bar"),
    ] {
        let tgz = tarball("x", "1.0.0", json!({}));
        let body = serde_json::to_vec(&publish_body(name, "1.0.0", &tgz, None, &s.base)).unwrap();
        let (status, resp) = raw_http(&s, "PUT", raw_path, Some(&alice), Some(&body)).await;
        if !(400..500).contains(&status) || !resp["error"].is_string() || !resp["reason"].is_string() {
            failures.push(format!("PUT {raw_path}: answered {status} {resp}, expected a 4xx with an error body"));
        }
        let (status, resp) = raw_http(&s, "GET", raw_path, None, None).await;
        if !(400..500).contains(&status) {
            failures.push(format!("GET {raw_path}: answered {status} {resp}, expected a 4xx"));
        }
    }
    assert_no_failures(&failures);
    assert_eq!(blob_files(&s), before, "a blob was stored");
    // Nothing escaped the blob store either.
    let outside: Vec<_> = std::fs::read_dir(s.data_dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n == "bar" || n == "x" || n.ends_with(".tgz"))
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
}

async fn publish_rejects_bad_versions(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let mut failures = Vec::new();
    for (i, v) in ["1.0", "1", "not-a-version", "1.0.0.0", "01.0.0", "1.0.0-", "", "../../1.0.0"].into_iter().enumerate() {
        let name = format!("v-{i}");
        let tgz = tarball(&name, v, json!({}));
        let body = publish_body(&name, v, &tgz, None, &s.base);
        failures.extend(refused(&s, &alice, &format!("/{name}"), &body, &[422], &format!("version {v:?}")).await);
    }
    let cases: &[(&str, &[u16], Mutation)] = &[
        // The manifest's version must be the key it is published under.
        ("versions key != manifest version", &[400, 422], |b, _| b["versions"]["1.0.0"]["version"] = json!("2.0.0")),
        // A dist-tag pointing at a version that is not in the publish.
        ("dist-tag to a version not published", &[400, 422], |b, _| b["dist-tags"] = json!({"latest": "9.9.9"})),
    ];
    failures.extend(refuse_cases(&s, &alice, cases).await);
    assert_no_failures(&failures);
}

async fn publish_rejects_bad_tarballs(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    fn set_attachment(b: &mut Value, n: &str, data: &[u8]) {
        b["_attachments"][att(n)] = json!({"content_type": "application/octet-stream", "data": b64(data), "length": data.len()});
        b["versions"]["1.0.0"]["dist"]["shasum"] = json!(sha1_hex(data));
        b["versions"]["1.0.0"]["dist"]["integrity"] = json!(integrity(data));
    }
    let cases: &[(&str, &[u16], Mutation)] = &[
        ("shasum mismatch", &[422], |b, _| b["versions"]["1.0.0"]["dist"]["shasum"] = json!(sha1_hex(b"other"))),
        ("integrity mismatch", &[422], |b, _| b["versions"]["1.0.0"]["dist"]["integrity"] = json!(integrity(b"other"))),
        ("malformed integrity", &[400, 422], |b, _| b["versions"]["1.0.0"]["dist"]["integrity"] = json!("sha512-notbase64!!")),
        ("length mismatch", &[422], |b, n| {
            let len = b["_attachments"][att(n)]["length"].as_u64().unwrap();
            b["_attachments"][att(n)]["length"] = json!(len + 1);
        }),
        ("invalid base64", &[400, 422], |b, n| b["_attachments"][att(n)]["data"] = json!("!!!! this is not base64 ####")),
        // Well-formed and consistent, but not a gzip.
        ("not gzip", &[400, 422], |b, n| set_attachment(b, n, b"hello, I am not a tarball")),
        ("empty tarball", &[400, 422], |b, n| set_attachment(b, n, b"")),
        // A gzip, but not of a tar.
        ("gzip of garbage", &[400, 422], |b, n| set_attachment(b, n, &gzip(b"not a tar archive at all"))),
        // The attachment is for another version.
        ("attachment for another version", &[400, 422], |b, n| {
            let a = b["_attachments"][att(n)].clone();
            b["_attachments"] = json!({ format!("{n}-2.0.0.tgz"): a });
        }),
        // Two versions in one publish.
        ("two versions at once", &[400, 422], |b, n| {
            let tgz2 = tarball(n, "2.0.0", json!({}));
            let other = publish_body(n, "2.0.0", &tgz2, None, "http://x");
            b["versions"]["2.0.0"] = other["versions"]["2.0.0"].clone();
            b["_attachments"][format!("{n}-2.0.0.tgz")] = other["_attachments"][format!("{n}-2.0.0.tgz")].clone();
        }),
    ];
    let failures = refuse_cases(&s, &alice, cases).await;
    assert_no_failures(&failures);
    // And then the real thing works.
    publish_ok(&s, &alice, "foo", "1.0.0").await;
}

async fn publish_rejects_bad_shapes(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let cases: &[(&str, &[u16], Mutation)] = &[
        ("empty _attachments", &[400, 422], |b, _| b["_attachments"] = json!({})),
        // Without attachments the PUT reads as an update of a document that does not exist: 404 is fine too.
        ("no _attachments", &[400, 404, 422], |b, _| {
            b.as_object_mut().unwrap().remove("_attachments");
        }),
        ("empty versions", &[400, 422], |b, _| b["versions"] = json!({})),
        ("no versions", &[400, 422], |b, _| {
            b.as_object_mut().unwrap().remove("versions");
        }),
        ("versions a string", &[400, 422], |b, _| b["versions"] = json!("1.0.0")),
        ("version manifest a list", &[400, 422], |b, _| b["versions"]["1.0.0"] = json!([1, 2])),
        ("dist-tags a list", &[400, 422], |b, _| b["dist-tags"] = json!(["latest"])),
        ("no dist", &[400, 422], |b, _| {
            b["versions"]["1.0.0"].as_object_mut().unwrap().remove("dist");
        }),
        ("dist a string", &[400, 422], |b, _| b["versions"]["1.0.0"]["dist"] = json!("x")),
        ("data a number", &[400, 422], |b, n| b["_attachments"][att(n)]["data"] = json!(12345)),
        ("length a string", &[400, 422], |b, n| b["_attachments"][att(n)]["length"] = json!("many")),
        ("dependencies a string", &[400, 422], |b, _| b["versions"]["1.0.0"]["dependencies"] = json!("left-pad")),
        ("name a number", &[400, 422], |b, _| b["name"] = json!(42)),
        ("body a list", &[400, 422], |b, _| *b = json!([1, 2, 3])),
        ("body a string", &[400, 422], |b, n| *b = json!(n)),
    ];
    let mut failures = refuse_cases(&s, &alice, cases).await;

    // Not JSON at all.
    let before = blob_files(&s);
    for raw in [&b"{not json"[..], b"", b"\xff\xfe", b"{\"name\": \"foo\", "] {
        let r = request(&s, Method::PUT, "/foo", Some(&alice), &[("content-type", "application/json")], Some(raw.to_vec())).await;
        let body = r.json();
        if r.status != StatusCode::BAD_REQUEST || !body["error"].is_string() {
            failures.push(format!("raw body {:?}: answered {} {body}, expected 400", String::from_utf8_lossy(raw), r.status));
        }
    }
    if blob_files(&s) != before {
        failures.push("malformed JSON stored a blob".into());
    }
    let (status, body) = s.get("/foo", None).await;
    if status != StatusCode::NOT_FOUND {
        failures.push(format!("malformed JSON: GET /foo answered {status} {body}"));
    }
    assert_no_failures(&failures);
    // A good body still works afterwards.
    publish_ok(&s, &alice, "foo", "1.0.0").await;
}

async fn publish_rejects_oversized_body(backend: Backend) {
    let s = Server::start_with(ServerOptions::new(backend).toml("max_body_bytes = 65536")).await;
    let alice = s.add_user("alice", PW).await;
    let readme: String = (0..100_000u32).map(|i| char::from(b'a' + (i.wrapping_mul(2654435761) >> 27) as u8 % 26)).collect();
    let tgz = tarball("foo", "1.0.0", json!({"readme": readme}));
    let body = publish_body("foo", "1.0.0", &tgz, None, &s.base);
    assert!(serde_json::to_vec(&body).unwrap().len() > 65536);
    let before = blob_files(&s);
    let (status, resp) = s.call(Method::PUT, "/foo", Some(&alice), Some(&body)).await;
    assert_error(status, &resp, 413);
    assert_eq!(blob_files(&s), before);
    let (status, resp) = s.get("/foo", None).await;
    assert_error(status, &resp, 404);
    // A small one is fine.
    publish_ok(&s, &alice, "foo", "1.0.0").await;
}

async fn bad_input_on_existing_package(backend: Backend) {
    // Refused publishes of a new version leave the existing versions alone.
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let tgz1 = publish_ok(&s, &alice, "foo", "1.0.0").await;
    let before_doc = packument(&s, "foo").await;
    let before = blob_files(&s);
    let tgz = tarball("foo", "1.1.0", json!({}));
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut b = publish_body("foo", "1.1.0", &tgz, None, &s.base);
    b["versions"]["1.1.0"]["dist"]["integrity"] = json!(integrity(b"x"));
    cases.push(("integrity mismatch", b));
    let mut b = publish_body("foo", "1.1.0", &tgz, None, &s.base);
    b["versions"]["1.1.0"]["dist"]["shasum"] = json!(sha1_hex(b"x"));
    cases.push(("shasum mismatch", b));
    let mut b = publish_body("foo", "1.1.0", &tgz, None, &s.base);
    b["_attachments"] = json!({});
    cases.push(("no attachments", b));
    let mut b = publish_body("foo", "1.1.0", &tgz, None, &s.base);
    b["_attachments"]["foo-1.1.0.tgz"]["length"] = json!(3);
    cases.push(("length mismatch", b));
    let b = publish_body("FOO", "1.1.0", &tgz, None, &s.base);
    cases.push(("body name differs", b));
    for (what, body) in cases {
        let (status, resp) = s.call(Method::PUT, "/foo", Some(&alice), Some(&body)).await;
        assert_error_in(status, &resp, &[400, 422], what);
        assert_eq!(blob_files(&s), before, "{what}: blob stored");
        let doc = packument(&s, "foo").await;
        assert_eq!(doc["versions"], before_doc["versions"], "{what}");
        assert_eq!(doc["dist-tags"], before_doc["dist-tags"], "{what}");
        assert_eq!(doc["_rev"], before_doc["_rev"], "{what}");
    }
    let r = request(&s, Method::GET, "/foo/-/foo-1.0.0.tgz", None, &[], None).await;
    assert_eq!(r.bytes, tgz1);
    let r = request(&s, Method::GET, "/foo/-/foo-1.1.0.tgz", None, &[], None).await;
    assert_error(r.status, &r.json(), 404);
    // Other routes with bad input.
    let (status, body) = s.call(Method::POST, "/foo", Some(&alice), Some(&json!({}))).await;
    assert_error_in(status, &body, &[404, 405], "POST /foo");
    let (status, body) = s.call(Method::PUT, "/-/package/foo/dist-tags/x", Some(&alice), None).await;
    assert_error_in(status, &body, &[400, 422], "dist-tag PUT without body");
}
