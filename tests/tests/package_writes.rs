//! Writes to published packages, driven exactly as the npm CLI drives them:
//! dist-tags, deprecate, unpublish (one version and whole), owners, stars.

use cairn_e2e::publish::*;
use cairn_e2e::{assert_error, both_backends, Backend, Method, Server, StatusCode};
use serde_json::{json, Value};

both_backends!(
    dist_tags,
    dist_tag_errors,
    deprecate,
    deprecate_permissions,
    published_versions_are_immutable,
    unpublish_one_version,
    unpublished_version_cannot_be_reused,
    unpublish_whole_package,
    unpublish_permissions_and_stale_rev,
    owners,
    owner_errors,
    stars,
    dist_tags_keep_creation_order,
    publishes_race_tag_moves,
    tag_set_races_unpublish,
    unpublish_during_publishes,
    deprecate_on_a_stale_document,
    stale_edit_of_a_removed_version_conflicts,
    orphan_blobs_are_swept,
);

async fn put_tag(s: &Server, token: Option<&str>, name: &str, tag: &str, version: &str) -> (StatusCode, Value) {
    // npm dist-tag add: PUT with the version as a JSON string.
    s.call(Method::PUT, &format!("/-/package/{}/dist-tags/{tag}", enc(name)), token, Some(&json!(version))).await
}

async fn dist_tags(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    publish_tagged(&s, &alice, "foo", "1.1.0", "beta").await;

    let (status, tags) = s.get("/-/package/foo/dist-tags", None).await;
    assert_eq!(status, StatusCode::OK, "{tags}");
    assert_eq!(tags, json!({"latest": "1.0.0", "beta": "1.1.0"}));

    let (status, body) = put_tag(&s, Some(&alice), "foo", "next", "1.1.0").await;
    assert!(status == StatusCode::OK || status == StatusCode::CREATED, "{status} {body}");
    let (_, tags) = s.get("/-/package/foo/dist-tags", None).await;
    assert_eq!(tags, json!({"latest": "1.0.0", "beta": "1.1.0", "next": "1.1.0"}));
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["dist-tags"]["next"], json!("1.1.0"));
    let (status, v) = s.get("/foo/next", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["version"], json!("1.1.0"));

    // Moving latest.
    let (status, body) = put_tag(&s, Some(&alice), "foo", "latest", "1.1.0").await;
    assert!(status == StatusCode::OK || status == StatusCode::CREATED, "{status} {body}");
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["dist-tags"]["latest"], json!("1.1.0"));
    // The abbreviated document follows.
    let r = request(&s, Method::GET, "/foo", None, &[("accept", CORGI_ACCEPT)], None).await;
    assert_eq!(r.json()["dist-tags"]["latest"], json!("1.1.0"));
    let (status, body) = put_tag(&s, Some(&alice), "foo", "latest", "1.0.0").await;
    assert!(status.is_success(), "{status} {body}");

    let (status, body) = s.call(Method::DELETE, "/-/package/foo/dist-tags/next", Some(&alice), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, tags) = s.get("/-/package/foo/dist-tags", None).await;
    assert_eq!(tags, json!({"latest": "1.0.0", "beta": "1.1.0"}));
    let (status, _) = s.get("/foo/next", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Scoped, as npm sends it.
    publish_ok(&s, &alice, "@acme/w", "2.0.0").await;
    let (status, tags) = s.get("/-/package/@acme%2fw/dist-tags", None).await;
    assert_eq!(status, StatusCode::OK, "{tags}");
    assert_eq!(tags, json!({"latest": "2.0.0"}));
    let (status, body) = put_tag(&s, Some(&alice), "@acme/w", "stable", "2.0.0").await;
    assert!(status.is_success(), "{status} {body}");
    let (_, tags) = s.get("/-/package/@acme%2fw/dist-tags", None).await;
    assert_eq!(tags, json!({"latest": "2.0.0", "stable": "2.0.0"}));
}

async fn dist_tag_errors(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let bob = s.add_user("bob", PW).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    publish_tagged(&s, &alice, "foo", "1.1.0", "beta").await;
    let want = json!({"latest": "1.0.0", "beta": "1.1.0"});

    // latest cannot be removed.
    let (status, body) = s.call(Method::DELETE, "/-/package/foo/dist-tags/latest", Some(&alice), None).await;
    assert_error_in(status, &body, &[400, 403, 422], "DELETE latest");
    // A tag must point at a published version.
    let (status, body) = put_tag(&s, Some(&alice), "foo", "next", "9.9.9").await;
    assert_error_in(status, &body, &[400, 404, 422], "tag to a missing version");
    let (status, body) = put_tag(&s, Some(&alice), "foo", "next", "not a version").await;
    assert_error_in(status, &body, &[400, 404, 422], "tag to an invalid version");
    // The body must be a JSON string.
    let (status, body) = s.call(Method::PUT, "/-/package/foo/dist-tags/next", Some(&alice), Some(&json!({"v": "1.0.0"}))).await;
    assert_error_in(status, &body, &[400, 422], "tag body not a string");
    // Only maintainers.
    let (status, body) = put_tag(&s, Some(&bob), "foo", "next", "1.1.0").await;
    assert_error(status, &body, 403);
    let (status, body) = s.call(Method::DELETE, "/-/package/foo/dist-tags/beta", Some(&bob), None).await;
    assert_error(status, &body, 403);
    let (status, body) = put_tag(&s, None, "foo", "next", "1.1.0").await;
    assert_error(status, &body, 401);
    let ro = readonly_token(&s, &alice).await;
    let (status, body) = put_tag(&s, Some(&ro), "foo", "next", "1.1.0").await;
    assert_error(status, &body, 403);
    let (_, tags) = s.get("/-/package/foo/dist-tags", None).await;
    assert_eq!(tags, want);
    // Removing a tag that does not exist: a 404, or an idempotent success.
    let (status, body) = s.call(Method::DELETE, "/-/package/foo/dist-tags/nosuch", Some(&alice), None).await;
    if !status.is_success() {
        assert_error(status, &body, 404);
    }
    // Unknown packages.
    let (status, body) = s.get("/-/package/nope/dist-tags", None).await;
    assert_error(status, &body, 404);
    let (status, body) = put_tag(&s, Some(&alice), "nope", "next", "1.0.0").await;
    assert_error(status, &body, 404);
    let (status, body) = s.get("/nope", None).await;
    assert_error(status, &body, 404);
    let (_, tags) = s.get("/-/package/foo/dist-tags", None).await;
    assert_eq!(tags, want);
}

