//! The storage conformance suite: one set of checks of the [`Store`] contract,
//! run against SQLite and PostgreSQL alike.

use std::sync::Arc;

use cairn::store::{self, ChangeSignal, NewVersion, PackageChange, PublishOutcome, Store, StoreError, Task, Token, User, VersionRecord};
use cairn_e2e::pg::TempDatabase;

struct Fixture {
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
    _db: Option<TempDatabase>,
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nested/dir/cairn.db").display());
    let store = store::open(&url, 4).await.unwrap();
    Fixture { store, _dir: dir, _db: None }
}

async fn postgres() -> Fixture {
    let db = TempDatabase::create().await;
    let store = store::open(&db.url, 4).await.unwrap();
    Fixture { store, _dir: tempfile::tempdir().unwrap(), _db: Some(db) }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let f = super::sqlite().await;
                super::$name(f.store.as_ref()).await;
                f.store.close().await;
            }
            #[tokio::test]
            async fn postgres() {
                let f = super::postgres().await;
                super::$name(f.store.as_ref()).await;
                f.store.close().await;
            }
        }
    )*};
}

conformance!(
    users_round_trip,
    user_names_are_unique,
    tokens_round_trip,
    token_deletion_is_scoped_to_owner,
    touch_tokens_keeps_the_latest,
    migrations_are_idempotent,
    publish_and_change_packages,
    task_queue_claims_merges_and_recovers,
    tags_always_name_existing_versions,
    tags_keep_creation_order,
    concurrent_package_writes_never_deadlock,
    deprecations_apply_to_the_current_manifest,
    referenced_blobs_are_found,
    binary_entries_round_trip,
    committed_package_changes_are_signalled,
    hook_deliveries_keep_order_and_are_pruned,
    hook_deliveries_are_claimed_and_finished_in_batches,
);

fn user(name: &str) -> User {
    User {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.into(),
        email: Some(format!("{name}@example.com")),
        password_hash: "$argon2id$fake".into(),
        rev: "1-abc".into(),
        created_at: 1_700_000_000_000,
        updated_at: 1_700_000_000_000,
        is_admin: false,
    }
}

fn token(key: &str, user: &User) -> Token {
    Token {
        key: key.into(),
        user_id: user.id.clone(),
        mark: "cairn_abcd...wxyz".into(),
        name: Some("t".into()),
        readonly: true,
        automation: false,
        cidr_whitelist: vec!["10.0.0.0/8".into()],
        created_at: 1_700_000_000_001,
        updated_at: 1_700_000_000_002,
        last_used_at: None,
    }
}

async fn users_round_trip(s: &dyn Store) {
    assert!(s.user_by_name("ann").await.unwrap().is_none());
    let mut u = user("ann");
    s.create_user(&u).await.unwrap();
    assert_eq!(s.user_by_name("ann").await.unwrap(), Some(u.clone()));
    u.email = None;
    u.password_hash = "$argon2id$other".into();
    u.rev = "2-def".into();
    u.updated_at += 5;
    s.update_user(&u).await.unwrap();
    assert_eq!(s.user_by_name("ann").await.unwrap(), Some(u));
    s.ping().await.unwrap();
}

