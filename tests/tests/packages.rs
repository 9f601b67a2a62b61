//! Publishing and reading packages: packuments (full and abbreviated), versions,
//! ranges, tarballs, ETags, scoped names, publish permissions and races.

use cairn_e2e::publish::*;
use cairn_e2e::{assert_error, both_backends, Backend, Method, Server, StatusCode};
use serde_json::{json, Value};

both_backends!(
    publish_and_read_full_packument,
    tarball_url_points_at_this_server,
    abbreviated_packument,
    scoped_packages,
    etag_and_gzip,
    versions_tags_and_ranges,
    tarball_downloads,
    publish_permissions,
    readonly_and_anonymous_cannot_publish,
    first_publish_with_other_tag_sets_latest,
    concurrent_publish_of_same_version,
);

async fn publish_and_read_full_packument(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let (status, body) = s.get("/foo", None).await;
    assert_error(status, &body, 404);

    let tgz1 = publish_ok(&s, &alice, "foo", "1.0.0").await;
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["_id"], json!("foo"));
    assert_eq!(doc["name"], json!("foo"));
    assert!(doc["_rev"].as_str().is_some_and(|r| !r.is_empty()), "_rev in {doc}");
    assert_eq!(doc["dist-tags"], json!({"latest": "1.0.0"}));
    let v = &doc["versions"]["1.0.0"];
    assert_eq!(v["name"], json!("foo"));
    assert_eq!(v["version"], json!("1.0.0"));
    assert_eq!(v["description"], json!("foo test package"));
    assert_eq!(v["main"], json!("index.js"));
    assert_eq!(v["_id"], json!("foo@1.0.0"));
    assert_eq!(v["dist"]["tarball"], json!(format!("{}/foo/-/foo-1.0.0.tgz", s.base)));
    assert_eq!(v["dist"]["shasum"], json!(sha1_hex(&tgz1)));
    assert_eq!(v["dist"]["integrity"], json!(integrity(&tgz1)));
    for key in ["created", "modified", "1.0.0"] {
        assert!(doc["time"][key].as_str().is_some_and(|t| t.len() >= 20 && t.ends_with('Z')), "time.{key} in {doc}");
    }
    assert_eq!(doc["maintainers"], json!([{"name": "alice", "email": "alice@example.com"}]));
    // The upload itself is never echoed back.
    assert!(doc.get("_attachments").is_none_or(|a| a == &json!({})), "_attachments in {doc}");
    assert!(!doc.to_string().contains(&b64(&tgz1)), "tarball data in the packument");
    let rev1 = doc["_rev"].as_str().unwrap().to_string();
    // Without an Accept header naming the abbreviated form (curl, `Accept: */*`) it is the full document.
    let r = request(&s, Method::GET, "/foo", None, &[("accept", "*/*")], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").unwrap_or_default().starts_with("application/json"), "Accept: */* gets application/json");
    assert_eq!(r.json(), doc, "Accept: */* gets the full packument");
    let (status, any) = s.get("/foo", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(any, doc, "the default client request gets the full packument");

    // A second version: latest moves, both versions and times are there, the rev changes.
    let tgz2 = publish_ok(&s, &alice, "foo", "1.1.0").await;
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["dist-tags"], json!({"latest": "1.1.0"}));
    let mut versions: Vec<&String> = doc["versions"].as_object().unwrap().keys().collect();
    versions.sort();
    assert_eq!(versions, ["1.0.0", "1.1.0"]);
    assert_eq!(doc["versions"]["1.1.0"]["dist"]["integrity"], json!(integrity(&tgz2)));
    assert_eq!(doc["versions"]["1.0.0"]["dist"]["integrity"], json!(integrity(&tgz1)));
    assert!(doc["time"]["1.1.0"].is_string() && doc["time"]["1.0.0"].is_string(), "{}", doc["time"]);
    assert!(doc["time"]["modified"].as_str().unwrap() >= doc["time"]["1.1.0"].as_str().unwrap());
    assert!(doc["time"]["created"].as_str().unwrap() <= doc["time"]["1.0.0"].as_str().unwrap());
    assert_ne!(doc["_rev"].as_str().unwrap(), rev1, "_rev changes on a write");

    let (status, body) = s.get("/nope", None).await;
    assert_error(status, &body, 404);
}