/// `npm deprecate NAME@VERSION MSG`: fetch ?write=true, set `deprecated`, PUT the whole document.
async fn deprecate_doc(s: &Server, token: &str, name: &str, versions: &[&str], msg: &str) -> (StatusCode, Value) {
    let mut doc = write_doc(s, token, name).await;
    for v in versions {
        doc["versions"][*v]["deprecated"] = json!(msg);
    }
    if let Some(o) = doc.as_object_mut() {
        o.remove("_attachments");
    }
    s.call(Method::PUT, &format!("/{}", enc(name)), Some(token), Some(&doc)).await
}

async fn deprecate(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    publish_ok(&s, &alice, "foo", "1.1.0").await;
    let before = packument(&s, "foo").await;

    let (status, body) = deprecate_doc(&s, &alice, "foo", &["1.0.0"], "use 1.1.0").await;
    assert!(status == StatusCode::OK || status == StatusCode::CREATED, "{status} {body}");
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["versions"]["1.0.0"]["deprecated"], json!("use 1.1.0"));
    assert!(doc["versions"]["1.1.0"].get("deprecated").is_none());
    assert_eq!(doc["versions"]["1.0.0"]["dist"], before["versions"]["1.0.0"]["dist"]);
    assert_eq!(doc["dist-tags"], before["dist-tags"]);
    assert_eq!(doc["maintainers"], before["maintainers"]);
    let r = request(&s, Method::GET, "/foo", None, &[("accept", CORGI_ACCEPT)], None).await;
    let corgi = r.json();
    assert_eq!(corgi["versions"]["1.0.0"]["deprecated"], json!("use 1.1.0"));
    assert!(corgi["versions"]["1.1.0"].get("deprecated").is_none());
    let (_, v) = s.get("/foo/1.0.0", None).await;
    assert_eq!(v["deprecated"], json!("use 1.1.0"));
    // Tarballs are untouched.
    let r = request(&s, Method::GET, "/foo/-/foo-1.0.0.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);

    // Deprecating every version at once (npm deprecate foo "msg").
    let (status, body) = deprecate_doc(&s, &alice, "foo", &["1.0.0", "1.1.0"], "abandoned").await;
    assert!(status.is_success(), "{status} {body}");
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["versions"]["1.0.0"]["deprecated"], json!("abandoned"));
    assert_eq!(doc["versions"]["1.1.0"]["deprecated"], json!("abandoned"));

    // "" undeprecates: the field is gone.
    let (status, body) = deprecate_doc(&s, &alice, "foo", &["1.0.0", "1.1.0"], "").await;
    assert!(status.is_success(), "{status} {body}");
    let doc = packument(&s, "foo").await;
    assert!(doc["versions"]["1.0.0"].get("deprecated").is_none(), "{}", doc["versions"]["1.0.0"]);
    assert!(doc["versions"]["1.1.0"].get("deprecated").is_none());
    let r = request(&s, Method::GET, "/foo", None, &[("accept", CORGI_ACCEPT)], None).await;
    let corgi = r.json();
    assert!(corgi["versions"]["1.0.0"].get("deprecated").is_none(), "{}", corgi["versions"]["1.0.0"]);
    assert_eq!(doc["versions"].as_object().unwrap().len(), 2);
}

async fn deprecate_permissions(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let bob = s.add_user("bob", PW).await;
    let admin = s.add_admin("admin", PW).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;

    let mut doc = write_doc(&s, &bob, "foo").await;
    doc["versions"]["1.0.0"]["deprecated"] = json!("bob says no");
    let (status, body) = s.call(Method::PUT, "/foo", Some(&bob), Some(&doc)).await;
    assert_error(status, &body, 403);
    let (status, body) = s.call(Method::PUT, "/foo", None, Some(&doc)).await;
    assert_error(status, &body, 401);
    let after = packument(&s, "foo").await;
    assert!(after["versions"]["1.0.0"].get("deprecated").is_none());

    let (status, body) = deprecate_doc(&s, &admin, "foo", &["1.0.0"], "admin says no").await;
    assert!(status.is_success(), "admin may deprecate: {status} {body}");
    let after = packument(&s, "foo").await;
    assert_eq!(after["versions"]["1.0.0"]["deprecated"], json!("admin says no"));
}

