//! The `_changes` feed, and a Cairn following another Cairn's feed.
//!
//! The followed upstreams are other Cairn processes started by the tests on
//! loopback (always SQLite: they only stand in for a registry); the follower
//! runs on both backends.

use std::time::Duration;

use cairn_e2e::publish::{enc, poll, publish_ok, tarball_path, PW};
use cairn_e2e::{assert_error, both_backends, Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::{json, Value};

both_backends!(changes_feed, changes_feed_pages, follower_follows_upstream, follower_scope_routing, follower_resumes_after_restart);

/// How long a followed change may take to show up downstream.
const FOLLOW_SECS: u64 = 20;

fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

async fn changes(s: &Server, query: &str) -> Value {
    let (st, body) = s.get(&format!("/_changes{query}"), None).await;
    assert_eq!(st, StatusCode::OK, "GET /_changes{query}: {body}");
    assert!(body["results"].is_array(), "results in {body}");
    body
}

fn rows(body: &Value) -> Vec<Value> {
    body["results"].as_array().cloned().unwrap_or_default()
}

fn seqs(body: &Value) -> Vec<i64> {
    rows(body).iter().map(|r| r["seq"].as_i64().unwrap_or_else(|| panic!("numeric seq in {r}"))).collect()
}

fn ids(body: &Value) -> Vec<String> {
    rows(body).iter().map(|r| r["id"].as_str().unwrap_or_else(|| panic!("id in {r}")).to_string()).collect()
}

// ---------------------------------------------------------------------------
// The feed
// ---------------------------------------------------------------------------

/// CouchDB-style rows in order, `since` and `limit`, bad `since` values.
async fn changes_feed(backend: Backend) {
    let s = Server::start(backend).await;
    let tok = s.add_user("alice", PW).await;
    let sfx = suffix();
    let (a, b, c) = (format!("feed-a-{sfx}"), format!("feed-b-{sfx}"), format!("@sc{sfx}/feed-c-{sfx}"));

    let empty = changes(&s, "").await;
    assert_eq!(rows(&empty), Vec::<Value>::new(), "a new registry has no changes: {empty}");

    publish_ok(&s, &tok, &a, "1.0.0").await;
    publish_ok(&s, &tok, &b, "1.0.0").await;
    publish_ok(&s, &tok, &a, "1.1.0").await;
    publish_ok(&s, &tok, &c, "1.0.0").await;

    let all = changes(&s, "").await;
    assert_eq!(ids(&all), vec![a.clone(), b.clone(), a.clone(), c.clone()], "{all}");
    let seq = seqs(&all);
    assert!(seq.windows(2).all(|w| w[0] < w[1]), "seqs increase: {seq:?}");
    assert_eq!(all["last_seq"].as_i64(), Some(seq[3]), "last_seq is the last row's seq: {all}");
    for row in rows(&all) {
        assert!(row["type"].as_str().is_some_and(|t| !t.is_empty()), "type in {row}");
        assert!(row["changes"].is_array(), "changes in {row}");
    }

    // since: strictly after.
    let after = changes(&s, &format!("?since={}", seq[1])).await;
    assert_eq!(ids(&after), vec![a.clone(), c.clone()], "{after}");
    assert_eq!(seqs(&after), seq[2..].to_vec());
    assert_eq!(after["last_seq"].as_i64(), Some(seq[3]));
    let zero = changes(&s, "?since=0").await;
    assert_eq!(seqs(&zero), seq);

    // limit.
    let two = changes(&s, "?limit=2").await;
    assert_eq!(seqs(&two), seq[..2].to_vec(), "{two}");
    assert_eq!(two["last_seq"].as_i64(), Some(seq[1]), "{two}");
    let next = changes(&s, &format!("?since={}&limit=2", seq[1])).await;
    assert_eq!(seqs(&next), seq[2..].to_vec(), "{next}");

    // At and beyond the end: no rows.
    let at_end = changes(&s, &format!("?since={}", seq[3])).await;
    assert_eq!(rows(&at_end), Vec::<Value>::new(), "{at_end}");
    let beyond = changes(&s, &format!("?since={}", seq[3] + 1000)).await;
    assert_eq!(rows(&beyond), Vec::<Value>::new(), "{beyond}");
    let (st, _) = s.get("/_changes?since=now", None).await;
    assert_eq!(st, StatusCode::OK);

    // Not a position: 422 with the error body.
    for bad in ["abc", "-1", "1.5", "0x10"] {
        let (st, body) = s.get(&format!("/_changes?since={bad}"), None).await;
        assert_error(st, &body, 422);
    }
}

/// More than 1000 changes: one call gives at most 1000 rows, whatever
/// `limit` asks; paging with `since=last_seq` gives each change once.
async fn changes_feed_pages(backend: Backend) {
    const TAGS: usize = 1010;
    let s = Server::start(backend).await;
    let tok = s.add_user("alice", PW).await;
    let sfx = suffix();
    let names: Vec<String> = (0..4).map(|i| format!("page-{i}-{sfx}")).collect();
    for n in &names {
        publish_ok(&s, &tok, n, "1.0.0").await;
    }
    // Each dist-tag change is one row of the feed.
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..TAGS {
        let (client, url, tok, sem) =
            (s.client.clone(), s.url(&format!("/-/package/{}/dist-tags/t{i}", names[i % names.len()])), tok.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            let r = client.put(url).bearer_auth(tok).json(&json!("1.0.0")).send().await.expect("request");
            let st = r.status();
            (st, r.text().await.unwrap_or_default())
        });
    }
    while let Some(r) = set.join_next().await {
        let (st, body) = r.unwrap();
        assert_eq!(st, StatusCode::CREATED, "dist-tag: {body}");
    }
    let total = names.len() + TAGS;

    let first = changes(&s, "").await;
    assert_eq!(rows(&first).len(), 1000, "rows in one call with {total} changes");
    let over = s.get("/_changes?limit=5000", None).await;
    match over.0 {
        StatusCode::OK => assert!(rows(&over.1).len() <= 1000, "limit=5000 gave {} rows", rows(&over.1).len()),
        st => assert_error(st, &over.1, 422),
    }

    let mut seen: Vec<i64> = Vec::new();
    let mut since = 0i64;
    for _ in 0..10 {
        let page = changes(&s, &format!("?since={since}")).await;
        let seq = seqs(&page);
        assert!(seq.len() <= 1000, "page size {}", seq.len());
        if seq.is_empty() {
            assert_eq!(page["last_seq"].as_i64(), Some(since), "an empty page keeps last_seq: {page}");
            break;
        }
        assert_eq!(page["last_seq"].as_i64(), seq.last().copied());
        since = *seq.last().unwrap();
        seen.extend(seq);
    }
    assert_eq!(seen.len(), total, "changes seen by paging");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "each change once, in order");
}

