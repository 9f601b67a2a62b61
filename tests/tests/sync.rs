//! Package sync: the task API (and its legacy forms), what a sync stores when
//! the upstream is a second Cairn, upstream faults (with the fake upstream of
//! `cairn_e2e::upstream`), and the queue across workers and processes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cairn_e2e::publish::*;
use cairn_e2e::upstream::*;
use cairn_e2e::{assert_error, both_backends, Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::{json, Value};

both_backends!(
    sync_api,
    sync_mode_none,
    sync_mode_admin,
    sync_from_cairn,
    specific_versions_and_skip_dependencies,
    force_sync_history,
    local_package_cannot_sync,
    delete_mode_removes_versions,
    not_found_upstream_never_deletes,
    retry_on_5xx,
    retry_on_timeout,
    bad_integrity_rejects_version,
    oversized_upstream_bodies_are_refused,
    truncated_tarball_retries_then_succeeds,
    truncated_tarball_rejects_version,
    gone_upstream_blocks,
    merge_waiting_tasks,
    recovery_after_kill,
    sync_download_data,
    scope_routes_sync,
);

mod two_processes_one_queue {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::two_processes_one_queue().await
    }
}

// ------------------------------------------------------------------ helpers

/// A server whose default upstream is the fake.
async fn with_fake(backend: Backend, fake: &FakeUpstream, toml: &str) -> Server {
    Server::start_with(ServerOptions::new(backend).toml(toml).tail(&fake.registry_toml("fake", ""))).await
}

/// A second Cairn as upstream (`up`, with user alice) and this one (`here`,
/// with admin and bob) syncing from it as the default registry named "up".
struct Pair {
    up: Server,
    alice: String,
    here: Server,
    admin: String,
    bob: String,
}

async fn pair(backend: Backend, kind: &str, here_toml: &str) -> Pair {
    let up = Server::start_with(ServerOptions::new(backend).toml("downloads_flush_secs = 1")).await;
    let alice = up.add_user("alice", PW).await;
    let tail = format!("[[registries]]\nname = \"up\"\nhost = {:?}\ntype = {kind:?}\ndefault = true\n", up.base);
    let here = Server::start_with(ServerOptions::new(backend).toml(here_toml).tail(&tail)).await;
    let admin = here.add_admin("admin", PW).await;
    let bob = here.add_user("bob", PW).await;
    Pair { up, alice, here, admin, bob }
}

/// `npm deprecate NAME@V MSG` (an empty message undeprecates).
async fn deprecate(s: &Server, token: &str, name: &str, versions: &[&str], msg: &str) {
    let mut doc = write_doc(s, token, name).await;
    for v in versions {
        doc["versions"][*v]["deprecated"] = json!(msg);
    }
    doc.as_object_mut().unwrap().remove("_attachments");
    let (status, body) = s.call(Method::PUT, &format!("/{}", enc(name)), Some(token), Some(&doc)).await;
    assert!(status.is_success(), "deprecate: {status} {body}");
}

async fn set_tag(s: &Server, token: &str, name: &str, tag: &str, version: &str) {
    let (status, body) =
        s.call(Method::PUT, &format!("/-/package/{}/dist-tags/{tag}", enc(name)), Some(token), Some(&json!(version))).await;
    assert!(status.is_success(), "dist-tag {tag}: {status} {body}");
}