async fn published_versions_are_immutable(backend: Backend) {
    // A document PUT (deprecate) cannot rewrite what a published version is.
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let tgz = publish_ok(&s, &alice, "foo", "1.0.0").await;
    let mut doc = write_doc(&s, &alice, "foo").await;
    doc["versions"]["1.0.0"]["deprecated"] = json!("x");
    doc["versions"]["1.0.0"]["dist"]["integrity"] = json!(integrity(b"evil"));
    doc["versions"]["1.0.0"]["dist"]["shasum"] = json!(sha1_hex(b"evil"));
    doc["versions"]["1.0.0"]["dist"]["tarball"] = json!("http://evil.example/foo.tgz");
    doc["versions"]["1.0.0"]["dependencies"] = json!({"evil": "*"});
    let (status, body) = s.call(Method::PUT, "/foo", Some(&alice), Some(&doc)).await;
    if !status.is_success() {
        assert_error_in(status, &body, &[400, 403, 409, 422], "rewriting a published version");
    }
    let after = packument(&s, "foo").await;
    let v = &after["versions"]["1.0.0"];
    assert_eq!(v["dist"]["integrity"], json!(integrity(&tgz)));
    assert_eq!(v["dist"]["shasum"], json!(sha1_hex(&tgz)));
    assert_eq!(v["dist"]["tarball"], json!(format!("{}/foo/-/foo-1.0.0.tgz", s.base)));
    assert_eq!(v["dependencies"], json!({}));

    // Nor add a version without a tarball.
    let mut doc = write_doc(&s, &alice, "foo").await;
    let mut v2 = doc["versions"]["1.0.0"].clone();
    v2["version"] = json!("2.0.0");
    v2["_id"] = json!("foo@2.0.0");
    doc["versions"]["2.0.0"] = v2;
    let (status, body) = s.call(Method::PUT, "/foo", Some(&alice), Some(&doc)).await;
    if !status.is_success() {
        assert_error_in(status, &body, &[400, 403, 409, 422], "adding a version without a tarball");
    }
    let after = packument(&s, "foo").await;
    assert!(after["versions"].get("2.0.0").is_none(), "version without tarball stored: {after}");
}

async fn unpublish_one_version(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let tgz1 = publish_ok(&s, &alice, "foo", "1.0.0").await;
    publish_ok(&s, &alice, "foo", "1.1.0").await;
    publish_tagged(&s, &alice, "foo", "1.2.0-rc.1", "next").await;

    unpublish_version(&s, &alice, "foo", "1.1.0").await;
    let doc = packument(&s, "foo").await;
    let mut versions: Vec<&String> = doc["versions"].as_object().unwrap().keys().collect();
    versions.sort();
    assert_eq!(versions, ["1.0.0", "1.2.0-rc.1"]);
    // npm moves latest to the highest remaining version (semver order, prereleases included).
    assert_eq!(doc["dist-tags"], json!({"latest": "1.2.0-rc.1", "next": "1.2.0-rc.1"}));
    let r = request(&s, Method::GET, "/foo/-/foo-1.1.0.tgz", None, &[], None).await;
    assert_error(r.status, &r.json(), 404);
    let (status, body) = s.get("/foo/1.1.0", None).await;
    assert_error(status, &body, 404);
    let r = request(&s, Method::GET, "/foo/-/foo-1.0.0.tgz", None, &[], None).await;
    assert_eq!(r.bytes, tgz1);
    let r = request(&s, Method::GET, "/foo", None, &[("accept", CORGI_ACCEPT)], None).await;
    assert!(r.json()["versions"].get("1.1.0").is_none());

    // Scoped, the same way.
    publish_ok(&s, &alice, "@acme/w", "1.0.0").await;
    publish_ok(&s, &alice, "@acme/w", "2.0.0").await;
    unpublish_version(&s, &alice, "@acme/w", "2.0.0").await;
    let doc = packument(&s, "@acme/w").await;
    assert_eq!(doc["dist-tags"], json!({"latest": "1.0.0"}));
    assert!(doc["versions"].get("2.0.0").is_none());
    let r = request(&s, Method::GET, "/@acme/w/-/w-2.0.0.tgz", None, &[], None).await;
    assert_error(r.status, &r.json(), 404);
}

async fn unpublished_version_cannot_be_reused(backend: Backend) {
    // npm never lets a name@version be published twice, even after an unpublish.
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    publish_ok(&s, &alice, "foo", "1.1.0").await;
    unpublish_version(&s, &alice, "foo", "1.1.0").await;
    let p = publish_with(&s, Some(&alice), "foo", "1.1.0", json!({"description": "again"}), None).await;
    assert_error(p.status, &p.body, 403);
}