// ---------------------------------------------------------------------------
// Following
// ---------------------------------------------------------------------------

/// `[[registries]]` with a change stream.
fn followed(name: &str, up: &Server, default: bool, scopes: &[&str]) -> String {
    let scopes: Vec<String> = scopes.iter().map(|s| format!("{s:?}")).collect();
    format!(
        "[[registries]]\nname = \"{name}\"\nhost = \"{base}\"\ntype = \"cnpm\"\ndefault = {default}\nchange_stream = \"{base}/_changes\"\nscopes = [{}]\n",
        scopes.join(", "),
        base = up.base
    )
}

async fn start_follower(backend: Backend, registries: &[String]) -> Server {
    let mut opts = ServerOptions::new(backend).toml("changes_poll_ms = 200\nupstream_timeout_secs = 5");
    for r in registries {
        opts = opts.tail(r);
    }
    Server::start_with(opts).await
}

/// Waits until `name` downstream has exactly `versions`; panics with the log otherwise.
async fn wait_versions(down: &Server, name: &str, versions: &[&str]) -> Value {
    let want: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
    let path = format!("/{}", enc(name));
    let found = poll(FOLLOW_SECS, || async {
        let (st, doc) = down.get(&path, None).await;
        if st != StatusCode::OK {
            return None;
        }
        let mut have: Vec<String> = doc["versions"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        have.sort();
        (have == want).then_some(doc)
    })
    .await;
    match found {
        Some(doc) => doc,
        None => {
            let (st, doc) = down.get(&path, None).await;
            panic!("{name} did not reach versions {versions:?} downstream within {FOLLOW_SECS} s (last: {st} {doc})\n--- downstream log ---\n{}", tail(&down.log(), 60))
        }
    }
}

fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The packages named by "change followed" lines of `log`, in order.
fn followed_packages(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("change followed"))
        .filter_map(|l| l.split("package=").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap_or("").trim_matches('"').to_string())
        .collect()
}