async fn user_names_are_unique(s: &dyn Store) {
    s.create_user(&user("bo")).await.unwrap();
    match s.create_user(&user("bo")).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn tokens_round_trip(s: &dyn Store) {
    let u = user("cy");
    s.create_user(&u).await.unwrap();
    let t = token("k1", &u);
    s.create_token(&t).await.unwrap();
    let mut t2 = token("k2", &u);
    t2.cidr_whitelist = vec![];
    t2.readonly = false;
    t2.automation = true;
    t2.created_at += 10;
    s.create_token(&t2).await.unwrap();
    let (got, owner) = s.token_with_user("k1").await.unwrap().unwrap();
    assert_eq!(got, t);
    assert_eq!(owner, u);
    assert!(s.token_with_user("nope").await.unwrap().is_none());
    assert_eq!(s.tokens_for_user(&u.id).await.unwrap(), vec![t.clone(), t2]);
    assert!(matches!(s.create_token(&t).await, Err(StoreError::Conflict(_))));
}

async fn token_deletion_is_scoped_to_owner(s: &dyn Store) {
    let a = user("di");
    let b = user("ed");
    s.create_user(&a).await.unwrap();
    s.create_user(&b).await.unwrap();
    s.create_token(&token("ka", &a)).await.unwrap();
    assert!(!s.delete_token(&b.id, "ka").await.unwrap());
    assert!(s.token_with_user("ka").await.unwrap().is_some());
    assert!(s.delete_token(&a.id, "ka").await.unwrap());
    assert!(s.token_with_user("ka").await.unwrap().is_none());
    assert!(!s.delete_token(&a.id, "ka").await.unwrap());
}

async fn touch_tokens_keeps_the_latest(s: &dyn Store) {
    let u = user("flo");
    s.create_user(&u).await.unwrap();
    s.create_token(&token("kt", &u)).await.unwrap();
    s.touch_tokens(&[]).await.unwrap();
    s.touch_tokens(&[("kt".into(), 2000), ("missing".into(), 5)]).await.unwrap();
    assert_eq!(s.token_with_user("kt").await.unwrap().unwrap().0.last_used_at, Some(2000));
    s.touch_tokens(&[("kt".into(), 1000)]).await.unwrap();
    assert_eq!(s.token_with_user("kt").await.unwrap().unwrap().0.last_used_at, Some(2000), "never goes back");
    s.touch_tokens(&[("kt".into(), 3000)]).await.unwrap();
    assert_eq!(s.token_with_user("kt").await.unwrap().unwrap().0.last_used_at, Some(3000));
}

async fn migrations_are_idempotent(s: &dyn Store) {
    s.create_user(&user("gus")).await.unwrap();
    s.migrate().await.unwrap();
    s.migrate().await.unwrap();
    assert!(s.user_by_name("gus").await.unwrap().is_some());
}

fn version(v: &str) -> VersionRecord {
    VersionRecord {
        version: v.into(),
        manifest: format!("{{\"name\":\"pkg\",\"version\":\"{v}\"}}"),
        readme: None,
        tarball_key: format!("tarballs/pkg/pkg-{v}.tgz"),
        tarball_file: format!("pkg-{v}.tgz"),
        size: 10,
        integrity: "sha512-x".into(),
        publisher: Some("ann".into()),
        created_at: 1_700_000_000_000,
    }
}

fn tagged(v: &str, rev: &str, tags: &[&str]) -> NewVersion {
    NewVersion { tags: tags.iter().map(|t| t.to_string()).collect(), ..new_version(v, "ann", rev) }
}

fn new_version(v: &str, publisher: &str, rev: &str) -> NewVersion {
    NewVersion {
        package: "pkg".into(),
        version: version(v),
        tags: vec!["latest".into()],
        publisher: publisher.into(),
        publisher_is_admin: false,
        new_rev: rev.into(),
        description: Some("d".into()),
        keywords: None,
        sync_registry: None,
    }
}

async fn publish_and_change_packages(s: &dyn Store) {
    assert_eq!(s.publish(&new_version("1.0.0", "ann", "1-a")).await.unwrap(), PublishOutcome::Published);
    assert_eq!(s.publish(&new_version("1.0.0", "ann", "2-a")).await.unwrap(), PublishOutcome::VersionExists);
    assert_eq!(s.publish(&new_version("1.1.0", "bob", "2-b")).await.unwrap(), PublishOutcome::NotMaintainer);
    assert_eq!(s.publish(&new_version("1.1.0", "ann", "2-c")).await.unwrap(), PublishOutcome::Published);
    let p = s.package("pkg").await.unwrap().unwrap();
    assert_eq!(p.rev, "2-c");
    assert_eq!(p.versions.len(), 2);
    assert_eq!(p.tags, vec![("latest".to_string(), "1.1.0".to_string())]);
    assert_eq!(p.maintainers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), vec!["ann"]);
    assert_eq!(s.version_by_file("pkg", "pkg-1.0.0.tgz").await.unwrap().unwrap().version, "1.0.0");
    // The web UI's listings: packages with their version counts after a name, by recency from an offset.
    assert_eq!(s.package_version_counts("", 10).await.unwrap(), [("pkg".to_string(), 2)]);
    assert!(s.package_version_counts("pkg", 10).await.unwrap().is_empty());
    assert_eq!(s.recent_packages(0, 10).await.unwrap().iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["pkg"]);
    assert!(s.recent_packages(1, 10).await.unwrap().is_empty());
    // A stale rev changes nothing.
    let stale = PackageChange {
        expected_rev: Some("1-a".into()),
        new_rev: "3-x".into(),
        now: 1,
        remove_versions: vec!["1.0.0".into()],
        ..Default::default()
    };
    assert!(s.update_package("pkg", &stale).await.unwrap().is_none());
    let change = PackageChange {
        expected_rev: Some("2-c".into()),
        new_rev: "3-y".into(),
        now: 2,
        remove_versions: vec!["1.0.0".into()],
        maintainers: Some(vec!["ann".into(), "bob".into()]),
        ..Default::default()
    };
    let removed = s.update_package("pkg", &change).await.unwrap().unwrap();
    assert_eq!(removed.len(), 1);
    assert!(s.is_tombstoned("pkg", "1.0.0").await.unwrap());
    let p = s.package("pkg").await.unwrap().unwrap();
    assert_eq!((p.rev.as_str(), p.versions.len(), p.maintainers.len()), ("3-y", 1, 2));
    // Every write is in the changes feed, in order.
    let changes = s.changes_since(0, 100).await.unwrap();
    assert_eq!(
        changes.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(),
        vec!["PACKAGE_VERSION_ADDED", "PACKAGE_VERSION_ADDED", "PACKAGE_UPDATED"]
    );
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(s.changes_since(changes[1].seq, 100).await.unwrap().len(), 1);
    let (names, total) = s.search("pkg", 0, 10).await.unwrap();
    assert_eq!((names, total), (vec!["pkg".to_string()], 1));
    assert_eq!(s.delete_package("pkg", Some("3-y")).await.unwrap().unwrap().len(), 1);
    assert!(s.package("pkg").await.unwrap().is_none());
}