async fn unpublish_whole_package(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    assert!(blob_files(&s).is_empty());
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    publish_ok(&s, &alice, "foo", "1.1.0").await;
    assert!(!blob_files(&s).is_empty());
    let doc = write_doc(&s, &alice, "foo").await;
    let rev = doc["_rev"].as_str().unwrap();
    let (status, body) = s.call(Method::DELETE, &format!("/foo/-rev/{rev}"), Some(&alice), None).await;
    assert!(status.is_success(), "DELETE /foo/-rev: {status} {body}");

    let (status, body) = s.get("/foo", None).await;
    assert_error(status, &body, 404);
    let r = request(&s, Method::GET, "/foo", None, &[("accept", CORGI_ACCEPT)], None).await;
    assert_error(r.status, &r.json(), 404);
    for v in ["1.0.0", "1.1.0"] {
        let r = request(&s, Method::GET, &format!("/foo/-/foo-{v}.tgz"), None, &[], None).await;
        assert_error(r.status, &r.json(), 404);
        let (status, body) = s.get(&format!("/foo/{v}"), None).await;
        assert_error(status, &body, 404);
    }
    let (status, body) = s.get("/-/package/foo/dist-tags", None).await;
    assert_error(status, &body, 404);
    let sr = &s;
    let left = poll(5, || async move {
        let files = blob_files(sr);
        files.is_empty().then_some(())
    })
    .await;
    assert!(left.is_some(), "blob files left after unpublishing the only package: {:?}", blob_files(&s));

    // Scoped: DELETE /@scope%2fname/-rev/REV.
    publish_ok(&s, &alice, "@acme/w", "1.0.0").await;
    let doc = write_doc(&s, &alice, "@acme/w").await;
    let rev = doc["_rev"].as_str().unwrap();
    let (status, body) = s.call(Method::DELETE, &format!("/@acme%2fw/-rev/{rev}"), Some(&alice), None).await;
    assert!(status.is_success(), "{status} {body}");
    let (status, body) = s.get("/@acme%2fw", None).await;
    assert_error(status, &body, 404);
    let r = request(&s, Method::GET, "/@acme/w/-/w-1.0.0.tgz", None, &[], None).await;
    assert_error(r.status, &r.json(), 404);
}

