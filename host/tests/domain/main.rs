//! Domain rules, tested in-process: an `App` on a temporary SQLite database,
//! built by `server::build_app` as the binary builds it, and the domain
//! functions called directly (no HTTP, no binary spawned, no PostgreSQL).
//! Each test takes milliseconds; the end-to-end suite in `tests/` checks the
//! same rules over the wire.

mod harness;
mod hooks;
mod web;

use cairn::domain::{auth, packages, Error};
use serde_json::json;

use harness::TestApp;

/// A whole-document write with a stale rev (`PUT /:name/-rev/:rev` from a
/// client that does not say which versions it saw) is a conflict.
#[tokio::test]
async fn a_stale_rev_on_a_document_update_is_a_conflict() {
    let t = TestApp::new().await;
    let alice = t.user("alice").await;
    let first = t.publish(&alice, "stale-doc", "1.0.0").await.unwrap();
    t.publish(&alice, "stale-doc", "1.1.0").await.unwrap();
    let doc = json!({"name": "stale-doc", "_rev": first.rev, "versions": {"1.0.0": {}, "1.1.0": {}}});
    let err = packages::update(&t.app, &alice, "stale-doc", Some(&first.rev), &doc).await.err();
    assert!(matches!(err, Some(Error::Conflict(_))), "{err:?}");
}

/// An owner change is only applied on the document read last: even when the
/// client says which versions it saw, stale maintainers are a conflict.
#[tokio::test]
async fn a_stale_owner_change_is_a_conflict() {
    let t = TestApp::new().await;
    let alice = t.user("alice").await;
    t.user("bob").await;
    let first = t.publish(&alice, "stale-owner", "1.0.0").await.unwrap();
    t.publish(&alice, "stale-owner", "1.1.0").await.unwrap();
    let doc = json!({
        "name": "stale-owner",
        "_rev": first.rev,
        "time": {"1.0.0": "2020-01-01T00:00:00.000Z"},
        "maintainers": [{"name": "alice"}, {"name": "bob"}],
    });
    let err = packages::update(&t.app, &alice, "stale-owner", Some(&first.rev), &doc).await.err();
    assert!(matches!(err, Some(Error::Conflict(_))), "{err:?}");
    assert_eq!(packages::maintainers(&t.app, "stale-owner").await.unwrap(), ["alice"]);
}

/// `DELETE /:name/-rev/:rev` with a stale rev is a conflict and removes nothing.
#[tokio::test]
async fn a_stale_rev_on_unpublish_is_a_conflict() {
    let t = TestApp::new().await;
    let alice = t.user("alice").await;
    let first = t.publish(&alice, "stale-delete", "1.0.0").await.unwrap();
    let second = t.publish(&alice, "stale-delete", "1.1.0").await.unwrap();
    let err = packages::unpublish_package(&t.app, &alice, "stale-delete", &first.rev).await.err();
    assert!(matches!(err, Some(Error::Conflict(_))), "{err:?}");
    assert_eq!(t.versions("stale-delete").await, ["1.0.0", "1.1.0"]);
    packages::unpublish_package(&t.app, &alice, "stale-delete", &second.rev).await.unwrap();
    assert!(t.app.store.package("stale-delete").await.unwrap().is_none());
}

#[tokio::test]
async fn a_tag_cannot_name_a_missing_version() {
    let t = TestApp::new().await;
    let alice = t.user("alice").await;
    t.publish(&alice, "tagged", "1.0.0").await.unwrap();
    let err = packages::set_dist_tag(&t.app, &alice, "tagged", "next", "9.9.9").await.err();
    assert!(matches!(err, Some(Error::Invalid(_))), "{err:?}");
    packages::set_dist_tag(&t.app, &alice, "tagged", "next", "1.0.0").await.unwrap();
    let tags = packages::dist_tags(&t.app, "tagged").await.unwrap();
    assert_eq!(tags, [("latest".to_string(), "1.0.0".to_string()), ("next".to_string(), "1.0.0".to_string())]);
}

/// Unpublishing the version `latest` names moves `latest` to the highest
/// remaining version (not the one published last).
#[tokio::test]
async fn unpublishing_latest_moves_it_to_the_highest_remaining_version() {
    let t = TestApp::new().await;
    let alice = t.user("alice").await;
    t.publish(&alice, "moving", "1.0.0").await.unwrap();
    t.publish(&alice, "moving", "2.0.0").await.unwrap();
    t.publish_tagged(&alice, "moving", "1.5.0", "beta").await.unwrap();
    t.publish_tagged(&alice, "moving", "1.2.0", "old").await.unwrap();
    assert_eq!(t.tag("moving", "latest").await.as_deref(), Some("2.0.0"));
    let rev = t.app.store.package("moving").await.unwrap().unwrap().rev;
    packages::delete_tarball(&t.app, &alice, "moving", "moving-2.0.0.tgz", &rev).await.unwrap();
    assert_eq!(t.versions("moving").await, ["1.0.0", "1.5.0", "1.2.0"]);
    assert_eq!(t.tag("moving", "latest").await.as_deref(), Some("1.5.0"));
}