fn task(target: &str, data: &str, created_at: i64) -> Task {
    Task {
        id: uuid::Uuid::new_v4().simple().to_string(),
        kind: "package".into(),
        target: target.into(),
        state: "waiting".into(),
        priority: 0,
        data: data.into(),
        attempts: 0,
        error: None,
        author: None,
        claimed_by: None,
        run_after: 0,
        heartbeat_at: None,
        created_at,
        updated_at: created_at,
        finished_at: None,
    }
}

async fn task_queue_claims_merges_and_recovers(s: &dyn Store) {
    let concat = |a: &str, b: &str| format!("{a}+{b}");
    let first = s.enqueue_task(&task("a", "x", 1), &concat).await.unwrap();
    let merged = s.enqueue_task(&task("a", "y", 2), &concat).await.unwrap();
    assert_eq!(merged.id, first.id, "a waiting task of the same target is merged into");
    assert_eq!(merged.data, "x+y");
    let other = s.enqueue_task(&task("b", "z", 3), &concat).await.unwrap();
    let claimed = s.claim_task("w1", 10).await.unwrap().unwrap();
    assert_eq!((claimed.id.as_str(), claimed.state.as_str(), claimed.attempts), (first.id.as_str(), "processing", 1));
    // Once processing, a new request queues a new task.
    let again = s.enqueue_task(&task("a", "q", 4), &concat).await.unwrap();
    assert_ne!(again.id, first.id);
    let second = s.claim_task("w2", 10).await.unwrap().unwrap();
    assert_eq!(second.id, other.id);
    assert!(s.claim_task("w4", 10).await.unwrap().is_none(), "a task whose target runs waits for it");
    // A worker that stops sending heartbeats loses its task back to the queue (here merged into the newer one).
    s.heartbeat_task(&second.id, "w2", 100).await.unwrap();
    assert_eq!(s.recover_stale_tasks(50, 200).await.unwrap(), 1, "w1's task is stale, w2's is not");
    let a = s.task(&first.id).await.unwrap().unwrap();
    assert_eq!(a.state, "error", "a newer waiting task replaces it");
    s.finish_task(&second.id, "success", None, 300).await.unwrap();
    s.retry_task(&again.id, 10_000, "later", 300).await.unwrap();
    assert!(s.claim_task("w3", 400).await.unwrap().is_none(), "not before run_after");
    assert_eq!(s.claim_task("w3", 10_000).await.unwrap().unwrap().id, again.id);
    assert!(s.claim_task("w3", 20_000).await.unwrap().is_none());
}

fn tags_of(p: &cairn::store::PackageRecord) -> Vec<(&str, &str)> {
    p.tags.iter().map(|(t, v)| (t.as_str(), v.as_str())).collect()
}

/// Issue 8 item 2: a tag never names a missing version, and `latest` moves
/// (to the highest remaining, releases before prereleases) when its version goes.
async fn tags_always_name_existing_versions(s: &dyn Store) {
    s.publish(&tagged("1.0.0", "1-a", &["latest"])).await.unwrap();
    s.publish(&tagged("1.1.0", "2-a", &["latest", "stable"])).await.unwrap();
    s.publish(&tagged("2.0.0-beta.1", "3-a", &["beta"])).await.unwrap();
    let set_missing =
        PackageChange { new_rev: "4-a".into(), now: 1, set_tags: vec![("next".into(), "9.9.9".into())], ..Default::default() };
    assert!(matches!(s.update_package("pkg", &set_missing).await, Err(StoreError::Invalid(_))));
    let p = s.package("pkg").await.unwrap().unwrap();
    assert_eq!(p.rev, "3-a", "a refused change leaves everything as it was");
    // Removing 1.1.0: latest moves to 1.0.0 (not the prerelease), stable goes.
    let remove = PackageChange { new_rev: "4-b".into(), now: 2, remove_versions: vec!["1.1.0".into()], ..Default::default() };
    assert_eq!(s.update_package("pkg", &remove).await.unwrap().unwrap().len(), 1);
    let p = s.package("pkg").await.unwrap().unwrap();
    assert_eq!(tags_of(&p), vec![("latest", "1.0.0"), ("beta", "2.0.0-beta.1")]);
    // A tag set and a removal of its version in one change: refused as a whole.
    let both = PackageChange {
        new_rev: "5-a".into(),
        now: 3,
        remove_versions: vec!["1.0.0".into()],
        set_tags: vec![("old".into(), "1.0.0".into())],
        ..Default::default()
    };
    assert!(matches!(s.update_package("pkg", &both).await, Err(StoreError::Invalid(_))));
    assert_eq!(s.package("pkg").await.unwrap().unwrap().versions.len(), 2);
    // Only prereleases left: latest takes the highest of them.
    let remove = PackageChange { new_rev: "5-b".into(), now: 4, remove_versions: vec!["1.0.0".into()], ..Default::default() };
    s.update_package("pkg", &remove).await.unwrap().unwrap();
    let p = s.package("pkg").await.unwrap().unwrap();
    assert_eq!(tags_of(&p), vec![("latest", "2.0.0-beta.1"), ("beta", "2.0.0-beta.1")]);
    assert_eq!(cairn::store::highest_version(["1.0.0", "2.0.0-rc.1", "1.10.0", "1.9.0"].into_iter()), Some("1.10.0"));
}