async fn unpublish_permissions_and_stale_rev(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let bob = s.add_user("bob", PW).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    publish_ok(&s, &alice, "foo", "1.1.0").await;
    let doc = write_doc(&s, &alice, "foo").await;
    let rev = doc["_rev"].as_str().unwrap().to_string();
    let mut trimmed = doc.clone();
    trimmed["versions"].as_object_mut().unwrap().remove("1.1.0");
    trimmed["dist-tags"]["latest"] = json!("1.0.0");

    // Not a maintainer.
    let (status, body) = s.call(Method::PUT, &format!("/foo/-rev/{rev}"), Some(&bob), Some(&trimmed)).await;
    assert_error(status, &body, 403);
    let (status, body) = s.call(Method::DELETE, &format!("/foo/-/foo-1.1.0.tgz/-rev/{rev}"), Some(&bob), None).await;
    assert_error(status, &body, 403);
    let (status, body) = s.call(Method::DELETE, &format!("/foo/-rev/{rev}"), Some(&bob), None).await;
    assert_error(status, &body, 403);
    let (status, body) = s.call(Method::DELETE, &format!("/foo/-rev/{rev}"), None, None).await;
    assert_error(status, &body, 401);
    let ro = readonly_token(&s, &alice).await;
    let (status, body) = s.call(Method::DELETE, &format!("/foo/-rev/{rev}"), Some(&ro), None).await;
    assert_error(status, &body, 403);
    let after = packument(&s, "foo").await;
    assert_eq!(after["versions"].as_object().unwrap().len(), 2);
    assert_eq!(after["_rev"], json!(rev), "refused writes leave the rev alone");
    let r = request(&s, Method::GET, "/foo/-/foo-1.1.0.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);

    // A stale rev: someone published in between. Removing the whole package is
    // a true conflict (it has a version the client never saw): 409.
    publish_ok(&s, &alice, "foo", "1.2.0").await;
    let (status, body) = s.call(Method::DELETE, &format!("/foo/-rev/{rev}"), Some(&alice), None).await;
    assert_error(status, &body, 409);
    let (status, body) = s.call(Method::DELETE, "/foo/-rev/99-bogus", Some(&alice), None).await;
    assert_error(status, &body, 409);
    // A stale document that does not say which versions it had (no `time`): 409.
    let mut timeless = trimmed.clone();
    timeless.as_object_mut().unwrap().remove("time");
    let (status, body) = s.call(Method::PUT, &format!("/foo/-rev/{rev}"), Some(&alice), Some(&timeless)).await;
    assert_error(status, &body, 409);
    // npm's unpublish of 1.1.0 on that stale document means "remove 1.1.0": done,
    // and 1.2.0, published after the client read, stays (and stays latest).
    let (status, body) = s.call(Method::PUT, &format!("/foo/-rev/{rev}"), Some(&alice), Some(&trimmed)).await;
    assert!(status.is_success(), "stale unpublish PUT: {status} {body}");
    let (status, body) = s.call(Method::DELETE, &format!("/foo/-/foo-1.1.0.tgz/-rev/{rev}"), Some(&alice), None).await;
    assert!(status.is_success(), "stale tarball DELETE: {status} {body}");
    let after = packument(&s, "foo").await;
    let versions: Vec<&String> = after["versions"].as_object().unwrap().keys().collect();
    assert_eq!(versions, ["1.0.0", "1.2.0"]);
    assert_eq!(after["dist-tags"], json!({"latest": "1.2.0"}));
    let r = request(&s, Method::GET, "/foo/-/foo-1.1.0.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Unknown package.
    let (status, body) = s.call(Method::DELETE, "/nope/-rev/1-abc", Some(&alice), None).await;
    assert_error(status, &body, 404);
}

/// `npm owner add/rm`: PUT /NAME/-rev/REV with `{_id, _rev, maintainers}` only.
async fn set_owners(s: &Server, token: &str, name: &str, maintainers: Value) -> (StatusCode, Value) {
    let doc = write_doc(s, token, name).await;
    let rev = doc["_rev"].as_str().unwrap();
    let body = json!({"_id": doc["_id"], "_rev": rev, "maintainers": maintainers});
    s.call(Method::PUT, &format!("/{}/-rev/{rev}", enc(name)), Some(token), Some(&body)).await
}

async fn owners(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let bob = s.add_user("bob", PW).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    let p = publish_with(&s, Some(&bob), "foo", "1.1.0", json!({}), None).await;
    assert_error(p.status, &p.body, 403);

    let alice_m = json!({"name": "alice", "email": "alice@example.com"});
    let bob_m = json!({"name": "bob", "email": "bob@example.com"});
    let (status, body) = set_owners(&s, &alice, "foo", json!([alice_m, bob_m])).await;
    assert!(status.is_success(), "owner add: {status} {body}");
    let doc = packument(&s, "foo").await;
    let mut names: Vec<&str> = doc["maintainers"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["alice", "bob"]);
    // The partial document did not touch the versions.
    assert_eq!(doc["versions"].as_object().unwrap().len(), 1);
    assert_eq!(doc["dist-tags"], json!({"latest": "1.0.0"}));
    publish_ok(&s, &bob, "foo", "1.1.0").await;
    let (status, body) = s.call(Method::PUT, "/-/package/foo/dist-tags/old", Some(&bob), Some(&json!("1.0.0"))).await;
    assert!(status.is_success(), "{status} {body}");

    // Bob removes alice.
    let (status, body) = set_owners(&s, &bob, "foo", json!([bob_m])).await;
    assert!(status.is_success(), "owner rm: {status} {body}");
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["maintainers"], json!([bob_m]));
    assert_eq!(doc["versions"].as_object().unwrap().len(), 2);
    let p = publish_with(&s, Some(&alice), "foo", "1.2.0", json!({}), None).await;
    assert_error(p.status, &p.body, 403);
    publish_ok(&s, &bob, "foo", "1.2.0").await;

    // Scoped.
    publish_ok(&s, &bob, "@acme/w", "1.0.0").await;
    let (status, body) = set_owners(&s, &bob, "@acme/w", json!([bob_m, alice_m])).await;
    assert!(status.is_success(), "{status} {body}");
    publish_ok(&s, &alice, "@acme/w", "1.1.0").await;
}

async fn owner_errors(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let bob = s.add_user("bob", PW).await;
    let carol = s.add_user("carol", PW).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    let alice_m = json!({"name": "alice", "email": "alice@example.com"});
    let want = json!([alice_m]);

    let (status, body) = set_owners(&s, &alice, "foo", json!([alice_m, {"name": "nobody", "email": "n@example.com"}])).await;
    assert_error_in(status, &body, &[400, 404, 422], "unknown user as owner");
    let (status, body) = set_owners(&s, &alice, "foo", json!([])).await;
    assert_error_in(status, &body, &[400, 403, 422], "no owners left");
    let (status, body) = set_owners(&s, &alice, "foo", json!("alice")).await;
    assert_error_in(status, &body, &[400, 422], "maintainers not a list");
    // Not a maintainer: may not add themselves, nor remove anyone.
    let (status, body) = set_owners(&s, &carol, "foo", json!([alice_m, {"name": "carol", "email": "carol@example.com"}])).await;
    assert_error(status, &body, 403);
    let (status, body) = set_owners(&s, &bob, "foo", json!([{"name": "bob", "email": "bob@example.com"}])).await;
    assert_error(status, &body, 403);
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["maintainers"], want);
    assert_eq!(doc["versions"].as_object().unwrap().len(), 1);
    let p = publish_with(&s, Some(&carol), "foo", "1.1.0", json!({}), None).await;
    assert_error(p.status, &p.body, 403);
}

/// `npm star` / `npm unstar`: ?write=true, then PUT /NAME `{_id, _rev, users}`.
async fn star(s: &Server, token: &str, name: &str, user: &str, on: bool) -> (StatusCode, Value) {
    let doc = write_doc(s, token, name).await;
    let mut users = doc.get("users").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    if on {
        users[user] = json!(true);
    } else {
        users.as_object_mut().unwrap().remove(user);
    }
    let body = json!({"_id": doc["_id"], "_rev": doc["_rev"], "users": users});
    s.call(Method::PUT, &format!("/{}", enc(name)), Some(token), Some(&body)).await
}

