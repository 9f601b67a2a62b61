//! Three `cairn` processes on one PostgreSQL and one S3 bucket (moto), as
//! behind a load balancer: a publish on one node is visible on the others at
//! once (not after the packument cache TTL, set to an hour here), `npm
//! install` from another node right after `npm publish`, concurrent publishes
//! through different nodes (no version lost, one winner per version), and a
//! token deleted on one node refused on the others; and faults: kill -9 of a
//! node during publishes and during a sync, the S3 server restarted mid-run.

use std::path::Path;
use std::time::{Duration, Instant};

use cairn_e2e::clients::{isolated_command, Run};
use cairn_e2e::crash::{assert_all_present, Acked, Client, Publishers, Refused};
use cairn_e2e::publish::{enc, poll, publish_ok, publish_with, tarball_path, PW};
use cairn_e2e::s3::{self, Moto};
use cairn_e2e::upstream::{sync_ok, task, wait_success, FakeUpstream, Fault};
use cairn_e2e::{Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::{json, Value};

/// Three nodes sharing one database and one bucket; packuments cached for an hour.
async fn cluster() -> Vec<Server> {
    cluster_on(&s3::endpoint(), "", "").await
}

/// Three nodes on one database and a new bucket at `endpoint`, with `toml`
/// (top-level keys) and `tail` (tables) in each node's config.
async fn cluster_on(endpoint: &str, toml: &str, tail: &str) -> Vec<Server> {
    let bucket = s3::create_bucket(endpoint).await;
    let opts = || {
        ServerOptions::new(Backend::Postgres)
            .toml("packument_cache_ttl_secs = 3600")
            .toml(toml)
            .tail(&s3::blobs_toml(endpoint, &bucket))
            .tail(tail)
    };
    let first = Server::start_with(opts()).await;
    let url = first.database_url.clone();
    let second = Server::start_with(opts().database(&url)).await;
    let third = Server::start_with(opts().database(&url)).await;
    vec![first, second, third]
}

async fn versions(s: &Server, name: &str) -> Vec<String> {
    let (status, doc) = s.get(&format!("/{}", enc(name)), None).await;
    if status != StatusCode::OK {
        return Vec::new();
    }
    let mut v: Vec<String> = doc["versions"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    v.sort();
    v
}

/// Polls `s` until `name` has `version`; how long it took.
async fn visible_after(s: &Server, name: &str, version: &str, since: Instant) -> Duration {
    let deadline = since + Duration::from_secs(10);
    loop {
        if versions(s, name).await.iter().any(|v| v == version) {
            return since.elapsed();
        }
        assert!(Instant::now() < deadline, "{name}@{version} not visible on {} after 10 s", s.base);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_is_visible_on_every_node_at_once() {
    let nodes = cluster().await;
    let token = nodes[0].add_user("alice", PW).await;
    publish_ok(&nodes[0], &token, "everywhere", "1.0.0").await;
    // Every node has the document cached now, for an hour.
    for n in &nodes {
        assert_eq!(versions(n, "everywhere").await, ["1.0.0"]);
    }
    let mut latencies = Vec::new();
    for i in 1..=20 {
        let (writer, reader) = (&nodes[i % 3], &nodes[(i + 1) % 3]);
        let version = format!("1.0.{i}");
        publish_ok(writer, &token, "everywhere", &version).await;
        let published = Instant::now();
        latencies.push(visible_after(reader, "everywhere", &version, published).await);
    }
    latencies.sort();
    let (p50, max) = (latencies[latencies.len() / 2], latencies[latencies.len() - 1]);
    eprintln!("publish-to-visible on another node over 20 publishes: p50 {p50:?}, max {max:?}");
    assert!(max < Duration::from_secs(2), "visible within 2 s (goal 100 ms): p50 {p50:?}, max {max:?}");
    // Dist-tag and deprecation changes too.
    let (status, body) = nodes[1].call(Method::PUT, "/-/package/everywhere/dist-tags/beta", Some(&token), Some(&json!("1.0.3"))).await;
    assert!(status.is_success(), "{body}");
    // Another node hears of it a moment after the write's answer (its change signal).
    for n in [&nodes[0], &nodes[2]] {
        let seen = poll(10, || async {
            let (_, doc) = n.get("/everywhere", None).await;
            (doc["dist-tags"]["beta"] == "1.0.3").then_some(())
        })
        .await;
        assert!(seen.is_some(), "the tag is not on {} after 10 s", n.base);
    }
}

async fn npm(dir: &Path, cwd: &Path, args: &[&str]) -> Run {
    let mut cmd = isolated_command("npm", &dir.join("npmrc"), &dir.join("globalnpmrc"), &dir.join("cache"));
    cmd.current_dir(cwd).env("HOME", dir).args(args);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output()).await.expect("npm in time").expect("run npm");
    Run::from_output(format!("npm {}", args.join(" ")), out, String::new())
}

fn npm_home(s: &Server, token: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("npmrc"), format!("registry={}/\n//{}/:_authToken={token}\n", s.base, s.addr)).unwrap();
    std::fs::write(dir.path().join("globalnpmrc"), "").unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_install_from_another_node_right_after_publish() {
    let nodes = cluster().await;
    let token = nodes[0].add_user("alice", PW).await;
    let publisher = npm_home(&nodes[0], &token);
    let pkg = publisher.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    for version in ["1.0.0", "1.1.0"] {
        std::fs::write(pkg.join("package.json"), format!(r#"{{"name":"spread","version":"{version}","main":"index.js"}}"#)).unwrap();
        std::fs::write(pkg.join("index.js"), format!("module.exports = '{version}';\n")).unwrap();
        npm(publisher.path(), &pkg, &["publish"]).await.assert_ok();
        // At once, through another node each time (its cache held the previous version).
        let reader = npm_home(&nodes[if version == "1.0.0" { 1 } else { 2 }], &token);
        let project = reader.path().join("project");
        std::fs::create_dir(&project).unwrap();
        std::fs::write(project.join("package.json"), r#"{"name":"project","version":"1.0.0"}"#).unwrap();
        npm(reader.path(), &project, &["install", "spread@latest"]).await.assert_ok();
        let installed = std::fs::read_to_string(project.join("node_modules/spread/index.js")).unwrap();
        assert_eq!(installed, format!("module.exports = '{version}';\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_through_different_nodes() {
    let nodes = cluster().await;
    let token = nodes[0].add_user("alice", PW).await;
    publish_ok(&nodes[0], &token, "contended", "0.0.1").await;
    // Different versions through every node at once: none lost.
    let token: &str = &token;
    let mut tasks = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        for j in 0..5 {
            let version = format!("1.{i}.{j}");
            tasks.push(async move { (version.clone(), publish_with(n, Some(token), "contended", &version, json!({}), None).await.status) });
        }
    }
    for (version, status) in futures_join_all(tasks).await {
        assert_eq!(status, StatusCode::CREATED, "{version}");
    }
    for n in &nodes {
        assert_eq!(versions(n, "contended").await.len(), 16, "every version on {}", n.base);
    }
    // One version through every node at once: one winner, whose tarball is served everywhere.
    let attempts = nodes.iter().enumerate().map(|(i, n)| async move {
        publish_with(n, Some(token), "contended", "2.0.0", json!({"description": format!("from node {i}")}), None).await
    });
    let results = futures_join_all(attempts).await;
    let winners: Vec<_> = results.iter().filter(|p| p.status == StatusCode::CREATED).collect();
    assert_eq!(winners.len(), 1, "statuses: {:?}", results.iter().map(|p| p.status).collect::<Vec<_>>());
    for p in results.iter().filter(|p| p.status != StatusCode::CREATED) {
        assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    }
    for n in &nodes {
        let resp = n.client.get(n.url(&tarball_path("contended", "2.0.0"))).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.bytes().await.unwrap().to_vec(), winners[0].tarball, "the winner's bytes on {}", n.base);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_deleted_on_one_node_is_refused_on_the_others() {
    let nodes = cluster().await;
    let token = nodes[0].add_user("alice", PW).await;
    for n in &nodes {
        assert_eq!(n.get("/-/whoami", Some(&token)).await, (StatusCode::OK, json!({"username": "alice"})));
    }
    let (status, body) = nodes[1].call(Method::DELETE, &format!("/-/user/token/{token}"), Some(&token), None).await;
    assert!(status.is_success(), "{body}");
    for n in &nodes {
        let (status, body): (StatusCode, Value) = n.get("/-/whoami", Some(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{} still takes the token: {body}", n.base);
    }
}

// ---------------------------------------------------------------------------
// Faults

/// Publishes through all three nodes at once (two workers each); node 1 gets
/// kill -9 with publishes in flight, the others keep going. Every
/// acknowledged publish is then on both survivors with its tarball, every
/// version there is whole, and the survivors never answered a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_a_node_during_publishes() {
    let mut nodes = cluster().await;
    let token = nodes[0].add_user("alice", PW).await;
    let clients: Vec<Client> = nodes.iter().map(|n| Client::new(n, &token)).collect();
    let publishers = Publishers::start(&clients, 2, 1);
    assert!(publishers.wait_acked(12, 60).await, "fewer than 12 publishes acknowledged in 60 s");
    nodes[1].kill9().await;
    let before = publishers.acked.lock().unwrap().len();
    // The survivors take more publishes after the kill.
    assert!(publishers.wait_acked(before + 12, 60).await, "the survivors took no more publishes after the kill");
    let (acked, refused) = publishers.finish().await;
    let killed = nodes[1].base.clone();
    let on_survivors: Vec<&Refused> = refused.iter().filter(|r| r.base != killed).collect();
    assert!(on_survivors.is_empty(), "the survivors refused or dropped publishes: {on_survivors:#?}");
    assert!(refused.iter().all(|r| r.status.is_none_or(|s| !s.is_server_error())), "5xx before the kill: {refused:#?}");
    for n in [&nodes[0], &nodes[2]] {
        let present = assert_all_present(n, &acked).await;
        eprintln!("{}: {} acknowledged, {present} versions present and whole", n.base, acked.len());
    }
    for n in [&nodes[0], &nodes[2]] {
        assert!(!n.log().contains("panicked"), "{} panicked:\n{}", n.base, n.log());
    }
}

/// A sync task claimed by one node, whose node gets kill -9 mid-download
/// (the upstream tarball takes 12 s, the task timeout is 6 s, room for a
/// heartbeat delayed by a busy machine): its heartbeat
/// stops, the task is queued again and a surviving node finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_a_node_during_a_sync() {
    let fake = FakeUpstream::start().await;
    let tgz = fake.add_version("rec", "1.0.0", json!({}));
    let tpath = tarball_path("rec", "1.0.0");
    fake.fault(&tpath, Fault::delay(Duration::from_secs(12)));
    let mut nodes = cluster_on(&s3::endpoint(), "sync_task_timeout_secs = 6", &fake.registry_toml("fake", "")).await;
    let bob = nodes[0].add_user("bob", PW).await;
    let id = sync_ok(&nodes[0], &bob, "rec", json!({})).await;
    let mid =
        poll(20, || async { (task(&nodes[0], "rec", &id).await["state"] == json!("processing") && fake.hits(&tpath) >= 1).then_some(()) })
            .await;
    assert!(mid.is_some(), "the task never got to the tarball: {}", task(&nodes[0], "rec", &id).await);
    let claimer = claimed_by(&nodes[0].database_url, &id).await;
    // Worker names are HOST-PID-N.
    let k = nodes.iter().position(|n| claimer.contains(&format!("-{}-", n.pid()))).unwrap_or_else(|| panic!("no node is {claimer}"));
    nodes[k].kill9().await;
    let survivors: Vec<&Server> = nodes.iter().enumerate().filter(|(i, _)| *i != k).map(|(_, n)| n).collect();
    let t = wait_success(survivors[0], "rec", &id, 60).await;
    assert_eq!(t["attempts"], json!(2), "{t}");
    let finisher = claimed_by(&nodes[0].database_url, &id).await;
    assert_ne!(finisher, claimer, "finished by another node");
    assert!(fake.hits(&tpath) >= 2, "the tarball fetched again");
    for n in survivors {
        let resp = n.client.get(n.url(&tarball_path("rec", "1.0.0"))).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "tarball on {}", n.base);
        assert_eq!(resp.bytes().await.unwrap().to_vec(), tgz, "the upstream's bytes on {}", n.base);
        assert_eq!(versions(n, "rec").await, ["1.0.0"]);
    }
}

/// The S3 server stopped and started again with publishes in flight through
/// all three nodes: while it is down every node answers 503 with the error
/// body (never 500, never a hang), readiness says 503, the database side
/// still answers; a publish refused with 503 is absent everywhere, and
/// after the restart publishes work again with their tarballs on every node.
/// (moto keeps objects in memory, so objects stored before the restart are
/// gone with it; the test checks rows for those, not bytes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_restart_mid_run_answers_503_then_recovers() {
    let mut moto = Moto::start().await;
    let nodes = cluster_on(&moto.endpoint(), "", "").await;
    let token = nodes[0].add_user("alice", PW).await;
    let clients: Vec<Client> = nodes.iter().map(|n| Client::new(n, &token)).collect();
    let publishers = Publishers::start(&clients, 1, 1);
    assert!(publishers.wait_acked(6, 60).await, "fewer than 6 publishes acknowledged in 60 s");
    moto.stop();
    let refused_some = poll(30, || {
        let n = publishers.refused.lock().unwrap().len();
        async move { (n >= 6).then_some(()) }
    });
    assert!(refused_some.await.is_some(), "publishes kept succeeding with the S3 server down");
    for (i, n) in nodes.iter().enumerate() {
        during_outage(n, &token, &format!("2.0.{i}")).await;
    }
    let (acked, refused) = publishers.finish().await;
    for r in &refused {
        assert_eq!(r.status, Some(StatusCode::SERVICE_UNAVAILABLE), "a publish during the outage: {r:?}");
        assert!(r.error.contains("blob store"), "{r:?}");
    }

    moto.restart().await;
    s3::put_bucket(&moto.endpoint(), &bucket_of(&nodes[0])).await;
    for n in &nodes {
        let ready = poll(30, || async { (n.get("/-/ready", None).await.0 == StatusCode::OK).then_some(()) }).await;
        assert!(ready.is_some(), "{} ready again after the S3 server came back", n.base);
    }
    let mut after = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        after.push((format!("3.0.{i}"), publish_ok(n, &token, "after", &format!("3.0.{i}")).await));
    }
    for n in &nodes {
        assert_rows(n, &acked, &refused).await;
        for (version, tgz) in &after {
            let resp = n.client.get(n.url(&tarball_path("after", version))).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "after@{version} on {}", n.base);
            assert_eq!(&resp.bytes().await.unwrap().to_vec(), tgz, "after@{version} bytes on {}", n.base);
        }
    }
}

/// One node with the S3 server down: a publish and readiness answer 503
/// promptly, the packument (database only) still 200 without that version.
async fn during_outage(n: &Server, token: &str, version: &str) {
    let p = in_time(&format!("publish on {}", n.base), publish_with(n, Some(token), "outage", version, json!({}), None)).await;
    cairn_e2e::assert_error(p.status, &p.body, 503);
    let (status, body) = in_time(&format!("ready on {}", n.base), n.get("/-/ready", None)).await;
    cairn_e2e::assert_error(status, &body, 503);
    assert_eq!(n.get("/outage", None).await.0, StatusCode::NOT_FOUND, "the refused publish made the package on {}", n.base);
}

async fn in_time<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(30), f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} hung for 30 s with the S3 server down"),
    }
}

/// Acknowledged versions are in the packument with their integrity; refused ones are not.
async fn assert_rows(n: &Server, acked: &[Acked], refused: &[Refused]) {
    for name in ["crash-0", "crash-1"] {
        let (status, doc) = n.get(&format!("/{name}"), None).await;
        assert_eq!(status, StatusCode::OK, "{name} on {}: {doc}", n.base);
        for a in acked.iter().filter(|a| a.name == name) {
            let integrity = cairn_e2e::publish::integrity(&a.tarball);
            assert_eq!(
                doc["versions"][&a.version]["dist"]["integrity"],
                json!(integrity),
                "acknowledged {name}@{} on {}",
                a.version,
                n.base
            );
        }
        for r in refused.iter().filter(|r| r.name == name) {
            assert!(doc["versions"][&r.version].is_null(), "{name}@{} refused with 503 but present on {}", r.version, n.base);
        }
    }
}

/// The bucket a node's config names.
fn bucket_of(n: &Server) -> String {
    let config = std::fs::read_to_string(&n.config_path).unwrap();
    let line = config.lines().find(|l| l.starts_with("bucket = ")).expect("bucket in the config");
    line.trim_start_matches("bucket = ").trim_matches('"').to_string()
}

/// Who holds (or last held) a task: `claimed_by` is kept on success.
async fn claimed_by(database_url: &str, id: &str) -> String {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(database_url).await.expect("connect");
    let row = sqlx::query("SELECT claimed_by FROM tasks WHERE id = $1").bind(id).fetch_one(&mut conn).await.expect("task row");
    let by: Option<String> = row.get(0);
    let _ = conn.close().await;
    by.unwrap_or_default()
}

/// Runs the futures concurrently on this task; results in order.
async fn futures_join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut pending: Vec<(usize, std::pin::Pin<Box<F>>)> = futures.into_iter().enumerate().collect();
    std::future::poll_fn(move |cx| {
        pending.retain_mut(|(i, f)| match f.as_mut().poll(cx) {
            std::task::Poll::Ready(out) => {
                outputs[*i] = Some(out);
                false
            }
            std::task::Poll::Pending => true,
        });
        if pending.is_empty() {
            std::task::Poll::Ready(std::mem::take(&mut outputs).into_iter().map(|o| o.expect("every future done")).collect())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}