async fn tarball_url_points_at_this_server(backend: Backend) {
    // npm puts its configured registry URL into dist.tarball; the server must serve its own.
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let tgz = tarball("foo", "1.0.0", json!({}));
    let body = publish_body("foo", "1.0.0", &tgz, None, "https://registry.example.invalid/");
    let (status, resp) = s.call(Method::PUT, "/foo", Some(&alice), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["versions"]["1.0.0"]["dist"]["tarball"], json!(format!("{}/foo/-/foo-1.0.0.tgz", s.base)));
}

const INSTALL_FIELDS: &[&str] = &[
    "name",
    "version",
    "dependencies",
    "optionalDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "devDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "bin",
    "engines",
    "os",
    "cpu",
    "directories",
    "dist",
    "deprecated",
    "hasInstallScript",
    "_hasShrinkwrap",
    "funding",
    "license",
    "acceptDependencies",
    "libc",
];

async fn abbreviated_packument(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let p = publish_with(
        &s,
        Some(&alice),
        "foo",
        "1.0.0",
        json!({
            "readme": "# foo\n\nA long readme.",
            "keywords": ["abc"],
            "scripts": {"postinstall": "node build.js", "test": "true"},
            "bin": {"foo": "cli.js"},
            "engines": {"node": ">=18"},
            "os": ["linux"],
            "cpu": ["x64"],
            "dependencies": {"left-pad": "^1.3.0"},
            "optionalDependencies": {"fsevents": "^2.0.0"},
            "peerDependencies": {"react": ">=17"},
            "peerDependenciesMeta": {"react": {"optional": true}},
            "directories": {"lib": "lib"},
            "author": {"name": "Alice"},
            "repository": {"type": "git", "url": "https://example.com/foo.git"},
        }),
        None,
    )
    .await;
    assert_published(&p);
    publish_ok(&s, &alice, "foo", "1.1.0").await;

    let r = request(&s, Method::GET, "/foo", None, &[("accept", CORGI_ACCEPT)], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/vnd.npm.install-v1+json"), "content-type {ct:?}");
    let doc = r.json();
    for key in ["name", "modified", "dist-tags", "versions", "time"] {
        assert!(doc.get(key).is_some(), "{key} missing in abbreviated {doc}");
    }
    for key in ["_rev", "maintainers", "readme", "description", "users", "_attachments"] {
        assert!(doc.get(key).is_none(), "{key} must not be in the abbreviated packument: {doc}");
    }
    assert_eq!(doc["name"], json!("foo"));
    assert_eq!(doc["dist-tags"], json!({"latest": "1.1.0"}));
    let v = &doc["versions"]["1.0.0"];
    for key in v.as_object().unwrap().keys() {
        assert!(INSTALL_FIELDS.contains(&key.as_str()), "{key} is not an install field: {v}");
    }
    for key in ["description", "readme", "scripts", "keywords", "author", "repository", "main", "_id", "_npmVersion"] {
        assert!(v.get(key).is_none(), "{key} must not be in an abbreviated version: {v}");
    }
    assert_eq!(v["name"], json!("foo"));
    assert_eq!(v["version"], json!("1.0.0"));
    assert_eq!(v["hasInstallScript"], json!(true));
    assert_eq!(v["bin"], json!({"foo": "cli.js"}));
    assert_eq!(v["engines"], json!({"node": ">=18"}));
    assert_eq!(v["os"], json!(["linux"]));
    assert_eq!(v["cpu"], json!(["x64"]));
    assert_eq!(v["dependencies"], json!({"left-pad": "^1.3.0"}));
    assert_eq!(v["optionalDependencies"], json!({"fsevents": "^2.0.0"}));
    assert_eq!(v["peerDependencies"], json!({"react": ">=17"}));
    assert_eq!(v["peerDependenciesMeta"], json!({"react": {"optional": true}}));
    assert_eq!(v["directories"], json!({"lib": "lib"}));
    assert_eq!(v["dist"]["integrity"], json!(integrity(&p.tarball)));
    assert_eq!(v["dist"]["shasum"], json!(sha1_hex(&p.tarball)));
    assert_eq!(v["dist"]["tarball"], json!(format!("{}/foo/-/foo-1.0.0.tgz", s.base)));
    // Only "test" in scripts: no install script.
    let v2 = &doc["versions"]["1.1.0"];
    assert!(v2.get("hasInstallScript").is_none_or(|h| h == &json!(false)), "{v2}");

    // The full document still has everything.
    let r = request(&s, Method::GET, "/foo", None, &[("accept", "application/json")], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").unwrap_or_default().starts_with("application/json"));
    let full = r.json();
    assert_eq!(full["versions"]["1.0.0"]["description"], json!("foo test package"));
    assert_eq!(full["versions"]["1.0.0"]["scripts"]["postinstall"], json!("node build.js"));
    assert_eq!(full["versions"]["1.0.0"]["keywords"], json!(["abc"]));
    assert!(full["_rev"].is_string() && full["maintainers"].is_array());

    // Unknown package, abbreviated: still a 404 with the error body.
    let r = request(&s, Method::GET, "/nope", None, &[("accept", CORGI_ACCEPT)], None).await;
    assert_error(r.status, &r.json(), 404);
}

async fn scoped_packages(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let name = "@acme/widget";
    let tgz = tarball(name, "1.0.0", json!({}));
    let body = publish_body(name, "1.0.0", &tgz, None, &s.base);
    assert!(body["_attachments"].get("@acme/widget-1.0.0.tgz").is_some(), "npm's attachment key");
    let (status, resp) = s.call(Method::PUT, "/@acme%2fwidget", Some(&alice), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");

    for path in ["/@acme%2fwidget", "/@acme/widget", "/@acme%2Fwidget"] {
        let r = request(&s, Method::GET, path, None, &[("accept", "application/json")], None).await;
        let doc = r.json();
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {doc}");
        assert_eq!(doc["name"], json!(name), "GET {path}");
        assert_eq!(doc["_id"], json!(name), "GET {path}");
        assert_eq!(doc["versions"]["1.0.0"]["_id"], json!("@acme/widget@1.0.0"));
        let r = request(&s, Method::GET, path, None, &[("accept", CORGI_ACCEPT)], None).await;
        assert_eq!(r.status, StatusCode::OK, "abbreviated GET {path}");
        assert_eq!(r.json()["name"], json!(name));
    }
    for path in ["/@acme%2fwidget/1.0.0", "/@acme/widget/1.0.0", "/@acme/widget/latest", "/@acme%2fwidget/%5E1.0.0"] {
        let (status, v) = s.get(path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {v}");
        assert_eq!(v["version"], json!("1.0.0"), "GET {path}");
    }
    let doc = packument(&s, name).await;
    let url = doc["versions"]["1.0.0"]["dist"]["tarball"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/", s.base)), "dist.tarball {url} on this server");
    assert_eq!(url, format!("{}/@acme/widget/-/widget-1.0.0.tgz", s.base));
    let r = request(&s, Method::GET, "/@acme/widget/-/widget-1.0.0.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.bytes, tgz);
    let r = request(&s, Method::GET, "/@acme%2fwidget/-/widget-1.0.0.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.bytes, tgz);
    let (status, body) = s.get("/@acme%2fother", None).await;
    assert_error(status, &body, 404);
    // Another scope with the same base name is another package.
    let (status, body) = s.get("/@other%2fwidget", None).await;
    assert_error(status, &body, 404);
    let (status, body) = s.get("/widget", None).await;
    assert_error(status, &body, 404);
}

async fn etag_and_gzip(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    // A readme makes the document large enough that compressing it is worth it.
    let readme = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(100);
    let p = publish_with(&s, Some(&alice), "foo", "1.0.0", json!({"readme": readme}), None).await;
    assert_published(&p);

    for accept in ["application/json", CORGI_ACCEPT] {
        let r = request(&s, Method::GET, "/foo", None, &[("accept", accept)], None).await;
        assert_eq!(r.status, StatusCode::OK);
        let etag = r.header("etag").unwrap_or_else(|| panic!("ETag header ({accept})"));
        assert!(!etag.is_empty());
        let identity = r.json();

        let r2 = request(&s, Method::GET, "/foo", None, &[("accept", accept), ("if-none-match", &etag)], None).await;
        assert_eq!(r2.status, StatusCode::NOT_MODIFIED, "If-None-Match {etag} ({accept})");
        assert!(r2.bytes.is_empty(), "304 has no body");
        let r3 = request(&s, Method::GET, "/foo", None, &[("accept", accept), ("if-none-match", "\"something-else\"")], None).await;
        assert_eq!(r3.status, StatusCode::OK);

        let gz = request(&s, Method::GET, "/foo", None, &[("accept", accept), ("accept-encoding", "gzip")], None).await;
        assert_eq!(gz.status, StatusCode::OK);
        assert_eq!(gz.header("content-encoding").as_deref(), Some("gzip"), "gzip for Accept-Encoding: gzip ({accept})");
        let decoded: Value = serde_json::from_slice(&gunzip(&gz.bytes)).expect("gzipped JSON");
        assert_eq!(decoded, identity, "gzipped body equals the identity body ({accept})");
        assert!(gz.bytes.len() < serde_json::to_vec(&identity).unwrap().len());
    }

    let r = request(&s, Method::GET, "/foo", None, &[], None).await;
    let etag1 = r.header("etag").unwrap();
    let r = request(&s, Method::GET, "/foo", None, &[("accept", CORGI_ACCEPT)], None).await;
    let corgi_etag1 = r.header("etag").unwrap();
    publish_ok(&s, &alice, "foo", "1.1.0").await;
    let r = request(&s, Method::GET, "/foo", None, &[], None).await;
    let etag2 = r.header("etag").unwrap();
    assert_ne!(etag1, etag2, "ETag changes with a new version");
    let r = request(&s, Method::GET, "/foo", None, &[("if-none-match", &etag1)], None).await;
    assert_eq!(r.status, StatusCode::OK, "stale ETag gives the new document");
    assert!(r.json()["versions"]["1.1.0"].is_object());
    let r = request(&s, Method::GET, "/foo", None, &[("accept", CORGI_ACCEPT), ("if-none-match", &corgi_etag1)], None).await;
    assert_eq!(r.status, StatusCode::OK, "stale abbreviated ETag");
    assert!(r.json()["versions"]["1.1.0"].is_object());
}

async fn versions_tags_and_ranges(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    publish_tagged(&s, &alice, "foo", "1.2.0", "next").await;
    publish_tagged(&s, &alice, "foo", "2.0.0-beta.1", "beta").await;
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["dist-tags"], json!({"latest": "1.0.0", "next": "1.2.0", "beta": "2.0.0-beta.1"}));

    let cases = [
        ("/foo/1.0.0", "1.0.0"),
        ("/foo/1.2.0", "1.2.0"),
        ("/foo/2.0.0-beta.1", "2.0.0-beta.1"),
        ("/foo/latest", "1.0.0"),
        ("/foo/next", "1.2.0"),
        ("/foo/beta", "2.0.0-beta.1"),
        // Ranges: the latest tag wins when it satisfies, else the highest match.
        ("/foo/%5E1.0.0", "1.0.0"),
        ("/foo/^1.0.0", "1.0.0"),
        ("/foo/%5E1.1.0", "1.2.0"),
        ("/foo/~1.2", "1.2.0"),
        ("/foo/%3E%3D1.0.0", "1.0.0"),
        ("/foo/%3E1.0.0", "1.2.0"),
        ("/foo/*", "1.0.0"),
        ("/foo/1.x", "1.0.0"),
        ("/foo/%3E%3D1.1.0%20%3C2.0.0", "1.2.0"),
    ];
    for (path, want) in cases {
        let (status, v) = s.get(path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {v}");
        assert_eq!(v["version"], json!(want), "GET {path}");
        assert_eq!(v["name"], json!("foo"), "GET {path}");
        assert_eq!(v["_id"], json!(format!("foo@{want}")), "GET {path}");
        assert_eq!(v["dist"]["tarball"], json!(format!("{}/foo/-/foo-{want}.tgz", s.base)), "GET {path}");
    }
    // Prereleases only match ranges that name them.
    let (status, body) = s.get("/foo/%5E2.0.0", None).await;
    assert_error(status, &body, 404);
    for path in ["/foo/3.0.0", "/foo/%5E9.0.0", "/foo/nosuchtag", "/nope/1.0.0", "/nope/latest"] {
        let (status, body) = s.get(path, None).await;
        assert_error(status, &body, 404);
    }
    for path in ["/foo/%3E%3D%3E%3D1", "/foo/1.0.0.0.0", "/foo/%21%21"] {
        let (status, body) = s.get(path, None).await;
        assert_error_in(status, &body, &[404, 422], &format!("GET {path}"));
    }
}

async fn tarball_downloads(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let tgz = publish_ok(&s, &alice, "foo", "1.0.0").await;
    let tgz2 = publish_ok(&s, &alice, "foo", "1.1.0").await;

    let r = request(&s, Method::GET, "/foo/-/foo-1.0.0.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.bytes, tgz, "the published bytes");
    assert_eq!(r.header("content-length"), Some(tgz.len().to_string()));
    let doc = packument(&s, "foo").await;
    assert_eq!(integrity(&r.bytes), doc["versions"]["1.0.0"]["dist"]["integrity"].as_str().unwrap());
    assert_eq!(sha1_hex(&r.bytes), doc["versions"]["1.0.0"]["dist"]["shasum"].as_str().unwrap());
    // The package.json inside is the one published.
    assert_eq!(read_package_json(&r.bytes)["version"], json!("1.0.0"));
    let r = request(&s, Method::GET, "/foo/-/foo-1.1.0.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.bytes, tgz2);

    let r = request(&s, Method::HEAD, "/foo/-/foo-1.0.0.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), Some(tgz.len().to_string()), "HEAD Content-Length");
    assert!(r.bytes.is_empty(), "HEAD has no body");

    // Any client may fetch (with or without a token).
    let r = request(&s, Method::GET, "/foo/-/foo-1.0.0.tgz", Some(&alice), &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.bytes, tgz);

    for path in ["/foo/-/foo-9.9.9.tgz", "/foo/-/bar-1.0.0.tgz", "/nope/-/nope-1.0.0.tgz", "/foo/-/foo-1.0.0.zip", "/foo/-/foo-1.0.0"] {
        let r = request(&s, Method::GET, path, None, &[], None).await;
        assert_error(r.status, &r.json(), 404);
    }
}

async fn publish_permissions(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let bob = s.add_user("bob", PW).await;
    let admin = s.add_admin("admin", PW).await;
    let tgz = publish_ok(&s, &alice, "foo", "1.0.0").await;

    // Another user may not publish a new version.
    let p = publish_with(&s, Some(&bob), "foo", "1.1.0", json!({}), None).await;
    assert_error(p.status, &p.body, 403);
    let doc = packument(&s, "foo").await;
    assert!(doc["versions"].get("1.1.0").is_none(), "bob's version stored: {doc}");
    assert_eq!(doc["maintainers"], json!([{"name": "alice", "email": "alice@example.com"}]));

    // An admin may.
    publish_ok(&s, &admin, "foo", "1.1.0").await;
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["dist-tags"]["latest"], json!("1.1.0"));

    // Republishing a version is refused, and its bytes stay as they were.
    let blobs = blob_files(&s);
    let p = publish_with(&s, Some(&alice), "foo", "1.0.0", json!({"description": "changed"}), None).await;
    assert_error(p.status, &p.body, 403);
    let p = publish_with(&s, Some(&alice), "foo", "1.0.0", json!({}), None).await;
    assert_eq!(p.tarball, tgz, "the same bytes");
    assert_error(p.status, &p.body, 403);
    let r = request(&s, Method::GET, "/foo/-/foo-1.0.0.tgz", None, &[], None).await;
    assert_eq!(r.bytes, tgz);
    assert_eq!(blob_files(&s), blobs, "no new blob");
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["versions"]["1.0.0"]["description"], json!("foo test package"));
    assert_eq!(doc["dist-tags"]["latest"], json!("1.1.0"));

    // Bob can publish a package of his own.
    publish_ok(&s, &bob, "bar", "0.1.0").await;
    let doc = packument(&s, "bar").await;
    assert_eq!(doc["maintainers"], json!([{"name": "bob", "email": "bob@example.com"}]));
    let p = publish_with(&s, Some(&alice), "bar", "0.2.0", json!({}), None).await;
    assert_error(p.status, &p.body, 403);
}

async fn readonly_and_anonymous_cannot_publish(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let ro = readonly_token(&s, &alice).await;
    let before = blob_files(&s);

    let p = publish_with(&s, None, "foo", "1.0.0", json!({}), None).await;
    assert_error(p.status, &p.body, 401);
    let p = publish_with(&s, Some(&ro), "foo", "1.0.0", json!({}), None).await;
    assert_error(p.status, &p.body, 403);
    let p = publish_with(&s, Some("not-a-token"), "foo", "1.0.0", json!({}), None).await;
    assert_error(p.status, &p.body, 401);
    let (status, body) = s.get("/foo", None).await;
    assert_error(status, &body, 404);
    assert_eq!(blob_files(&s), before);

    publish_ok(&s, &alice, "foo", "1.0.0").await;
    let p = publish_with(&s, Some(&ro), "foo", "1.1.0", json!({}), None).await;
    assert_error(p.status, &p.body, 403);
    let p = publish_with(&s, None, "foo", "1.1.0", json!({}), None).await;
    assert_error(p.status, &p.body, 401);
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["versions"].as_object().unwrap().len(), 1);
    // A readonly token still reads.
    let (status, _) = s.get("/foo", Some(&ro)).await;
    assert_eq!(status, StatusCode::OK);
}

async fn first_publish_with_other_tag_sets_latest(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    publish_tagged(&s, &alice, "foo", "1.0.0-beta.1", "beta").await;
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["dist-tags"], json!({"beta": "1.0.0-beta.1", "latest": "1.0.0-beta.1"}));
    let (status, v) = s.get("/foo/latest", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["version"], json!("1.0.0-beta.1"));

    // Later publishes under another tag leave latest alone.
    publish_tagged(&s, &alice, "foo", "1.0.0-beta.2", "beta").await;
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["dist-tags"], json!({"beta": "1.0.0-beta.2", "latest": "1.0.0-beta.1"}));
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["dist-tags"], json!({"beta": "1.0.0-beta.2", "latest": "1.0.0"}));
}

async fn concurrent_publish_of_same_version(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    // Same version, different bytes.
    let tgz_a = tarball("foo", "1.0.0", json!({"description": "from A"}));
    let tgz_b = tarball("foo", "1.0.0", json!({"description": "from B"}));
    assert_ne!(tgz_a, tgz_b);
    let body_a = publish_body("foo", "1.0.0", &tgz_a, None, &s.base);
    let body_b = publish_body("foo", "1.0.0", &tgz_b, None, &s.base);
    let (ra, rb) =
        tokio::join!(s.call(Method::PUT, "/foo", Some(&alice), Some(&body_a)), s.call(Method::PUT, "/foo", Some(&alice), Some(&body_b)),);
    let statuses = [ra.0.as_u16(), rb.0.as_u16()];
    let created = statuses.iter().filter(|&&c| c == 201).count();
    assert_eq!(created, 1, "exactly one publish wins: A {} {} / B {} {}", ra.0, ra.1, rb.0, rb.1);
    let (winner, loser) = if ra.0 == StatusCode::CREATED { (&tgz_a, &rb) } else { (&tgz_b, &ra) };
    assert_error_in(loser.0, &loser.1, &[403, 409], "losing concurrent publish");

    let doc = packument(&s, "foo").await;
    assert_eq!(doc["versions"].as_object().unwrap().len(), 1);
    assert_eq!(doc["versions"]["1.0.0"]["dist"]["integrity"], json!(integrity(winner)));
    let r = request(&s, Method::GET, "/foo/-/foo-1.0.0.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.bytes, winner, "served bytes are the winner's");
    assert_eq!(integrity(&r.bytes), doc["versions"]["1.0.0"]["dist"]["integrity"].as_str().unwrap());

    // Two different new versions at once both land.
    let tgz_c = tarball("foo", "1.1.0", json!({}));
    let tgz_d = tarball("foo", "1.2.0", json!({}));
    let body_c = publish_body("foo", "1.1.0", &tgz_c, Some("c"), &s.base);
    let body_d = publish_body("foo", "1.2.0", &tgz_d, Some("d"), &s.base);
    let (rc, rd) =
        tokio::join!(s.call(Method::PUT, "/foo", Some(&alice), Some(&body_c)), s.call(Method::PUT, "/foo", Some(&alice), Some(&body_d)),);
    // A registry may ask the loser of a race on the document to retry (409); npm retries.
    for (r, body) in [(rc, &body_c), (rd, &body_d)] {
        if r.0 == StatusCode::CONFLICT {
            let (status, resp) = s.call(Method::PUT, "/foo", Some(&alice), Some(body)).await;
            assert_eq!(status, StatusCode::CREATED, "retry after 409: {resp}");
        } else {
            assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
        }
    }
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["versions"].as_object().unwrap().len(), 3, "{doc}");
    assert_eq!(doc["dist-tags"]["c"], json!("1.1.0"));
    assert_eq!(doc["dist-tags"]["d"], json!("1.2.0"));
}