async fn starred_by(s: &Server, user: &str) -> Vec<String> {
    let (status, body) = s.get(&format!("/-/_view/starredByUser?key=%22{user}%22"), None).await;
    assert_eq!(status, StatusCode::OK, "starredByUser: {body}");
    let mut names: Vec<String> = body["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("rows in {body}"))
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

async fn stars(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let bob = s.add_user("bob", PW).await;
    publish_ok(&s, &bob, "foo", "1.0.0").await;
    publish_ok(&s, &bob, "bar", "1.0.0").await;
    publish_ok(&s, &bob, "@acme/w", "1.0.0").await;
    assert!(starred_by(&s, "alice").await.is_empty());

    // Anyone logged in may star (alice maintains none of these).
    for name in ["foo", "bar", "@acme/w"] {
        let (status, body) = star(&s, &alice, name, "alice", true).await;
        assert!(status.is_success(), "star {name}: {status} {body}");
    }
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["users"], json!({"alice": true}));
    assert_eq!(starred_by(&s, "alice").await, ["@acme/w", "bar", "foo"]);
    // Starring did not change anything else.
    assert_eq!(doc["versions"].as_object().unwrap().len(), 1);
    assert_eq!(doc["maintainers"], json!([{"name": "bob", "email": "bob@example.com"}]));

    let (status, body) = star(&s, &bob, "foo", "bob", true).await;
    assert!(status.is_success(), "{status} {body}");
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["users"], json!({"alice": true, "bob": true}));
    assert_eq!(starred_by(&s, "bob").await, ["foo"]);

    // Unstar.
    let (status, body) = star(&s, &alice, "bar", "alice", false).await;
    assert!(status.is_success(), "unstar: {status} {body}");
    assert_eq!(starred_by(&s, "alice").await, ["@acme/w", "foo"]);
    let doc = packument(&s, "bar").await;
    assert!(doc.get("users").is_none_or(|u| u == &json!({})), "{doc}");

    // Not on behalf of someone else: neither adding nor removing another user's star.
    let (status, body) = star(&s, &alice, "bar", "bob", true).await;
    assert_error(status, &body, 403);
    assert!(starred_by(&s, "bob").await == ["foo"]);
    let (status, body) = star(&s, &alice, "foo", "bob", false).await;
    if !status.is_success() {
        assert_error(status, &body, 403);
    }
    assert_eq!(starred_by(&s, "bob").await, ["foo"], "alice removed bob's star");
    let doc = packument(&s, "foo").await;
    assert_eq!(doc["users"]["bob"], json!(true));

    // Anonymous.
    let doc = write_doc(&s, &alice, "foo").await;
    let body = json!({"_id": "foo", "_rev": doc["_rev"], "users": {"alice": true, "bob": true, "eve": true}});
    let (status, resp) = s.call(Method::PUT, "/foo", None, Some(&body)).await;
    assert_error(status, &resp, 401);
    let (status, body) = s.get("/-/_view/starredByUser?key=%22nobody%22", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["rows"], json!([]));
}

/// The keys of a JSON object, in the order they were sent.
fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap_or_else(|| panic!("an object: {v}")).keys().cloned().collect()
}

/// Issue 8 item 17: `latest` first, then the others in the order they were created.
async fn dist_tags_keep_creation_order(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    publish_tagged(&s, &alice, "foo", "2.0.0-rc.1", "next").await;
    for (tag, version) in [("beta", "2.0.0-rc.1"), ("alpha", "1.0.0"), ("next", "1.0.0")] {
        let (status, body) = put_tag(&s, Some(&alice), "foo", tag, version).await;
        assert!(status.is_success(), "{status} {body}");
    }
    let want = ["latest", "next", "beta", "alpha"];
    let (_, tags) = s.get("/-/package/foo/dist-tags", None).await;
    assert_eq!(keys(&tags), want, "{tags}");
    assert_eq!(keys(&packument(&s, "foo").await["dist-tags"]), want);
    let r = request(&s, Method::GET, "/foo", None, &[("accept", CORGI_ACCEPT)], None).await;
    assert_eq!(keys(&r.json()["dist-tags"]), want);
    // A removed tag that comes back goes last.
    let (status, body) = s.call(Method::DELETE, "/-/package/foo/dist-tags/next", Some(&alice), None).await;
    assert!(status.is_success(), "{status} {body}");
    let (status, body) = put_tag(&s, Some(&alice), "foo", "next", "1.0.0").await;
    assert!(status.is_success(), "{status} {body}");
    let (_, tags) = s.get("/-/package/foo/dist-tags", None).await;
    assert_eq!(keys(&tags), ["latest", "beta", "alpha", "next"]);
}

/// Issue 8 item 1: publishes and `PUT dist-tags/latest` on one package at once
/// deadlocked on PostgreSQL (500). Every request must get a 2xx.
async fn publishes_race_tag_moves(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    publish_ok(&s, &alice, "race", "1.0.0").await;
    publish_ok(&s, &alice, "race", "1.0.1").await;
    let publishes = (0..30).map(|i| {
        let (s, alice) = (&s, &alice);
        async move {
            let p = publish_with(s, Some(alice), "race", &format!("2.0.{i}"), json!({}), Some(if i % 2 == 0 { "latest" } else { "next" }))
                .await;
            (format!("publish 2.0.{i}"), p.status, p.body)
        }
    });
    let tags = (0..30).map(|i| {
        let (s, alice) = (&s, &alice);
        async move {
            let (status, body) = put_tag(s, Some(alice), "race", "latest", if i % 2 == 0 { "1.0.0" } else { "1.0.1" }).await;
            (format!("tag {i}"), status, body)
        }
    });
    let (a, b) = tokio::join!(futures_join(publishes), futures_join(tags));
    let failed: Vec<_> = a.iter().chain(b.iter()).filter(|(_, status, _)| !status.is_success()).collect();
    assert!(failed.is_empty(), "{} of 60 writes failed: {failed:?}", failed.len());
    let doc = packument(&s, "race").await;
    assert_eq!(doc["versions"].as_object().unwrap().len(), 32);
}