/// Issue 8 item 17: `latest` first, the others by creation; moving keeps the place.
async fn tags_keep_creation_order(s: &dyn Store) {
    s.publish(&tagged("1.0.0", "1-a", &["latest", "zeta"])).await.unwrap();
    for (i, (tag, v)) in [("beta", "1.0.0"), ("alpha", "1.0.0"), ("zeta", "1.0.0")].iter().enumerate() {
        let c = PackageChange {
            new_rev: format!("{}-t", i + 2),
            now: 1,
            set_tags: vec![(tag.to_string(), v.to_string())],
            ..Default::default()
        };
        s.update_package("pkg", &c).await.unwrap().unwrap();
    }
    let p = s.package("pkg").await.unwrap().unwrap();
    assert_eq!(p.tags.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), ["latest", "zeta", "beta", "alpha"]);
}

/// Issue 8 item 1: publishes and tag moves on one package at once. On
/// PostgreSQL they took row locks in opposite orders and deadlocked.
async fn concurrent_package_writes_never_deadlock(s: &dyn Store) {
    s.publish(&tagged("1.0.0", "1-a", &["latest"])).await.unwrap();
    let publishes = (0..20).map(|i| async move { s.publish(&tagged(&format!("2.0.{i}"), &format!("p{i}"), &["latest", "next"])).await });
    let moves = (0..20).map(|i| async move {
        let c = PackageChange { new_rev: format!("t{i}"), now: i, set_tags: vec![("latest".into(), "1.0.0".into())], ..Default::default() };
        s.update_package("pkg", &c).await
    });
    let (published, moved) = tokio::join!(join_all(publishes), join_all(moves));
    for r in published {
        assert_eq!(r.unwrap(), PublishOutcome::Published);
    }
    for r in moved {
        assert!(r.unwrap().is_some());
    }
    assert_eq!(s.package("pkg").await.unwrap().unwrap().versions.len(), 21);
}

/// Polls the futures together on this task (the store's connections make them concurrent).
async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
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