fn version_set(doc: &Value) -> BTreeSet<String> {
    doc["versions"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Status of `GET /NAME`.
async fn packument_status(s: &Server, name: &str) -> StatusCode {
    request(s, Method::GET, &format!("/{}", enc(name)), None, &[("accept", "application/json")], None).await.status
}

/// Tarball files stored for `name` under blobs/tarballs.
fn tarball_blobs(s: &Server, name: &str) -> Vec<String> {
    blob_files(s).into_iter().filter(|p| p.starts_with(&format!("tarballs/{name}/"))).collect()
}

/// Asserts every version here serves, from this server, the upstream's bytes with the upstream's integrity.
async fn assert_same_tarballs(here: &Server, up_doc: &Value, name: &str, versions: &[&str]) {
    let doc = packument(here, name).await;
    for v in versions {
        let ours = &doc["versions"][*v]["dist"];
        let theirs = &up_doc["versions"][*v]["dist"];
        let url = ours["tarball"].as_str().unwrap_or_else(|| panic!("no dist.tarball for {v}: {doc}"));
        assert!(url.starts_with(&format!("{}/", here.base)), "{name}@{v} tarball URL points elsewhere: {url}");
        let resp = here.client.get(url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "GET {url}");
        let bytes = resp.bytes().await.unwrap().to_vec();
        let up_url = theirs["tarball"].as_str().unwrap();
        let up_bytes = here.client.get(up_url).send().await.unwrap().bytes().await.unwrap().to_vec();
        assert_eq!(bytes, up_bytes, "{name}@{v}: tarball bytes differ from the upstream's");
        assert_eq!(ours["integrity"], theirs["integrity"], "{name}@{v} integrity");
        assert_eq!(ours["integrity"], json!(integrity(&bytes)), "{name}@{v} integrity of the bytes");
        assert_eq!(ours["shasum"], json!(sha1_hex(&bytes)), "{name}@{v} shasum");
    }
}

/// Polls the task, recording each state change, until it is done.
/// Polls a task until it ends; returns the distinct `state/attempts` pairs seen
/// (e.g. `waiting/1` is the backoff after a failed first attempt) and the final task.
/// A 40 ms poll can miss a short `processing`, but not a backoff of seconds.
async fn watch_states(s: &Server, name: &str, id: &str, secs: u64) -> (Vec<String>, Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut states: Vec<String> = Vec::new();
    loop {
        let t = task(s, name, id).await;
        let state = t["state"].as_str().unwrap_or("?").to_string();
        let seen = format!("{state}/{}", t["attempts"]);
        if states.last() != Some(&seen) {
            states.push(seen);
        }
        if state == "success" || state == "error" {
            return (states, t);
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("task {id} of {name} not done in {secs} s; states {states:?}; log:\n{}", task_log(s, name, id).await);
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

/// True when `seq` holds `want` in this order (not necessarily adjacent).
fn in_order(seq: &[String], want: &[&str]) -> bool {
    let mut it = seq.iter();
    want.iter().all(|w| it.any(|s| s == w))
}

/// `[2024-01-02T03:04:05.678Z] ` at the start of a log line.
fn timestamped(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else { return false };
    let Some((ts, msg)) = rest.split_once("] ") else { return false };
    let b = ts.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    !msg.is_empty()
        && b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && ts.ends_with('Z')
}

// ------------------------------------------------------------------ the task API

async fn sync_api(backend: Backend) {
    let fake = FakeUpstream::start().await;
    fake.add_version("api-pkg", "1.0.0", json!({}));
    fake.add_version("api-pkg", "1.1.0", json!({}));
    let s = with_fake(backend, &fake, "").await;
    let admin = s.add_admin("admin", PW).await;
    let bob = s.add_user("bob", PW).await;

    // Every option, as a user.
    let body = json!({
        "skipDependencies": true,
        "syncDownloadData": false,
        "force": false,
        "forceSyncHistory": false,
        "tips": "wanted by the api test",
        "registryName": "fake",
        "specificVersions": "[\"1.0.0\"]",
    });
    let (status, created) = request_sync(&s, Some(&bob), "api-pkg", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["ok"], json!(true), "{created}");
    assert_eq!(created["type"], json!("package"), "{created}");
    assert_eq!(created["state"], json!("waiting"), "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    assert!(!id.is_empty());

    let shown = task(&s, "api-pkg", &id).await;
    assert_eq!(shown["ok"], json!(true), "{shown}");
    assert_eq!(shown["id"], json!(id), "{shown}");
    assert_eq!(shown["type"], json!("package"), "{shown}");
    assert!(["waiting", "processing", "success"].contains(&shown["state"].as_str().unwrap()), "{shown}");
    let log_url = format!("{}/-/package/api-pkg/syncs/{id}/log", s.base);
    assert_eq!(shown["logUrl"], json!(log_url), "{shown}");
    let done = wait_success(&s, "api-pkg", &id, 30).await;
    assert_eq!(done["state"], json!("success"));
    let doc = packument(&s, "api-pkg").await;
    assert_eq!(version_set(&doc), set(&["1.0.0", "1.1.0"]), "1.0.0 asked for, 1.1.0 is latest");

    // The log: text/plain, every line timestamped, the last one a summary.
    let resp = s.client.get(&log_url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(ct.starts_with("text/plain"), "log content-type {ct}");
    let log = resp.text().await.unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 3, "log too short:\n{log}");
    for line in &lines {
        assert!(timestamped(line), "log line without an ISO timestamp: {line:?}\n{log}");
    }
    assert!(log.contains("wanted by the api test"), "the tips are in the log:\n{log}");
    let last = lines.last().unwrap();
    assert!(last.contains("done") && last.contains("versions synced"), "last line is not a summary: {last:?}\n{log}");

    // specificVersions must be a JSON string holding an array of versions.
    for bad in [json!("1.0.0"), json!(["1.0.0"]), json!("{\"v\": \"1.0.0\"}"), json!("[1, 2]"), json!("[\"1.0.0\""), json!(7)] {
        let (status, resp) = request_sync(&s, Some(&bob), "api-pkg", json!({"specificVersions": bad})).await;
        assert_error(status, &resp, 422);
    }
    // Anonymous: 401. force / forceSyncHistory: admins only.
    let (status, resp) = request_sync(&s, None, "api-pkg", json!({})).await;
    assert_error(status, &resp, 401);
    for body in [json!({"force": true}), json!({"forceSyncHistory": true})] {
        let (status, resp) = request_sync(&s, Some(&bob), "api-pkg", body.clone()).await;
        assert_error(status, &resp, 403);
        let (status, resp) = request_sync(&s, Some(&admin), "api-pkg", body).await;
        assert_eq!(status, StatusCode::CREATED, "{resp}");
        wait_done(&s, "api-pkg", resp["id"].as_str().unwrap(), 30).await;
    }

    // Legacy forms.
    let (status, legacy) = s.call(Method::PUT, "/api-pkg/sync?nodeps=true", Some(&bob), None).await;
    assert!(status.is_success(), "PUT /api-pkg/sync: {status} {legacy}");
    assert_eq!(legacy["ok"], json!(true), "{legacy}");
    let log_id = legacy["logId"].as_str().expect("logId").to_string();
    let (status, resp) = s.call(Method::PUT, "/api-pkg/sync?nodeps=true", None, None).await;
    assert_error(status, &resp, 401);
    let finished = poll(30, || async {
        let (status, l) = s.get(&format!("/api-pkg/sync/log/{log_id}"), None).await;
        assert_eq!(status, StatusCode::OK, "legacy log: {l}");
        (l["syncDone"] == json!(true)).then_some(l)
    })
    .await
    .expect("legacy sync done in 30 s");
    assert_eq!(finished["ok"], json!(true), "{finished}");
    assert!(finished["log"].as_str().is_some_and(|l| l.lines().all(timestamped) && l.contains("done")), "{finished}");
    assert_eq!(finished["logUrl"], json!(format!("{}/-/package/api-pkg/syncs/{log_id}/log", s.base)), "{finished}");

    // nodeps=true skips dependencies; without it they are queued.
    fake.add_version("legacy-dep", "1.0.0", json!({}));
    fake.add_version("legacy-pkg", "1.0.0", json!({"dependencies": {"legacy-dep": "^1.0.0"}}));
    for (query, queued) in [("?nodeps=true", false), ("", true)] {
        let (status, legacy) = s.call(Method::PUT, &format!("/legacy-pkg/sync{query}"), Some(&bob), None).await;
        assert!(status.is_success(), "{status} {legacy}");
        let id = legacy["logId"].as_str().unwrap().to_string();
        wait_success(&s, "legacy-pkg", &id, 30).await;
        let log = task_log(&s, "legacy-pkg", &id).await;
        assert_eq!(log.contains("dependency legacy-dep queued"), queued, "PUT /legacy-pkg/sync{query}:\n{log}");
        if !queued {
            assert_eq!(packument_status(&s, "legacy-dep").await, StatusCode::NOT_FOUND);
        }
    }
    let dep = poll(30, || async { (packument_status(&s, "legacy-dep").await == StatusCode::OK).then_some(()) }).await;
    assert!(dep.is_some(), "legacy-dep was not synced");

    // Unknown ids, and ids of another package.
    fake.add_version("other", "1.0.0", json!({}));
    let other_id = sync_ok(&s, &bob, "other", json!({})).await;
    for path in [
        "/-/package/api-pkg/syncs/nosuchtask".to_string(),
        "/-/package/api-pkg/syncs/nosuchtask/log".to_string(),
        "/api-pkg/sync/log/nosuchtask".to_string(),
        format!("/-/package/api-pkg/syncs/{other_id}"),
        format!("/-/package/api-pkg/syncs/{other_id}/log"),
        format!("/-/package/nosuchpkg/syncs/{id}"),
    ] {
        let (status, resp) = s.get(&path, Some(&admin)).await;
        assert_error(status, &resp, 404);
    }
}

async fn sync_mode_none(backend: Backend) {
    let fake = FakeUpstream::start().await;
    fake.add_version("m", "1.0.0", json!({}));
    let s = with_fake(backend, &fake, "sync_mode = \"none\"").await;
    let admin = s.add_admin("admin", PW).await;
    let bob = s.add_user("bob", PW).await;
    for token in [&admin, &bob] {
        let (status, resp) = request_sync(&s, Some(token), "m", json!({})).await;
        assert_error(status, &resp, 403);
        let (status, resp) = s.call(Method::PUT, "/m/sync", Some(token), None).await;
        assert_error(status, &resp, 403);
    }
    assert_eq!(fake.hits(&packument_path("m")), 0);
}

async fn sync_mode_admin(backend: Backend) {
    let fake = FakeUpstream::start().await;
    fake.add_version("m", "1.0.0", json!({}));
    let s = with_fake(backend, &fake, "sync_mode = \"admin\"").await;
    let admin = s.add_admin("admin", PW).await;
    let bob = s.add_user("bob", PW).await;
    let (status, resp) = request_sync(&s, None, "m", json!({})).await;
    assert_error(status, &resp, 401);
    let (status, resp) = request_sync(&s, Some(&bob), "m", json!({})).await;
    assert_error(status, &resp, 403);
    let (status, resp) = s.call(Method::PUT, "/m/sync", Some(&bob), None).await;
    assert_error(status, &resp, 403);
    let (status, resp) = request_sync(&s, Some(&admin), "m", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");
    wait_success(&s, "m", resp["id"].as_str().unwrap(), 30).await;
    assert_eq!(version_set(&packument(&s, "m").await), set(&["1.0.0"]));
}

// ------------------------------------------------------------------ from a second Cairn

async fn sync_from_cairn(backend: Backend) {
    let p = pair(backend, "cnpm", "").await;
    let (up, here) = (&p.up, &p.here);
    publish_ok(up, &p.alice, "dep-a", "1.0.0").await;
    publish_ok(up, &p.alice, "pkg", "1.0.0").await;
    let pub11 = publish_with(up, Some(&p.alice), "pkg", "1.1.0", json!({"dependencies": {"dep-a": "^1.0.0"}}), None).await;
    assert_published(&pub11);
    publish_tagged(up, &p.alice, "pkg", "2.0.0-beta.1", "beta").await;
    deprecate(up, &p.alice, "pkg", &["1.0.0"], "use 1.1.0").await;

    let id = sync_ok(here, &p.bob, "pkg", json!({})).await;
    wait_success(here, "pkg", &id, 30).await;
    let up_doc = packument(up, "pkg").await;
    let doc = packument(here, "pkg").await;
    assert_eq!(version_set(&doc), set(&["1.0.0", "1.1.0", "2.0.0-beta.1"]), "{doc}");
    assert_eq!(doc["dist-tags"], json!({"latest": "1.1.0", "beta": "2.0.0-beta.1"}), "{doc}");
    assert_eq!(doc["versions"]["1.0.0"]["deprecated"], json!("use 1.1.0"), "{doc}");
    assert!(doc["versions"]["1.1.0"].get("deprecated").is_none(), "{doc}");
    let maintainers: Vec<&str> = doc["maintainers"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(maintainers, vec!["up:alice"], "maintainers carry the registry's prefix: {doc}");
    assert_eq!(doc["versions"]["1.1.0"]["dependencies"], json!({"dep-a": "^1.0.0"}));
    assert_same_tarballs(here, &up_doc, "pkg", &["1.0.0", "1.1.0", "2.0.0-beta.1"]).await;
    assert_eq!(tarball_blobs(here, "pkg").len(), 3, "{:?}", blob_files(here));

    // The dependency was queued and synced too.
    let log = task_log(here, "pkg", &id).await;
    assert!(log.contains("dependency dep-a queued"), "{log}");
    let dep = poll(30, || async { (packument_status(here, "dep-a").await == StatusCode::OK).then_some(()) }).await;
    assert!(dep.is_some(), "dep-a was not synced in 30 s; log of pkg:\n{log}");
    let dep_doc = packument(here, "dep-a").await;
    assert_eq!(version_set(&dep_doc), set(&["1.0.0"]));
    assert_same_tarballs(here, &packument(up, "dep-a").await, "dep-a", &["1.0.0"]).await;

    // Changes upstream: a new version, a moved tag, an undeprecation, a removed version.
    publish_ok(up, &p.alice, "pkg", "1.2.0").await;
    set_tag(up, &p.alice, "pkg", "beta", "1.0.0").await;
    deprecate(up, &p.alice, "pkg", &["1.0.0"], "").await;
    unpublish_version(up, &p.alice, "pkg", "2.0.0-beta.1").await;
    let up_doc = packument(up, "pkg").await;
    assert!(up_doc["versions"].get("2.0.0-beta.1").is_none(), "{up_doc}");

    let id2 = sync_ok(here, &p.bob, "pkg", json!({})).await;
    assert_ne!(id2, id);
    wait_success(here, "pkg", &id2, 30).await;
    let doc = packument(here, "pkg").await;
    assert_eq!(doc["dist-tags"]["latest"], json!("1.2.0"), "{doc}");
    assert_eq!(doc["dist-tags"]["beta"], json!("1.0.0"), "the moved tag: {doc}");
    assert!(
        doc["versions"]["1.0.0"].get("deprecated").is_none_or(|d| d == &json!("")),
        "1.0.0 was undeprecated upstream: {}",
        doc["versions"]["1.0.0"]
    );
    // sync_delete_mode = ignore (the default): a version gone upstream stays.
    assert_eq!(version_set(&doc), set(&["1.0.0", "1.1.0", "1.2.0", "2.0.0-beta.1"]), "{doc}");
    assert_same_tarballs(here, &up_doc, "pkg", &["1.0.0", "1.1.0", "1.2.0"]).await;
    let r = request(here, Method::GET, "/pkg/-/pkg-2.0.0-beta.1.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK, "the kept version's tarball");
}

async fn specific_versions_and_skip_dependencies(backend: Backend) {
    let p = pair(backend, "npm", "").await;
    let (up, here) = (&p.up, &p.here);
    publish_ok(up, &p.alice, "dep-b", "1.0.0").await;
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        assert_published(&publish_with(up, Some(&p.alice), "sv", v, json!({"dependencies": {"dep-b": "^1.0.0"}}), None).await);
    }
    let id = sync_ok(here, &p.bob, "sv", json!({"skipDependencies": true, "specificVersions": "[\"1.0.0\"]"})).await;
    wait_success(here, "sv", &id, 30).await;
    let doc = packument(here, "sv").await;
    assert_eq!(version_set(&doc), set(&["1.0.0", "1.2.0"]), "only 1.0.0, plus latest: {doc}");
    assert_eq!(doc["dist-tags"]["latest"], json!("1.2.0"));
    assert_same_tarballs(here, &packument(up, "sv").await, "sv", &["1.0.0", "1.2.0"]).await;
    let log = task_log(here, "sv", &id).await;
    assert!(!log.contains("dependency"), "skipDependencies queued a dependency:\n{log}");
    // Give a wrongly queued dependency the time to arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(packument_status(here, "dep-b").await, StatusCode::NOT_FOUND, "dep-b synced despite skipDependencies");

    // Without the options: the rest, and the dependency.
    let id = sync_ok(here, &p.bob, "sv", json!({})).await;
    wait_success(here, "sv", &id, 30).await;
    assert_eq!(version_set(&packument(here, "sv").await), set(&["1.0.0", "1.1.0", "1.2.0"]));
    let dep = poll(30, || async { (packument_status(here, "dep-b").await == StatusCode::OK).then_some(()) }).await;
    assert!(dep.is_some(), "dep-b not synced:\n{}", task_log(here, "sv", &id).await);
}

async fn force_sync_history(backend: Backend) {
    let p = pair(backend, "cnpm", "").await;
    let (up, here) = (&p.up, &p.here);
    publish_ok(up, &p.alice, "fh", "1.0.0").await;
    let id = sync_ok(here, &p.bob, "fh", json!({})).await;
    wait_success(here, "fh", &id, 30).await;

    // A plain second sync keeps what is here.
    let id = sync_ok(here, &p.bob, "fh", json!({})).await;
    wait_success(here, "fh", &id, 30).await;
    let log = task_log(here, "fh", &id).await;
    assert!(log.contains("0 versions synced, 1 already here"), "{log}");

    let (status, resp) = request_sync(here, Some(&p.bob), "fh", json!({"forceSyncHistory": true})).await;
    assert_error(status, &resp, 403);
    let id = sync_ok(here, &p.admin, "fh", json!({"forceSyncHistory": true})).await;
    wait_success(here, "fh", &id, 30).await;
    let log = task_log(here, "fh", &id).await;
    assert!(log.contains("version 1.0.0 synced"), "forceSyncHistory did not sync 1.0.0 again:\n{log}");
    assert!(log.contains("1 versions synced, 0 already here"), "{log}");
    let doc = packument(here, "fh").await;
    assert_eq!(version_set(&doc), set(&["1.0.0"]));
    assert_eq!(doc["dist-tags"]["latest"], json!("1.0.0"), "{doc}");
    assert_same_tarballs(here, &packument(up, "fh").await, "fh", &["1.0.0"]).await;
    assert_eq!(tarball_blobs(here, "fh").len(), 1, "the replaced tarball is not left behind: {:?}", blob_files(here));
}

async fn local_package_cannot_sync(backend: Backend) {
    let p = pair(backend, "cnpm", "").await;
    publish_ok(&p.up, &p.alice, "mine", "2.0.0").await;
    publish_ok(&p.here, &p.bob, "mine", "1.0.0").await;
    for token in [&p.bob, &p.admin] {
        let (status, resp) = request_sync(&p.here, Some(token), "mine", json!({})).await;
        assert_error(status, &resp, 403);
        let (status, resp) = s_legacy(&p.here, token, "mine").await;
        assert_error(status, &resp, 403);
    }
    let doc = packument(&p.here, "mine").await;
    assert_eq!(version_set(&doc), set(&["1.0.0"]));
    let maintainers: Vec<&str> = doc["maintainers"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(maintainers, vec!["bob"]);
}

async fn s_legacy(s: &Server, token: &str, name: &str) -> (StatusCode, Value) {
    s.call(Method::PUT, &format!("/{}/sync", enc(name)), Some(token), None).await
}

async fn delete_mode_removes_versions(backend: Backend) {
    let p = pair(backend, "npm", "sync_delete_mode = \"delete\"").await;
    let (up, here) = (&p.up, &p.here);
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        publish_ok(up, &p.alice, "dm", v).await;
    }
    let id = sync_ok(here, &p.bob, "dm", json!({})).await;
    wait_success(here, "dm", &id, 30).await;
    assert_eq!(version_set(&packument(here, "dm").await), set(&["1.0.0", "1.1.0", "1.2.0"]));
    assert_eq!(tarball_blobs(here, "dm").len(), 3);

    unpublish_version(up, &p.alice, "dm", "1.1.0").await;
    let id = sync_ok(here, &p.bob, "dm", json!({})).await;
    wait_success(here, "dm", &id, 30).await;
    let doc = packument(here, "dm").await;
    assert_eq!(version_set(&doc), set(&["1.0.0", "1.2.0"]), "1.1.0 is gone upstream: {doc}");
    assert_eq!(doc["dist-tags"]["latest"], json!("1.2.0"));
    let r = request(here, Method::GET, "/dm/-/dm-1.1.0.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "removed version's tarball");
    let blobs = tarball_blobs(here, "dm");
    assert_eq!(blobs.len(), 2, "{blobs:?}");
    assert!(!blobs.iter().any(|b| b.contains("1.1.0")), "{blobs:?}");
    assert_same_tarballs(here, &packument(up, "dm").await, "dm", &["1.0.0", "1.2.0"]).await;
}

// ------------------------------------------------------------------ upstream faults

async fn not_found_upstream_never_deletes(backend: Backend) {
    let fake = FakeUpstream::start().await;
    let tgz = fake.add_version("gone", "1.0.0", json!({}));
    // Even with sync_delete_mode = delete: a 404 alone is not "removed".
    let s = with_fake(backend, &fake, "sync_delete_mode = \"delete\"").await;
    let bob = s.add_user("bob", PW).await;

    // A package the upstream never had: error.
    let id = sync_ok(&s, &bob, "ghost", json!({})).await;
    let t = wait_done(&s, "ghost", &id, 30).await;
    assert_eq!(t["state"], json!("error"), "{t}");
    assert!(t["error"].as_str().is_some_and(|e| e.contains("not found")), "{t}");
    assert_eq!(packument_status(&s, "ghost").await, StatusCode::NOT_FOUND);

    let id = sync_ok(&s, &bob, "gone", json!({})).await;
    wait_success(&s, "gone", &id, 30).await;
    fake.remove("gone");
    let id = sync_ok(&s, &bob, "gone", json!({})).await;
    let t = wait_done(&s, "gone", &id, 30).await;
    assert_eq!(t["state"], json!("error"), "an upstream 404 ends the task in error: {t}");
    assert_eq!(t["attempts"], json!(1), "a 404 is not retried: {t}");
    let doc = packument(&s, "gone").await;
    assert_eq!(version_set(&doc), set(&["1.0.0"]), "the package is intact: {doc}");
    let r = request(&s, Method::GET, "/gone/-/gone-1.0.0.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.bytes, tgz);
}

async fn retry_on_5xx(backend: Backend) {
    let fake = FakeUpstream::start().await;
    fake.add_version("flaky", "1.0.0", json!({}));
    fake.add_version("flaky-tgz", "1.0.0", json!({}));
    fake.fault(&packument_path("flaky"), Fault::status(503).times(2));
    fake.fault(&tarball_path("flaky-tgz", "1.0.0"), Fault::status(500).times(1));
    let s = with_fake(backend, &fake, "sync_max_attempts = 5").await;
    let bob = s.add_user("bob", PW).await;
    let id = sync_ok(&s, &bob, "flaky", json!({})).await;
    let id_tgz = sync_ok(&s, &bob, "flaky-tgz", json!({})).await;

    let (states, t) = watch_states(&s, "flaky", &id, 40).await;
    let log = task_log(&s, "flaky", &id).await;
    assert_eq!(t["state"], json!("success"), "{t} states {states:?}\n{log}");
    assert_eq!(t["attempts"], json!(3), "{t}\n{log}");
    assert!(in_order(&states, &["waiting/1", "waiting/2", "success/3"]), "back to waiting after each failure: {states:?}");
    assert!((1..=3).all(|n| log.contains(&format!("(attempt {n},"))), "every attempt logged:\n{log}");
    assert!(log.contains("retrying in 2 s") && log.contains("retrying in 4 s"), "backoff grows:\n{log}");
    // The upstream saw three requests, spaced by the backoff.
    let times: Vec<_> = fake.seen().into_iter().filter(|r| r.path == packument_path("flaky")).map(|r| r.at).collect();
    assert_eq!(times.len(), 3, "packument requests");
    assert!(times[1] - times[0] >= Duration::from_millis(1900), "first backoff {:?}", times[1] - times[0]);
    assert!(times[2] - times[1] >= Duration::from_millis(3900), "second backoff {:?}", times[2] - times[1]);
    assert_eq!(version_set(&packument(&s, "flaky").await), set(&["1.0.0"]));

    let t = wait_success(&s, "flaky-tgz", &id_tgz, 30).await;
    assert_eq!(t["attempts"], json!(2), "{t}");
    assert_eq!(fake.hits(&tarball_path("flaky-tgz", "1.0.0")), 2);
    assert_eq!(version_set(&packument(&s, "flaky-tgz").await), set(&["1.0.0"]));
    assert_eq!(tarball_blobs(&s, "flaky-tgz").len(), 1);
}

async fn retry_on_timeout(backend: Backend) {
    let fake = FakeUpstream::start().await;
    fake.add_version("slow", "1.0.0", json!({}));
    let tgz = fake.add_version("slow-tgz", "1.0.0", json!({}));
    fake.fault(&packument_path("slow"), Fault::delay(Duration::from_secs(6)).times(1));
    fake.fault(&tarball_path("slow-tgz", "1.0.0"), Fault::delay(Duration::from_secs(6)).times(1));
    // 2 s, not less: the retry that must succeed runs under the same limit on a busy machine.
    let s = with_fake(backend, &fake, "upstream_timeout_secs = 2").await;
    let bob = s.add_user("bob", PW).await;
    let id = sync_ok(&s, &bob, "slow", json!({})).await;
    let id_tgz = sync_ok(&s, &bob, "slow-tgz", json!({})).await;
    // Both watched at once: each must be seen going back to waiting.
    let (slow, slow_tgz) = tokio::join!(watch_states(&s, "slow", &id, 30), watch_states(&s, "slow-tgz", &id_tgz, 30));
    for (name, id, (states, t)) in [("slow", &id, slow), ("slow-tgz", &id_tgz, slow_tgz)] {
        let log = task_log(&s, name, id).await;
        assert_eq!(t["state"], json!("success"), "{name}: {t}\n{log}");
        assert_eq!(t["attempts"], json!(2), "{name}: {t}\n{log}");
        assert!(in_order(&states, &["waiting/1", "success/2"]), "{name}: back to waiting after the timeout: {states:?}");
        assert!(log.contains("(attempt 1,") && log.contains("(attempt 2,"), "{name}: both attempts logged:\n{log}");
        assert!(log.contains("timed out"), "{name}:\n{log}");
        assert_eq!(version_set(&packument(&s, name).await), set(&["1.0.0"]));
    }
    let r = request(&s, Method::GET, "/slow-tgz/-/slow-tgz-1.0.0.tgz", None, &[], None).await;
    assert_eq!(r.bytes, tgz);
}

async fn bad_integrity_rejects_version(backend: Backend) {
    let fake = FakeUpstream::start().await;
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        fake.add_version("bad", v, json!({}));
    }
    // The packument says one sha512, the tarball is another (a valid tarball).
    fake.replace_tarball("bad", "1.1.0", tarball("bad", "1.1.0", json!({"description": "tampered"})));
    let s = with_fake(backend, &fake, "").await;
    let bob = s.add_user("bob", PW).await;
    let id = sync_ok(&s, &bob, "bad", json!({})).await;
    let t = wait_done(&s, "bad", &id, 30).await;
    let log = task_log(&s, "bad", &id).await;
    assert!(log.contains("1.1.0") && log.contains("integrity"), "the log names the rejected version:\n{log}");
    assert_eq!(t["attempts"], json!(1), "a bad integrity is not retried: {t}\n{log}");
    let doc = packument(&s, "bad").await;
    assert_eq!(version_set(&doc), set(&["1.0.0", "1.2.0"]), "{doc}\n{log}");
    assert_eq!(doc["dist-tags"]["latest"], json!("1.2.0"), "{doc}");
    let (status, _) = s.get("/bad/1.1.0", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let r = request(&s, Method::GET, "/bad/-/bad-1.1.0.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let blobs = tarball_blobs(&s, "bad");
    assert_eq!(blobs.len(), 2, "{blobs:?}");
    assert!(!blobs.iter().any(|b| b.contains("1.1.0")), "the rejected tarball was left in the blob store: {blobs:?}");
}

/// Upstream bodies past `max_body_bytes` are refused (not retried), so a broken
/// upstream cannot exhaust memory: a huge tarball rejects its version, a huge
/// packument fails the task.
async fn oversized_upstream_bodies_are_refused(backend: Backend) {
    let fake = FakeUpstream::start().await;
    for v in ["1.0.0", "1.1.0"] {
        fake.add_version("big", v, json!({}));
    }
    // 64 KiB of incompressible bytes: bigger than the 16 KiB limit.
    let huge: Vec<u8> = (0..64 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    fake.replace_tarball("big", "1.1.0", huge);
    fake.add_version("fat", "1.0.0", json!({}));
    fake.edit("fat", |doc| doc["readme"] = json!("x".repeat(32 * 1024)));
    let s = with_fake(backend, &fake, "max_body_bytes = 16384").await;
    let bob = s.add_user("bob", PW).await;

    let id = sync_ok(&s, &bob, "big", json!({})).await;
    let t = wait_done(&s, "big", &id, 30).await;
    let log = task_log(&s, "big", &id).await;
    assert!(log.contains("version 1.1.0 rejected") && log.contains("max_body_bytes"), "the log says why 1.1.0 was refused:\n{log}");
    assert_eq!(t["attempts"], json!(1), "an oversized body is not retried: {t}\n{log}");
    assert_eq!(version_set(&packument(&s, "big").await), set(&["1.0.0"]));
    assert_eq!(tarball_blobs(&s, "big").len(), 1, "only 1.0.0 is stored");

    let id = sync_ok(&s, &bob, "fat", json!({})).await;
    let t = wait_done(&s, "fat", &id, 30).await;
    let log = task_log(&s, "fat", &id).await;
    assert_eq!(t["state"], json!("error"), "{t}\n{log}");
    assert_eq!(t["attempts"], json!(1), "{t}\n{log}");
    assert!(log.contains("max_body_bytes"), "{log}");
    assert_eq!(packument_status(&s, "fat").await, StatusCode::NOT_FOUND);
}

async fn truncated_tarball_retries_then_succeeds(backend: Backend) {
    let fake = FakeUpstream::start().await;
    let tgz = fake.add_version("trunc1", "1.0.0", json!({}));
    fake.fault(&tarball_path("trunc1", "1.0.0"), Fault::truncate().times(1));
    let s = with_fake(backend, &fake, "").await;
    let bob = s.add_user("bob", PW).await;
    let id = sync_ok(&s, &bob, "trunc1", json!({})).await;
    let t = wait_success(&s, "trunc1", &id, 30).await;
    assert_eq!(t["attempts"], json!(2), "{t}");
    let r = request(&s, Method::GET, "/trunc1/-/trunc1-1.0.0.tgz", None, &[], None).await;
    assert_eq!(r.bytes, tgz, "the stored tarball is the whole one");
    assert_eq!(tarball_blobs(&s, "trunc1").len(), 1);
}

async fn truncated_tarball_rejects_version(backend: Backend) {
    let fake = FakeUpstream::start().await;
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        fake.add_version("trunc", v, json!({}));
    }
    // Always truncated: announced length, half the bytes, connection closed.
    fake.fault(&tarball_path("trunc", "1.1.0"), Fault::truncate());
    let s = with_fake(backend, &fake, "sync_max_attempts = 2").await;
    let bob = s.add_user("bob", PW).await;
    let id = sync_ok(&s, &bob, "trunc", json!({})).await;
    let t = wait_done(&s, "trunc", &id, 40).await;
    let log = task_log(&s, "trunc", &id).await;
    assert!(fake.hits(&tarball_path("trunc", "1.1.0")) >= 1);
    let doc = packument(&s, "trunc").await;
    let blobs = tarball_blobs(&s, "trunc");
    assert!(!blobs.iter().any(|b| b.contains("1.1.0")), "a truncated tarball was stored: {blobs:?}");
    assert!(doc["versions"].get("1.1.0").is_none(), "{doc}");
    assert_eq!(version_set(&doc), set(&["1.0.0", "1.2.0"]), "the other versions still sync; task {t}\nlog:\n{log}\npackument: {doc}");
    assert_eq!(doc["dist-tags"]["latest"], json!("1.2.0"), "{doc}");
    assert_eq!(blobs.len(), 2, "{blobs:?}");
}

async fn gone_upstream_blocks(backend: Backend) {
    let fake = FakeUpstream::start().await;
    fake.add_version("g451", "1.0.0", json!({}));
    fake.add_version("gunpub", "1.0.0", json!({}));
    let s = with_fake(backend, &fake, "sync_delete_mode = \"block\"").await;
    let bob = s.add_user("bob", PW).await;
    for name in ["g451", "gunpub"] {
        let id = sync_ok(&s, &bob, name, json!({})).await;
        wait_success(&s, name, &id, 30).await;
        let (_, b) = s.get(&format!("/-/package/{name}/blocks"), None).await;
        assert_eq!(b["blocked"], json!(false), "{b}");
    }
    fake.fault(&packument_path("g451"), Fault::status(451));
    fake.edit("gunpub", |doc| {
        *doc = json!({
            "_id": "gunpub",
            "name": "gunpub",
            "time": {
                "created": "2024-01-01T00:00:00.000Z",
                "modified": "2024-02-01T00:00:00.000Z",
                "unpublished": {"time": "2024-02-01T00:00:00.000Z", "versions": ["1.0.0"]},
            },
        })
    });
    for name in ["g451", "gunpub"] {
        let id = sync_ok(&s, &bob, name, json!({})).await;
        let t = wait_done(&s, name, &id, 30).await;
        let log = task_log(&s, name, &id).await;
        let (status, b) = s.get(&format!("/-/package/{name}/blocks"), None).await;
        assert_eq!(status, StatusCode::OK, "{b}");
        assert_eq!(b["blocked"], json!(true), "{name} not blocked; task {t}\n{log}");
        let (status, resp) = s.get(&format!("/{name}"), None).await;
        assert_error(status, &resp, 451);
    }
}

// ------------------------------------------------------------------ the queue

async fn merge_waiting_tasks(backend: Backend) {
    let fake = FakeUpstream::start().await;
    fake.add_version("mq", "1.0.0", json!({}));
    fake.add_version("mq", "1.1.0", json!({}));
    fake.add_version("mq2", "1.0.0", json!({}));
    // No workers: tasks stay waiting.
    let s = with_fake(backend, &fake, "sync_workers = 0").await;
    let bob = s.add_user("bob", PW).await;
    let (status, first) = request_sync(&s, Some(&bob), "mq", json!({"skipDependencies": true, "specificVersions": "[\"1.0.0\"]"})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, second) = request_sync(&s, Some(&bob), "mq", json!({"tips": "second"})).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["id"], first["id"], "a second request while the first waits is merged into it");
    assert_eq!(second["state"], json!("waiting"));
    let (_, legacy) = s.call(Method::PUT, "/mq/sync", Some(&bob), None).await;
    assert_eq!(legacy["logId"], first["id"], "the legacy form merges too: {legacy}");
    let other = sync_ok(&s, &bob, "mq2", json!({})).await;
    assert_ne!(json!(other), first["id"]);
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(task(&s, "mq", &id).await["state"], json!("waiting"));

    // A server with workers on the same database runs the merged task once.
    let worker = Server::start_with(ServerOptions::new(backend).database(&s.database_url).tail(&fake.registry_toml("fake", ""))).await;
    wait_success(&worker, "mq", &id, 30).await;
    wait_success(&worker, "mq2", &other, 30).await;
    assert_eq!(fake.hits(&packument_path("mq")), 1, "the merged task ran once");
    // The merge is the union: every version (the second asked for all).
    assert_eq!(version_set(&packument(&worker, "mq").await), set(&["1.0.0", "1.1.0"]));
    let log = task_log(&worker, "mq", &id).await;
    assert_eq!(log.matches("(attempt 1,").count(), 1, "{log}");
}

/// Reads a task's log straight from a server's blob store (it may have stopped).
fn log_file(s: &Server, id: &str) -> Option<String> {
    std::fs::read_to_string(s.data_dir.path().join("blobs/logs/sync").join(format!("{id}.log"))).ok()
}

async fn two_processes_one_queue() {
    let fake = FakeUpstream::start().await;
    let names: Vec<String> = (0..10).map(|i| format!("q{i}")).collect();
    for n in &names {
        for v in ["1.0.0", "1.1.0"] {
            fake.add_version(n, v, json!({}));
            fake.fault(&tarball_path(n, v), Fault::delay(Duration::from_millis(300)));
        }
    }
    let tail = fake.registry_toml("fake", "");
    let a = Server::start_with(ServerOptions::new(Backend::Postgres).tail(&tail)).await;
    let b = Server::start_with(ServerOptions::new(Backend::Postgres).database(&a.database_url).tail(&tail)).await;
    let bob = a.add_user("bob", PW).await;
    let mut ids = BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        let s = if i % 2 == 0 { &a } else { &b };
        ids.insert(n.clone(), sync_ok(s, &bob, n, json!({"skipDependencies": true})).await);
    }
    for (n, id) in &ids {
        let t = wait_done(&a, n, id, 45).await;
        assert_eq!(t["state"], json!("success"), "{n}: {t}\nlog A: {:?}\nlog B: {:?}", log_file(&a, id), log_file(&b, id));
        assert_eq!(t["attempts"], json!(1), "{n} ran more than once: {t}");
    }
    let mut ran_on = BTreeSet::new();
    for (n, id) in &ids {
        let logs: Vec<(&str, String)> =
            [("A", log_file(&a, id)), ("B", log_file(&b, id))].into_iter().filter_map(|(w, l)| l.map(|l| (w, l))).collect();
        assert_eq!(logs.len(), 1, "{n}: task {id} logged by {} processes: {logs:?}", logs.len());
        let (who, log) = &logs[0];
        ran_on.insert(*who);
        assert_eq!(log.matches("attempt 1, worker").count(), 1, "{n}:\n{log}");
        assert!(!log.contains("attempt 2"), "{n}:\n{log}");
        for v in ["1.0.0", "1.1.0"] {
            assert_eq!(log.matches(&format!("version {v} synced")).count(), 1, "{n}@{v}:\n{log}");
            assert_eq!(fake.hits(&tarball_path(n, v)), 1, "{n}@{v} downloaded more than once");
        }
        assert_eq!(fake.hits(&packument_path(n)), 1, "{n} packument fetched more than once");
        for s in [&a, &b] {
            let doc = packument(s, n).await;
            assert_eq!(version_set(&doc), set(&["1.0.0", "1.1.0"]), "{doc}");
            assert_eq!(doc["dist-tags"]["latest"], json!("1.1.0"));
        }
    }
    assert_eq!(ran_on.len(), 2, "only process {ran_on:?} ran tasks: the test did not exercise two processes");
}

async fn recovery_after_kill(backend: Backend) {
    let fake = FakeUpstream::start().await;
    let tgz = fake.add_version("rec", "1.0.0", json!({}));
    let tpath = tarball_path("rec", "1.0.0");
    // The download outlives the task timeout, so only heartbeats keep the task
    // claimed; the timeout leaves room for a heartbeat write delayed by a busy machine.
    fake.fault(&tpath, Fault::delay(Duration::from_secs(8)));
    let tail = fake.registry_toml("fake", "");
    let mut first = Server::start_with(ServerOptions::new(backend).toml("sync_task_timeout_secs = 4").tail(&tail)).await;
    let bob = first.add_user("bob", PW).await;
    let id = sync_ok(&first, &bob, "rec", json!({})).await;
    // Mid-task: processing, with the tarball download under way.
    let mid =
        poll(15, || async { (task(&first, "rec", &id).await["state"] == json!("processing") && fake.hits(&tpath) >= 1).then_some(()) })
            .await;
    assert!(mid.is_some(), "the task never got to the tarball: {}", task(&first, "rec", &id).await);
    first.stop_with("KILL").await;

    // A server without workers only recovers: the task goes back to waiting.
    let opts = |workers: &str| {
        ServerOptions::new(backend).database(&first.database_url).toml("sync_task_timeout_secs = 4").toml(workers).tail(&tail)
    };
    let observer = Server::start_with(opts("sync_workers = 0")).await;
    let waiting = poll(15, || async {
        let t = task(&observer, "rec", &id).await;
        (t["state"] == json!("waiting")).then_some(t)
    })
    .await;
    let Some(waiting) = waiting else {
        panic!("the killed worker's task did not return to waiting: {}", task(&observer, "rec", &id).await);
    };
    assert_eq!(waiting["attempts"], json!(1), "{waiting}");
    drop(observer);

    // Another server with workers finishes it (the 8 s download outlives the 4 s timeout: heartbeats).
    let second = Server::start_with(opts("sync_workers = 2")).await;
    let t = wait_success(&second, "rec", &id, 40).await;
    assert_eq!(t["attempts"], json!(2), "{t}");
    let log = task_log(&second, "rec", &id).await;
    assert!(log.contains("attempt 2"), "{log}");
    let first_log = log_file(&first, &id).unwrap_or_default();
    assert!(first_log.contains("attempt 1"), "{first_log}");
    let doc = packument(&second, "rec").await;
    assert_eq!(version_set(&doc), set(&["1.0.0"]));
    let r = request(&second, Method::GET, "/rec/-/rec-1.0.0.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.bytes, tgz);
}

// ------------------------------------------------------------------ download counts

async fn sync_download_data(backend: Backend) {
    let p = pair(backend, "cnpm", "downloads_flush_secs = 1").await;
    let (up, here) = (&p.up, &p.here);
    publish_ok(up, &p.alice, "dl", "1.0.0").await;
    let id = sync_ok(here, &p.bob, "dl", json!({})).await;
    wait_success(here, "dl", &id, 30).await;

    // Three downloads upstream, counted and flushed there.
    for _ in 0..3 {
        let r = request(up, Method::GET, "/dl/-/dl-1.0.0.tgz", None, &[], None).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    // Four in all: the first sync's own tarball fetch is a download upstream too.
    let upstream_total = 4;
    let counted = poll(15, || async {
        let (status, b) = up.get("/downloads/point/last-week/dl", None).await;
        (status == StatusCode::OK && b["downloads"].as_i64() == Some(upstream_total)).then_some(())
    })
    .await;
    let (_, b) = up.get("/downloads/point/last-week/dl", None).await;
    assert!(counted.is_some(), "the upstream never counted its {upstream_total} downloads: {b}");
    let (_, here_before) = here.get("/downloads/point/last-week/dl", None).await;
    assert_eq!(here_before["downloads"], json!(0), "{here_before}");

    let id = sync_ok(here, &p.bob, "dl", json!({"syncDownloadData": true})).await;
    wait_success(here, "dl", &id, 30).await;
    let (status, point) = here.get("/downloads/point/last-week/dl", None).await;
    assert_eq!(status, StatusCode::OK, "{point}");
    assert_eq!(point["downloads"], json!(upstream_total), "the upstream's counts here: {point}\n{}", task_log(here, "dl", &id).await);
    let (_, range) = here.get("/downloads/range/last-week/dl", None).await;
    let today = today_utc();
    let day = range["downloads"].as_array().unwrap().iter().find(|d| d["day"] == json!(today)).cloned();
    assert_eq!(day.map(|d| d["downloads"].clone()), Some(json!(upstream_total)), "{range}");

    // Local downloads add to them.
    let r = request(here, Method::GET, "/dl/-/dl-1.0.0.tgz", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    let added = poll(15, || async {
        let (_, b) = here.get("/downloads/point/last-week/dl", None).await;
        (b["downloads"].as_i64() == Some(upstream_total + 1)).then_some(())
    })
    .await;
    if added.is_none() {
        let (_, now) = here.get("/downloads/point/last-week/dl", None).await;
        panic!("local downloads do not add to the imported counts ({upstream_total} imported): {now}");
    }
}

// ------------------------------------------------------------------ scopes route syncs

async fn scope_routes_sync(backend: Backend) {
    let default_up = FakeUpstream::start().await;
    let corp_up = FakeUpstream::start().await;
    let tgz = corp_up.add_version("@corp/lib", "1.0.0", json!({}));
    corp_up.add_version("@corp/other", "1.0.0", json!({}));
    default_up.add_version("@corp/other", "1.0.0", json!({}));
    default_up.add_version("plain", "1.0.0", json!({}));
    let s = with_fake(backend, &default_up, "").await;
    let admin = s.add_admin("admin", PW).await;
    let bob = s.add_user("bob", PW).await;
    let (status, created) = s
        .call(
            Method::POST,
            "/-/registry",
            Some(&admin),
            Some(&json!({"name": "corp", "host": corp_up.base, "type": "npm", "userPrefix": "corp/"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let corp_id = created["registryId"].as_str().unwrap().to_string();
    let (status, scope) = s.call(Method::POST, "/-/scope", Some(&admin), Some(&json!({"name": "@corp", "registryId": corp_id}))).await;
    assert_eq!(status, StatusCode::CREATED, "{scope}");

    // @corp/* comes from the scope's registry, the rest from the default.
    let id = sync_ok(&s, &bob, "@corp/lib", json!({})).await;
    wait_success(&s, "@corp/lib", &id, 30).await;
    let id = sync_ok(&s, &bob, "plain", json!({})).await;
    wait_success(&s, "plain", &id, 30).await;
    assert_eq!(corp_up.hits(&packument_path("@corp/lib")), 1);
    assert_eq!(default_up.hits(&packument_path("@corp/lib")), 0);
    assert_eq!(default_up.hits(&packument_path("plain")), 1);
    assert_eq!(corp_up.hits(&packument_path("plain")), 0);
    let doc = packument(&s, "@corp/lib").await;
    let maintainers: Vec<&str> = doc["maintainers"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(maintainers, vec!["corp/fakeuser"], "the registry's own userPrefix: {doc}");
    let url = doc["versions"]["1.0.0"]["dist"]["tarball"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/", s.base)), "{url}");
    let bytes = s.client.get(&url).send().await.unwrap().bytes().await.unwrap().to_vec();
    assert_eq!(bytes, tgz);
    let doc = packument(&s, "plain").await;
    assert_eq!(doc["maintainers"][0]["name"], json!("fake:fakeuser"), "{doc}");

    // Without the scope, @corp/other goes to the default registry.
    let scope_id = scope["scopeId"].as_str().unwrap();
    let (status, resp) = s.call(Method::DELETE, &format!("/-/scope/{scope_id}"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let id = sync_ok(&s, &bob, "@corp/other", json!({})).await;
    wait_success(&s, "@corp/other", &id, 30).await;
    assert_eq!(default_up.hits(&packument_path("@corp/other")), 1);
    assert_eq!(corp_up.hits(&packument_path("@corp/other")), 0);

    // An unknown registryName is refused at once.
    let (status, resp) = request_sync(&s, Some(&bob), "plain", json!({"registryName": "nosuchregistry"})).await;
    assert_error(status, &resp, 422);
}