/// Runs the futures concurrently on this task; their outputs in order.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future finished")).collect()
}

/// `npm unpublish NAME@VERSION` without assertions: the statuses of its PUT and DELETE.
async fn try_unpublish(s: &Server, token: &str, name: &str, version: &str) -> Vec<(StatusCode, Value)> {
    let mut doc = write_doc(s, token, name).await;
    if doc["versions"].get(version).is_none() {
        return vec![(StatusCode::NOT_FOUND, json!("already gone"))];
    }
    doc["versions"].as_object_mut().unwrap().remove(version);
    let tags = doc["dist-tags"].as_object_mut().unwrap();
    let was_latest = tags.get("latest") == Some(&json!(version));
    tags.retain(|_, v| v != &json!(version));
    if was_latest {
        let last = doc["versions"].as_object().unwrap().keys().next_back().cloned();
        doc["dist-tags"]["latest"] = json!(last);
    }
    let rev = doc["_rev"].as_str().unwrap().to_string();
    let put = s.call(Method::PUT, &format!("/{}/-rev/{rev}", enc(name)), Some(token), Some(&doc)).await;
    let rev = write_doc(s, token, name).await["_rev"].as_str().unwrap().to_string();
    let file = format!("/{}/-/{}-{version}.tgz/-rev/{rev}", enc(name), basename(name));
    let delete = s.call(Method::DELETE, &file, Some(token), None).await;
    vec![put, delete]
}

/// Every tag names a published version, and `latest` exists and resolves.
#[track_caller]
fn assert_no_dangling_tags(doc: &Value, what: &str) {
    let versions = doc["versions"].as_object().unwrap();
    for (tag, v) in doc["dist-tags"].as_object().unwrap() {
        assert!(versions.contains_key(v.as_str().unwrap()), "{what}: tag {tag} names {v}, which is gone: {}", doc["dist-tags"]);
    }
    assert!(doc["dist-tags"].get("latest").is_some(), "{what}: no latest in {}", doc["dist-tags"]);
}

/// Issue 8 item 2: a tag set racing the unpublish of the version it names must
/// not leave the tag dangling (the set fails with a 4xx, or the tag is removed).
async fn tag_set_races_unpublish(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    publish_ok(&s, &alice, "dang", "1.0.0").await;
    for i in 0..8 {
        let v = format!("1.1.{i}");
        publish_tagged(&s, &alice, "dang", &v, "next").await;
        let tag = if i % 2 == 0 { "latest" } else { "beta" };
        let (set, unpublished) = tokio::join!(put_tag(&s, Some(&alice), "dang", tag, &v), try_unpublish(&s, &alice, "dang", &v));
        assert!(set.0.as_u16() < 500, "tag set: {set:?}");
        if !set.0.is_success() {
            assert_error_in(set.0, &set.1, &[400, 404, 409, 422], "tag set to an unpublished version");
        }
        for (status, body) in unpublished {
            assert!(status.as_u16() < 500, "unpublish: {status} {body}");
        }
        let doc = packument(&s, "dang").await;
        assert_no_dangling_tags(&doc, &format!("trial {i}"));
        let (status, body) = s.get("/dang/latest", None).await;
        assert_eq!(status, StatusCode::OK, "GET /dang/latest after trial {i}: {body}");
    }
    // Setting a tag to a version that is not published is a 4xx, not silence.
    let (status, body) = put_tag(&s, Some(&alice), "dang", "beta", "1.1.0").await;
    assert_error_in(status, &body, &[400, 404, 422], "tag to an unpublished version");
}