#[tokio::test]
async fn a_version_cannot_be_published_twice() {
    let t = TestApp::new().await;
    let alice = t.user("alice").await;
    t.publish(&alice, "once", "1.0.0").await.unwrap();
    let err = t.publish(&alice, "once", "1.0.0").await.err();
    assert!(matches!(err, Some(Error::Forbidden(_))), "{err:?}");
    // Nor after it was unpublished: the version number is never reused.
    t.publish(&alice, "once", "1.0.1").await.unwrap();
    let rev = t.app.store.package("once").await.unwrap().unwrap().rev;
    packages::delete_tarball(&t.app, &alice, "once", "once-1.0.0.tgz", &rev).await.unwrap();
    let err = t.publish(&alice, "once", "1.0.0").await.err();
    assert!(matches!(err, Some(Error::Forbidden(_))), "{err:?}");
}

#[tokio::test]
async fn a_new_package_under_another_users_scope_is_forbidden() {
    let t = TestApp::new().await;
    let alice = t.user("alice").await;
    t.user("bob").await;
    let err = t.publish(&alice, "@bob/thing", "1.0.0").await.err();
    assert!(matches!(err, Some(Error::Forbidden(_))), "{err:?}");
    assert!(t.app.store.package("@bob/thing").await.unwrap().is_none());
    t.publish(&alice, "@alice/thing", "1.0.0").await.unwrap();
}

#[tokio::test]
async fn a_node_core_module_name_is_invalid_for_a_new_package() {
    let t = TestApp::new().await;
    let alice = t.user("alice").await;
    let err = t.publish(&alice, "fs", "1.0.0").await.err();
    assert!(matches!(err, Some(Error::Invalid(_))), "{err:?}");
    assert!(t.app.store.package("fs").await.unwrap().is_none());
}

/// Readonly tokens never write: the rule `http::prepare_and_route` applies
/// to every write before routing.
#[tokio::test]
async fn a_readonly_identity_cannot_write() {
    let t = TestApp::new().await;
    let alice = t.user("alice").await;
    auth::check_write(Some(&alice)).unwrap();
    auth::check_write(None).unwrap();
    let readonly = cairn::domain::Identity { readonly: true, ..alice };
    let err = auth::check_write(Some(&readonly)).err();
    assert!(matches!(err, Some(Error::Forbidden(_))), "{err:?}");
}

/// A plain binary directory listing is the whole directory, as a dist site's
/// index is (a mirror of a directory with over 1,000 entries must see them
/// all); `since` listings and an explicit `limit` page at most 1,000.
#[tokio::test]
async fn a_plain_binary_listing_is_the_whole_directory() {
    use cairn::domain::binaries::{self, Lookup};
    use cairn::store::BinaryEntry;
    let t = TestApp::with_toml("[[binaries]]\ncategory = \"big\"\ntype = \"node\"\ndist_url = \"http://127.0.0.1:9/dist/\"\n").await;
    for i in 0..1005 {
        let entry = BinaryEntry {
            category: "big".into(),
            parent: "/".into(),
            name: format!("f{i:04}.bin"),
            id: String::new(),
            is_dir: false,
            size: 1,
            date: "2026-11-30T00:00:00Z".into(),
            sha256: None,
            blob_key: Some(format!("binaries/big/f{i}")),
            created_at: 1,
            updated_at: 1 + i,
        };
        t.app.store.put_binary_entry(&entry).await.unwrap();
    }
    let count = |found: Lookup| match found {
        Lookup::Dir { entries, .. } => entries.len(),
        Lookup::File(_) => panic!("a directory"),
    };
    assert_eq!(count(binaries::lookup(&t.app, "big", &[], None, None).await.unwrap()), 1005);
    assert_eq!(count(binaries::lookup(&t.app, "big", &[], None, Some(10)).await.unwrap()), 10);
    assert_eq!(count(binaries::lookup(&t.app, "big", &[], Some(0), None).await.unwrap()), 1000);
    assert_eq!(count(binaries::lookup(&t.app, "big", &[], Some(1000), None).await.unwrap()), 6, "updated_at 1000..=1005");
}