fn times_followed(log: &str, name: &str) -> usize {
    followed_packages(log).iter().filter(|p| *p == name).count()
}

/// The downstream serves `name`@`version` with the upstream's bytes, from its own URL.
async fn assert_same_tarball(up: &Server, down: &Server, name: &str, version: &str) {
    let path = tarball_path(name, version);
    let (a, b) = (up.client.get(up.url(&path)).send().await.unwrap(), down.client.get(down.url(&path)).send().await.unwrap());
    assert_eq!(b.status(), StatusCode::OK, "downstream GET {path}");
    let (a, b) = (a.bytes().await.unwrap(), b.bytes().await.unwrap());
    assert!(a == b, "downstream tarball {path} differs from the upstream's");
    let (st, m) = down.get(&format!("/{}/{version}", enc(name)), None).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert_eq!(m["dist"]["tarball"], json!(down.url(&path)), "downstream manifest of {name}@{version}");
}

/// Packages published upstream (before and after the follower starts,
/// unscoped and scoped, new versions too) appear downstream.
async fn follower_follows_upstream(backend: Backend) {
    let up = Server::start(Backend::Sqlite).await;
    let tok = up.add_user("alice", PW).await;
    let sfx = suffix();
    let (x, y) = (format!("follow-x-{sfx}"), format!("@sc{sfx}/follow-y-{sfx}"));
    publish_ok(&up, &tok, &x, "1.0.0").await;

    let down = start_follower(backend, &[followed("up", &up, true, &[])]).await;
    wait_versions(&down, &x, &["1.0.0"]).await;

    publish_ok(&up, &tok, &y, "1.0.0").await;
    publish_ok(&up, &tok, &x, "1.1.0").await;
    wait_versions(&down, &y, &["1.0.0"]).await;
    let doc = wait_versions(&down, &x, &["1.0.0", "1.1.0"]).await;
    assert_eq!(doc["dist-tags"]["latest"], json!("1.1.0"), "{doc}");
    assert_same_tarball(&up, &down, &x, "1.1.0").await;
    assert_same_tarball(&up, &down, &y, "1.0.0").await;
    let log = down.log();
    assert!(times_followed(&log, &x) >= 2 && times_followed(&log, &y) >= 1, "change followed lines: {:?}", followed_packages(&log));
}