/// Issue 8 item 3: `npm unpublish P@V` succeeds while 20 publishes of P run.
async fn unpublish_during_publishes(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    for v in ["1.0.0", "1.0.1", "1.0.2"] {
        publish_ok(&s, &alice, "busy", v).await;
    }
    let publishes = (0..20).map(|i| {
        let (s, alice) = (&s, &alice);
        async move { publish_with(s, Some(alice), "busy", &format!("3.0.{i}"), json!({}), None).await.status }
    });
    let unpublish = async {
        let mut out = Vec::new();
        for v in ["1.0.1", "1.0.0"] {
            out.extend(try_unpublish(&s, &alice, "busy", v).await);
        }
        out
    };
    let (published, unpublished) = tokio::join!(futures_join(publishes), unpublish);
    assert!(published.iter().all(|s| *s == StatusCode::CREATED), "{published:?}");
    for (status, body) in &unpublished {
        assert!(status.is_success(), "unpublish during publishes: {status} {body}");
    }
    let doc = packument(&s, "busy").await;
    let versions = doc["versions"].as_object().unwrap();
    assert_eq!(versions.len(), 21, "{:?}", keys(&doc["versions"]));
    assert!(!versions.contains_key("1.0.1") && !versions.contains_key("1.0.0"));
    assert_no_dangling_tags(&doc, "after the unpublishes");
    let r = request(&s, Method::GET, "/busy/-/busy-1.0.1.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Deterministic: the document read, then a publish moves the rev, then the PUT.
    let mut doc = write_doc(&s, &alice, "busy").await;
    publish_ok(&s, &alice, "busy", "4.0.0").await;
    doc["versions"].as_object_mut().unwrap().remove("1.0.2");
    let rev = doc["_rev"].as_str().unwrap().to_string();
    let (status, body) = s.call(Method::PUT, &format!("/busy/-rev/{rev}"), Some(&alice), Some(&doc)).await;
    assert!(status.is_success(), "unpublish on a document one publish old: {status} {body}");
    let doc = packument(&s, "busy").await;
    assert!(doc["versions"].get("1.0.2").is_none());
    assert!(doc["versions"].get("4.0.0").is_some(), "the concurrent publish stays");
    assert_eq!(doc["dist-tags"]["latest"], json!("4.0.0"));
}

/// Issue 8 item 3: `npm deprecate` on a document a publish made stale.
async fn deprecate_on_a_stale_document(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    publish_ok(&s, &alice, "old", "1.0.0").await;
    publish_ok(&s, &alice, "old", "1.1.0").await;
    let mut doc = write_doc(&s, &alice, "old").await;
    publish_ok(&s, &alice, "old", "1.2.0").await;
    doc["versions"]["1.0.0"]["deprecated"] = json!("use 1.2.0");
    let (status, body) = s.call(Method::PUT, "/old", Some(&alice), Some(&doc)).await;
    assert!(status.is_success(), "deprecate on a stale document: {status} {body}");
    let after = packument(&s, "old").await;
    assert_eq!(after["versions"]["1.0.0"]["deprecated"], json!("use 1.2.0"));
    assert!(after["versions"]["1.1.0"].get("deprecated").is_none());
    assert!(after["versions"]["1.2.0"].is_object(), "the version published meanwhile stays");
    assert_eq!(after["dist-tags"]["latest"], json!("1.2.0"), "the stale document's tags do not move latest back");
    // Many at once while publishes run: every deprecation lands.
    let publishes = (0..10).map(|i| {
        let (s, alice) = (&s, &alice);
        async move { publish_with(s, Some(alice), "old", &format!("5.0.{i}"), json!({}), None).await.status }
    });
    let deprecations = async {
        let mut out = Vec::new();
        for msg in ["one", "two", "three"] {
            out.push(deprecate_doc(&s, &alice, "old", &["1.1.0"], msg).await);
        }
        out
    };
    let (published, deprecated) = tokio::join!(futures_join(publishes), deprecations);
    assert!(published.iter().all(|s| *s == StatusCode::CREATED), "{published:?}");
    assert!(deprecated.iter().all(|(s, _)| s.is_success()), "{deprecated:?}");
    assert_eq!(packument(&s, "old").await["versions"]["1.1.0"]["deprecated"], json!("three"));
}

/// A true conflict stays one: a stale document editing a version removed meanwhile.
async fn stale_edit_of_a_removed_version_conflicts(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    publish_ok(&s, &alice, "gone", "1.0.0").await;
    publish_ok(&s, &alice, "gone", "1.1.0").await;
    let mut doc = write_doc(&s, &alice, "gone").await;
    unpublish_version(&s, &alice, "gone", "1.0.0").await;
    doc["versions"]["1.0.0"]["deprecated"] = json!("too late");
    let (status, body) = s.call(Method::PUT, "/gone", Some(&alice), Some(&doc)).await;
    assert_error(status, &body, 409);
    let after = packument(&s, "gone").await;
    assert_eq!(keys(&after["versions"]), ["1.1.0"]);
}

/// Sets a file's modification time to `hours` hours ago.
fn age_file(path: &std::path::Path, hours: u32) {
    let status = std::process::Command::new("touch").arg("-m").arg("-d").arg(format!("{hours} hours ago")).arg(path).status().unwrap();
    assert!(status.success(), "touch {}", path.display());
}

/// Issue 8 item 4: a tarball blob no row references (left by a crash between
/// the blob and its row) is removed at start once older than the minimum age;
/// a referenced blob and a fresh orphan stay.
async fn orphan_blobs_are_swept(backend: Backend) {
    let mut s = Server::start(backend).await;
    let alice = s.add_user("alice", PW).await;
    let tgz = publish_ok(&s, &alice, "kept", "1.0.0").await;
    let referenced = blob_files(&s).into_iter().find(|f| f.starts_with("tarballs/kept/")).expect("the published blob");
    let blobs = s.data_dir.path().join("blobs");
    s.stop_with("KILL").await;
    let old_orphan = blobs.join("tarballs/kept/kept-9.9.9-0123456789ab.tgz");
    let old_proxy_orphan = blobs.join("proxy/up/up-1.0.0-0123456789ab.tgz");
    let fresh_orphan = blobs.join("tarballs/kept/kept-9.9.8-0123456789ab.tgz");
    for f in [&old_orphan, &old_proxy_orphan, &fresh_orphan] {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b"left by a crash").unwrap();
    }
    age_file(&old_orphan, 2);
    age_file(&old_proxy_orphan, 2);
    age_file(&blobs.join(&referenced), 2);
    s.restart().await;
    let gone = poll(30, || async { (!old_orphan.exists() && !old_proxy_orphan.exists()).then_some(()) }).await;
    assert!(gone.is_some(), "old orphans still there: {:?}\n{}", blob_files(&s), s.log());
    assert!(fresh_orphan.exists(), "a fresh orphan may be a publish in progress: kept");
    assert!(blobs.join(&referenced).exists(), "a referenced blob is kept");
    let r = request(&s, Method::GET, "/kept/-/kept-1.0.0.tgz", None, &[], None).await;
    assert_eq!((r.status, r.bytes == tgz), (StatusCode::OK, true));
}
