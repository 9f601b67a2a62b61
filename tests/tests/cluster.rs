//! Several nodes on one PostgreSQL (issue 12), or two servers on one SQLite
//! file: what one writes, the other serves at once. The packument TTL is set
//! to an hour here, so only the database's change signals (NOTIFY; SQLite's
//! change log) can make another node see a write in time.

use std::time::{Duration, Instant};

use cairn_e2e::publish::{packument, poll, publish_ok, PW};
use cairn_e2e::{Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::{json, Value};

mod writes_on_one_node_are_visible_on_another {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::writes_on_one_node_are_visible_on_another(cairn_e2e::Backend::Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::writes_on_one_node_are_visible_on_another(cairn_e2e::Backend::Sqlite).await
    }
}

const LONG_TTL: &str = "packument_cache_ttl_secs = 3600\n";

/// Polls `b`'s packument of `name` until `check` holds; how long it took.
async fn visible_on(b: &Server, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Duration {
    let start = Instant::now();
    let seen = poll(10, || async {
        let doc = packument(b, name).await;
        check(&doc).then_some(())
    })
    .await;
    assert!(seen.is_some(), "{what}: not visible on the other node after 10 s (its cache TTL is an hour)");
    start.elapsed()
}

async fn writes_on_one_node_are_visible_on_another(backend: Backend) {
    let a = Server::start_with(ServerOptions::new(backend).toml(LONG_TTL)).await;
    let b = Server::start_with(ServerOptions::new(backend).database(&a.database_url).toml(LONG_TTL)).await;
    let alice = a.add_user("alice", PW).await;
    publish_ok(&a, &alice, "spread", "1.0.0").await;
    // b caches the document now.
    assert_eq!(packument(&b, "spread").await["dist-tags"]["latest"], json!("1.0.0"));
    assert_eq!(packument(&b, "spread").await["dist-tags"]["latest"], json!("1.0.0"));

    publish_ok(&a, &alice, "spread", "1.1.0").await;
    let took = visible_on(&b, "spread", "a publish", |d| d["versions"].get("1.1.0").is_some()).await;
    eprintln!("publish on a visible on b after {took:?}");

    let (status, body) = a.call(Method::PUT, "/-/package/spread/dist-tags/beta", Some(&alice), Some(&json!("1.0.0"))).await;
    assert!(status.is_success(), "dist-tag: {status} {body}");
    visible_on(&b, "spread", "a dist-tag", |d| d["dist-tags"]["beta"] == json!("1.0.0")).await;

    let (status, body) = a.call(Method::DELETE, "/-/package/spread/dist-tags/beta", Some(&alice), None).await;
    assert!(status.is_success(), "dist-tag rm: {status} {body}");
    visible_on(&b, "spread", "a dist-tag removal", |d| d["dist-tags"].get("beta").is_none()).await;

    // And the other way round: a write on b reaches a's cache.
    assert!(packument(&a, "spread").await["versions"].get("1.2.0").is_none());
    publish_ok(&b, &alice, "spread", "1.2.0").await;
    visible_on(&a, "spread", "a publish on b", |d| d["versions"].get("1.2.0").is_some()).await;

    // A whole-package unpublish on a: b answers 404.
    let rev = packument(&a, "spread").await["_rev"].as_str().unwrap().to_string();
    let (status, body) = a.call(Method::DELETE, &format!("/spread/-rev/{rev}"), Some(&alice), None).await;
    assert!(status.is_success(), "unpublish: {status} {body}");
    let gone = poll(10, || async { (b.get("/spread", None).await.0 == StatusCode::NOT_FOUND).then_some(()) }).await;
    assert!(gone.is_some(), "the unpublished package is still served by the other node");
}