/// Scope routing: a registry with `scopes = ["@acme"]` follows only @acme
/// packages from its feed; a second registry owning @beta follows only @beta
/// from its own feed. Unscoped, unmapped-scope and other-registry-scope
/// packages are not followed.
async fn follower_scope_routing(backend: Backend) {
    let up1 = Server::start(Backend::Sqlite).await;
    let up2 = Server::start(Backend::Sqlite).await;
    let t1 = up1.add_user("alice", PW).await;
    let t2 = up2.add_user("alice", PW).await;
    let down = start_follower(backend, &[followed("one", &up1, true, &["@acme"]), followed("two", &up2, false, &["@beta"])]).await;
    let sfx = suffix();

    // Not for "one": unscoped, an unmapped scope, @beta (owned by "two").
    let skipped1 = [format!("plain-one-{sfx}"), format!("@other{sfx}/o-{sfx}"), format!("@beta/on-one-{sfx}")];
    // Not for "two": unscoped, @acme (owned by "one").
    let skipped2 = [format!("plain-two-{sfx}"), format!("@acme/on-two-{sfx}")];
    for n in &skipped1 {
        publish_ok(&up1, &t1, n, "1.0.0").await;
    }
    for n in &skipped2 {
        publish_ok(&up2, &t2, n, "1.0.0").await;
    }
    // Then the wanted ones, last in each feed.
    let (acme, beta) = (format!("@acme/a-{sfx}"), format!("@beta/b-{sfx}"));
    publish_ok(&up1, &t1, &acme, "1.0.0").await;
    publish_ok(&up2, &t2, &beta, "1.0.0").await;

    wait_versions(&down, &acme, &["1.0.0"]).await;
    wait_versions(&down, &beta, &["1.0.0"]).await;
    assert_same_tarball(&up1, &down, &acme, "1.0.0").await;
    assert_same_tarball(&up2, &down, &beta, "1.0.0").await;

    // Both feeds were read past the skipped changes (they came first); give one more poll anyway.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let log = down.log();
    for n in skipped1.iter().chain(skipped2.iter()) {
        let (st, body) = down.get(&format!("/{}", enc(n)), None).await;
        assert_error(st, &body, 404);
        assert_eq!(times_followed(&log, n), 0, "{n} must not be followed; change followed lines: {:?}", followed_packages(&log));
    }
    assert_eq!(times_followed(&log, &acme), 1, "{:?}", followed_packages(&log));
    assert_eq!(times_followed(&log, &beta), 1, "{:?}", followed_packages(&log));
}

/// After a restart the follower resumes from its saved position: only changes
/// made since are followed; already synced packages are not queued again.
async fn follower_resumes_after_restart(backend: Backend) {
    let up = Server::start(Backend::Sqlite).await;
    let tok = up.add_user("alice", PW).await;
    let mut down = start_follower(backend, &[followed("up", &up, true, &[])]).await;
    let sfx = suffix();
    let (p1, p2, p3) = (format!("resume-one-{sfx}"), format!("@sc{sfx}/resume-two-{sfx}"), format!("resume-three-{sfx}"));
    publish_ok(&up, &tok, &p1, "1.0.0").await;
    publish_ok(&up, &tok, &p2, "1.0.0").await;
    wait_versions(&down, &p1, &["1.0.0"]).await;
    wait_versions(&down, &p2, &["1.0.0"]).await;
    // A few more polls, so the position after p2 is saved before stopping.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = down.log();
    assert_eq!(times_followed(&before, &p1), 1, "{:?}", followed_packages(&before));
    assert_eq!(times_followed(&before, &p2), 1, "{:?}", followed_packages(&before));

    down.restart().await;
    publish_ok(&up, &tok, &p3, "1.0.0").await;
    publish_ok(&up, &tok, &p1, "1.1.0").await;
    wait_versions(&down, &p3, &["1.0.0"]).await;
    wait_versions(&down, &p1, &["1.0.0", "1.1.0"]).await;
    tokio::time::sleep(Duration::from_millis(600)).await;

    let log = down.log();
    let after = &log[before.len()..];
    let since_restart = followed_packages(after);
    assert_eq!(since_restart, vec![p3.clone(), p1.clone()], "changes followed after the restart (only the new ones)");
    // The packages synced before are still there, unchanged.
    let (st, doc) = down.get(&format!("/{}", enc(&p2)), None).await;
    assert_eq!(st, StatusCode::OK, "{doc}");
    let (st, _) = down.call(Method::GET, &tarball_path(&p2, "1.0.0"), None, None).await;
    assert_eq!(st, StatusCode::OK);
}