/// Issue 8 item 3: a deprecation changes the manifest as stored when it runs.
async fn deprecations_apply_to_the_current_manifest(s: &dyn Store) {
    s.publish(&tagged("1.0.0", "1-a", &["latest"])).await.unwrap();
    let c = PackageChange {
        new_rev: "2-a".into(),
        now: 1,
        deprecations: vec![("1.0.0".into(), Some("old".into())), ("8.8.8".into(), Some("gone".into()))],
        ..Default::default()
    };
    s.update_package("pkg", &c).await.unwrap().unwrap();
    let p = s.package("pkg").await.unwrap().unwrap();
    let m: serde_json::Value = serde_json::from_str(&p.versions[0].manifest).unwrap();
    assert_eq!(m, serde_json::json!({"name": "pkg", "version": "1.0.0", "deprecated": "old"}));
    let c = PackageChange { new_rev: "3-a".into(), now: 2, deprecations: vec![("1.0.0".into(), None)], ..Default::default() };
    s.update_package("pkg", &c).await.unwrap().unwrap();
    let p = s.package("pkg").await.unwrap().unwrap();
    assert_eq!(p.versions[0].manifest, r#"{"name":"pkg","version":"1.0.0"}"#);
}

async fn referenced_blobs_are_found(s: &dyn Store) {
    s.publish(&tagged("1.0.0", "1-a", &["latest"])).await.unwrap();
    let proxied = cairn::store::ProxyTarball {
        name: "up".into(),
        file: "up-1.0.0.tgz".into(),
        version: "1.0.0".into(),
        blob_key: "proxy/up/up-1.0.0-ab.tgz".into(),
        size: 1,
        integrity: "sha512-x".into(),
        created_at: 1,
    };
    assert!(s.put_proxy_tarball(&proxied).await.unwrap());
    let keys: Vec<String> = ["tarballs/pkg/pkg-1.0.0.tgz", "tarballs/pkg/orphan.tgz", "proxy/up/up-1.0.0-ab.tgz", "proxy/x.tgz"]
        .iter()
        .map(|k| k.to_string())
        .collect();
    let mut found = s.referenced_blobs(&keys).await.unwrap();
    found.sort();
    assert_eq!(found, ["proxy/up/up-1.0.0-ab.tgz", "tarballs/pkg/pkg-1.0.0.tgz"]);
    let many: Vec<String> = (0..450).map(|i| format!("tarballs/none/{i}")).chain(keys).collect();
    assert_eq!(s.referenced_blobs(&many).await.unwrap().len(), 2, "more keys than one query takes");
}

fn binary_entry(parent: &str, name: &str, key: Option<&str>, at: i64) -> cairn::store::BinaryEntry {
    cairn::store::BinaryEntry {
        category: "node".into(),
        parent: parent.into(),
        name: name.into(),
        id: format!("id-{name}"),
        is_dir: name.ends_with('/'),
        size: if key.is_some() { 3 } else { 0 },
        date: "01-Jan-2024 10:00".into(),
        sha256: key.map(|_| "ab".repeat(32)),
        blob_key: key.map(str::to_string),
        created_at: at,
        updated_at: at,
    }
}

async fn binary_entries_round_trip(s: &dyn Store) {
    assert_eq!(s.put_binary_entry(&binary_entry("/", "v1.0.0/", None, 10)).await.unwrap(), None);
    assert_eq!(s.put_binary_entry(&binary_entry("/v1.0.0/", "a.tgz", Some("binaries/node/k1"), 20)).await.unwrap(), None);
    assert_eq!(s.put_binary_entry(&binary_entry("/v1.0.0/", "b.tgz", Some("binaries/node/k2"), 30)).await.unwrap(), None);
    // Replacing a file answers the blob key it no longer names, and keeps id and created_at.
    let mut newer = binary_entry("/v1.0.0/", "a.tgz", Some("binaries/node/k3"), 40);
    newer.id = "other".into();
    newer.created_at = 40;
    assert_eq!(s.put_binary_entry(&newer).await.unwrap().as_deref(), Some("binaries/node/k1"));
    let a = s.binary_entry("node", "/v1.0.0/", "a.tgz").await.unwrap().unwrap();
    assert_eq!((a.id.as_str(), a.created_at, a.updated_at, a.blob_key.as_deref()), ("id-a.tgz", 20, 40, Some("binaries/node/k3")));
    assert_eq!(s.put_binary_entry(&newer).await.unwrap(), None, "the same key is not answered as replaced");
    let all = s.binary_entries("node", "/v1.0.0/", None, 1000).await.unwrap();
    assert_eq!(all.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["a.tgz", "b.tgz"]);
    let since = s.binary_entries("node", "/v1.0.0/", Some(30), 1000).await.unwrap();
    assert_eq!(since.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["b.tgz", "a.tgz"], "oldest first");
    assert_eq!(s.binary_entries("node", "/v1.0.0/", Some(0), 1).await.unwrap().len(), 1);
    assert!(s.binary_entry("node", "/", "nope/").await.unwrap().is_none());
    assert!(s.binary_entries("other", "/", None, 10).await.unwrap().is_empty());
    // A row written below a directory moves the directory's `updated_at` (every level), never back.
    let dir = s.binary_entry("node", "/", "v1.0.0/").await.unwrap().unwrap();
    assert_eq!(dir.updated_at, 40, "moved by the files written below it");
    s.put_binary_entry(&binary_entry("/v1.0.0/", "docs/", None, 45)).await.unwrap();
    s.put_binary_entry(&binary_entry("/v1.0.0/docs/", "r.txt", Some("binaries/node/k4"), 50)).await.unwrap();
    assert_eq!(s.binary_entry("node", "/", "v1.0.0/").await.unwrap().unwrap().updated_at, 50);
    assert_eq!(s.binary_entry("node", "/v1.0.0/", "docs/").await.unwrap().unwrap().updated_at, 50);
    s.put_binary_entry(&binary_entry("/v1.0.0/", "old.txt", Some("binaries/node/k5"), 5)).await.unwrap();
    assert_eq!(s.binary_entry("node", "/", "v1.0.0/").await.unwrap().unwrap().updated_at, 50);
    let since = s.binary_entries("node", "/", Some(50), 10).await.unwrap();
    assert_eq!(since.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["v1.0.0/"]);
    let mut found = s.referenced_blobs(&["binaries/node/k1".into(), "binaries/node/k3".into()]).await.unwrap();
    found.sort();
    assert_eq!(found, ["binaries/node/k3"]);
}

/// Both backends signal committed changes (PostgreSQL by NOTIFY, SQLite by
/// its change log): a committed publish and a committed removal are each
/// signalled with the package's name, a refused publish (its transaction
/// rolled back) is not, and `Live` keeps coming while the feed works.
async fn committed_package_changes_are_signalled(s: &dyn Store) {
    let mut signals = s.change_signals().await.unwrap().expect("both backends signal changes");
    assert_eq!(changes_until_lives(&mut signals, 1).await, Vec::<String>::new(), "a new feed starts at the end");
    s.publish(&new_version("1.0.0", "ann", "1-a")).await.unwrap();
    wait_for_change(&mut signals, "pkg").await;
    assert_eq!(s.publish(&new_version("1.1.0", "bob", "2-b")).await.unwrap(), PublishOutcome::NotMaintainer);
    // A `Live` may have been on its way before the refused publish: wait for two.
    assert_eq!(changes_until_lives(&mut signals, 2).await, Vec::<String>::new(), "the refused publish sent nothing");
    s.delete_package("pkg", None).await.unwrap();
    wait_for_change(&mut signals, "pkg").await;
}

async fn next_signal(signals: &mut tokio::sync::mpsc::Receiver<ChangeSignal>) -> ChangeSignal {
    tokio::time::timeout(std::time::Duration::from_secs(5), signals.recv()).await.expect("a signal within 5 s").expect("open")
}

/// The names signalled until the `lives`-th `Live`.
async fn changes_until_lives(signals: &mut tokio::sync::mpsc::Receiver<ChangeSignal>, lives: usize) -> Vec<String> {
    let (mut names, mut seen) = (Vec::new(), 0);
    while seen < lives {
        match next_signal(signals).await {
            ChangeSignal::Package(name) => names.push(name),
            ChangeSignal::Live => seen += 1,
            ChangeSignal::Lost => panic!("no signal may be lost here"),
        }
    }
    names
}

/// Waits until `name` is signalled and then `Live` (SQLite's log has a row
/// per changed row: one write may signal a name several times); nothing else
/// may be signalled.
async fn wait_for_change(signals: &mut tokio::sync::mpsc::Receiver<ChangeSignal>, name: &str) {
    let mut found = false;
    loop {
        match next_signal(signals).await {
            ChangeSignal::Package(n) => {
                assert_eq!(n, name);
                found = true;
            }
            ChangeSignal::Live if found => return,
            ChangeSignal::Live => {}
            ChangeSignal::Lost => panic!("no signal may be lost here"),
        }
    }
}

fn hook(id: &str) -> cairn::store::hooks::Hook {
    cairn::store::hooks::Hook {
        id: id.into(),
        owner: "ann".into(),
        kind: "package".into(),
        name: "pkg".into(),
        endpoint: "http://127.0.0.1:9/".into(),
        secret: "s".into(),
        formatter: None,
        created_at: 1,
        updated_at: 1,
        delivered: false,
        last_delivery: None,
        response_code: None,
        status: "active".into(),
    }
}

/// Claims the next delivery as of `now`: the delivery and its hook's id; its
/// event is the one stored at the fan-out (see `payload_of`).
async fn claim(s: &dyn Store, now: i64) -> Option<(cairn::store::hooks::Delivery, String)> {
    s.claim_delivery(now, 60_000).await.unwrap().map(|(d, h, e)| {
        let e = e.expect("the delivery's event");
        assert_eq!((e.seq, e.event.as_str(), e.payload), (d.event_seq, d.event.as_str(), payload_of(d.event_seq)));
        assert_eq!(d.body, None, "a delivery holds no body");
        (d, h.id)
    })
}

/// The payload the tests fan event `seq` out with.
fn payload_of(seq: i64) -> String {
    format!(r#"{{"seq":{seq}}}"#)
}

/// The deliveries of `hook`: (event seq, state), oldest first.
async fn states(s: &dyn Store, hook: &str) -> Vec<(i64, String)> {
    let mut list: Vec<_> = s.deliveries(hook, 100).await.unwrap().into_iter().map(|d| (d.event_seq, d.state)).collect();
    list.reverse();
    list
}

/// Deliveries go out per hook in event order, one at a time; leases expire;
/// pruning deletes finished deliveries by age and beyond the newest N per
/// hook, in batches, and never a pending one; old outbox events go too.
async fn hook_deliveries_keep_order_and_are_pruned(s: &dyn Store) {
    use cairn::store::hooks::{Attempt, NewDelivery};
    let t0 = store::now_ms();
    assert!(s.create_hook(&hook("h1"), 20).await.unwrap());
    assert!(s.create_hook(&hook("h2"), 20).await.unwrap());
    for (i, v) in ["1.0.0", "1.1.0", "1.2.0", "1.3.0"].iter().enumerate() {
        s.publish(&new_version(v, "ann", &format!("{}-a", i + 1))).await.unwrap();
    }
    let events = s.hook_events(10).await.unwrap();
    assert_eq!(events.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(), ["package:publish"; 4]);
    for e in &events {
        let hooks = s.matching_hooks(&e.package, &e.owners).await.unwrap();
        let ds: Vec<_> = hooks.iter().map(|h| NewDelivery { id: format!("{}-{}", h.id, e.seq), hook_id: h.id.clone() }).collect();
        assert_eq!(ds.len(), 2);
        assert!(s.fan_out(e, &payload_of(e.seq), &ds, t0).await.unwrap());
        assert!(!s.fan_out(e, "{}", &ds, t0).await.unwrap(), "an event is fanned out once");
    }
    assert!(s.hook_events(10).await.unwrap().is_empty());
    let seq: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let done = |code| Attempt::Delivered { code };

    // The first event of each hook; nothing more while those are pending.
    let (a, b) = (claim(s, t0).await.unwrap(), claim(s, t0).await.unwrap());
    assert_eq!((a.0.event_seq, b.0.event_seq, a.0.attempts), (seq[0], seq[0], 1));
    assert_ne!(a.1, b.1);
    assert!(claim(s, t0).await.is_none(), "an older delivery to each hook is pending");
    s.finish_delivery(&a.0, &done(200), t0 + 1).await.unwrap();
    s.finish_delivery(&b.0, &done(200), t0 + 1).await.unwrap();
    let (a, b) = (claim(s, t0).await.unwrap(), claim(s, t0).await.unwrap());
    assert_eq!((a.0.event_seq, b.0.event_seq), (seq[1], seq[1]));
    let (h1s2, h2s2) = if a.1 == "h1" { (a.0, b.0) } else { (b.0, a.0) };
    s.finish_delivery(&h1s2, &done(200), t0 + 2).await.unwrap();
    // h1 goes on; h2's second delivery stays claimed (pending), so h2's later ones wait.
    let c = claim(s, t0).await.unwrap();
    assert_eq!((c.1.as_str(), c.0.event_seq), ("h1", seq[2]));
    assert!(claim(s, t0).await.is_none());
    s.finish_delivery(&c.0, &Attempt::Failed { code: Some(410), error: "the endpoint answered 410".into() }, t0 + 3).await.unwrap();
    let c = claim(s, t0).await.unwrap();
    assert_eq!((c.1.as_str(), c.0.event_seq), ("h1", seq[3]));
    s.finish_delivery(&c.0, &done(204), t0 + 4).await.unwrap();
    assert!(claim(s, t0).await.is_none());
    // An expired lease gives the delivery to the next claimer, counting the attempt.
    let again = claim(s, t0 + 60_001).await.unwrap();
    assert_eq!((again.0.id.as_str(), again.0.attempts), (h2s2.id.as_str(), 2));

    let pending = |n: usize| vec!["pending".to_string(); n];
    assert_eq!(
        states(s, "h1").await.iter().map(|(_, st)| st.as_str()).collect::<Vec<_>>(),
        ["delivered", "delivered", "failed", "delivered"]
    );
    assert_eq!(states(s, "h2").await.into_iter().map(|(_, st)| st).collect::<Vec<_>>()[1..], pending(3));
    // The web UI's overview: pending and failed deliveries per hook, by owner.
    let counts: Vec<_> = s.hook_overviews(None, 0, 10).await.unwrap().into_iter().map(|o| (o.hook.id, o.pending, o.failed)).collect();
    assert_eq!(counts, [("h1".to_string(), 0, 1), ("h2".to_string(), 3, 0)]);
    assert_eq!(s.hook_overviews(Some("ann"), 1, 10).await.unwrap().len(), 1);
    assert!(s.hook_overviews(Some("zed"), 0, 10).await.unwrap().is_empty());
    // By age: strictly before the cut-off.
    assert_eq!(s.prune_deliveries(t0 + 1, 100, 1000).await.unwrap(), 0);
    assert_eq!(s.prune_deliveries(t0 + 2, 100, 1000).await.unwrap(), 2, "the first delivery of each hook");
    assert_eq!(states(s, "h1").await, [(seq[1], "delivered".into()), (seq[2], "failed".into()), (seq[3], "delivered".into())]);
    assert_eq!(states(s, "h2").await.into_iter().map(|(_, st)| st).collect::<Vec<_>>(), pending(3));
    // Beyond the newest two finished ones of each hook (h2 has none finished).
    assert_eq!(s.prune_deliveries(t0, 2, 1000).await.unwrap(), 1);
    assert_eq!(states(s, "h1").await.iter().map(|(q, _)| *q).collect::<Vec<_>>(), [seq[2], seq[3]]);
    // In batches of `limit`; pending ones never.
    assert_eq!(s.prune_deliveries(t0 + 1_000_000, 0, 1).await.unwrap(), 1);
    assert_eq!(s.prune_deliveries(t0 + 1_000_000, 0, 1).await.unwrap(), 1);
    assert_eq!(s.prune_deliveries(t0 + 1_000_000, 0, 1).await.unwrap(), 0);
    assert!(states(s, "h1").await.is_empty());
    assert_eq!(states(s, "h2").await.iter().map(|(q, _)| *q).collect::<Vec<_>>(), seq[1..]);
    // A fanned-out event goes with the last delivery that refers to it.
    assert_eq!(s.prune_sent_events(10).await.unwrap(), 1, "the first event: both its deliveries are gone");
    assert_eq!(s.prune_sent_events(10).await.unwrap(), 0);
    // h2's queue still runs in order after the pruning.
    s.finish_delivery(&again.0, &done(200), t0 + 5).await.unwrap();
    let next = claim(s, t0 + 60_001).await.unwrap();
    assert_eq!((next.1.as_str(), next.0.event_seq), ("h2", seq[2]));

    // Outbox events no process fanned out: only those older than the cut-off.
    s.publish(&new_version("1.4.0", "ann", "5-a")).await.unwrap();
    assert_eq!(s.prune_hook_events(t0 - 1, 10).await.unwrap(), 0);
    assert_eq!(s.hook_events(10).await.unwrap().len(), 1);
    assert_eq!(s.prune_hook_events(store::now_ms() + 1, 10).await.unwrap(), 1);
    assert!(s.hook_events(10).await.unwrap().is_empty());
    // An event no hook matches keeps nothing; a deleted hook's events go with its deliveries.
    s.publish(&new_version("1.5.0", "ann", "6-a")).await.unwrap();
    let e = s.hook_events(10).await.unwrap().remove(0);
    assert!(s.fan_out(&e, &payload_of(e.seq), &[], t0).await.unwrap());
    assert!(s.delete_hook("h1").await.unwrap() && s.delete_hook("h2").await.unwrap());
    assert_eq!(s.prune_sent_events(1).await.unwrap(), 1, "in batches of `limit`");
    assert_eq!(s.prune_sent_events(10).await.unwrap(), 2);
    assert_eq!(s.prune_sent_events(10).await.unwrap(), 0);
}

/// A batch claim takes at most one delivery per hook (the oldest pending one)
/// and at most `limit`; a batch of attempt ends is recorded at once, on the
/// deliveries and their hooks.
async fn hook_deliveries_are_claimed_and_finished_in_batches(s: &dyn Store) {
    use cairn::store::hooks::{Attempt, NewDelivery};
    let t0 = store::now_ms();
    for id in ["h1", "h2", "h3"] {
        assert!(s.create_hook(&hook(id), 20).await.unwrap());
    }
    for (i, v) in ["1.0.0", "1.1.0"].iter().enumerate() {
        s.publish(&new_version(v, "ann", &format!("{}-a", i + 1))).await.unwrap();
    }
    let events = s.hook_events(10).await.unwrap();
    for e in &events {
        let ds: Vec<_> = ["h1", "h2", "h3"].iter().map(|h| NewDelivery { id: format!("{h}-{}", e.seq), hook_id: h.to_string() }).collect();
        assert!(s.fan_out(e, &payload_of(e.seq), &ds, t0).await.unwrap());
    }
    let seq: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let first = s.claim_deliveries(t0, 60_000, 10).await.unwrap();
    let mut claimed: Vec<_> = first.iter().map(|(d, h)| (h.id.as_str(), d.event_seq, d.attempts)).collect();
    claimed.sort();
    assert_eq!(claimed, [("h1", seq[0], 1), ("h2", seq[0], 1), ("h3", seq[0], 1)], "one per hook, the oldest");
    assert!(first.iter().all(|(d, h)| d.hook_id == h.id && h.secret == "s"));
    assert!(s.claim_deliveries(t0, 60_000, 10).await.unwrap().is_empty(), "each hook has a delivery in flight");
    let event = s.sent_event(seq[0]).await.unwrap().expect("the stored event");
    assert_eq!((event.event.as_str(), event.payload), ("package:publish", payload_of(seq[0])));

    let end = |hook: &str| match hook {
        "h1" => Attempt::Delivered { code: 200 },
        "h2" => Attempt::Retry { code: Some(503), error: "the endpoint answered 503".into(), run_after: t0 + 10_000 },
        _ => Attempt::Failed { code: Some(410), error: "the endpoint answered 410".into() },
    };
    let ends: Vec<_> = first.iter().map(|(d, h)| (d.clone(), end(&h.id))).collect();
    s.finish_deliveries(&ends, t0 + 1).await.unwrap();
    let h1 = s.hook("h1").await.unwrap().unwrap();
    let h3 = s.hook("h3").await.unwrap().unwrap();
    assert_eq!((h1.delivered, h1.response_code, h1.last_delivery), (true, Some(200), Some(t0 + 1)));
    assert_eq!((h3.delivered, h3.response_code), (false, Some(410)));
    assert_eq!(states(s, "h2").await, [(seq[0], "pending".into()), (seq[1], "pending".into())]);
    // h2 waits for its retry; the others go on with their next event, `limit` at most.
    let next = s.claim_deliveries(t0 + 2, 60_000, 1).await.unwrap();
    assert_eq!(next.iter().map(|(d, _)| d.event_seq).collect::<Vec<_>>(), [seq[1]]);
    let rest = s.claim_deliveries(t0 + 2, 60_000, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_ne!(rest[0].1.id, next[0].1.id);
    assert!(rest.iter().chain(&next).all(|(_, h)| h.id != "h2"));
    let retried = s.claim_deliveries(t0 + 10_000, 60_000, 10).await.unwrap();
    assert_eq!(retried.iter().map(|(d, h)| (h.id.as_str(), d.event_seq, d.attempts)).collect::<Vec<_>>(), [("h2", seq[0], 2)]);
    for id in ["h1", "h2", "h3"] {
        assert!(s.delete_hook(id).await.unwrap());
    }
}
