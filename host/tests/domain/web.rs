//! npm's web login, browser sessions and the home page's listings, in-process.

use cairn::domain::reads::Reader;
use cairn::domain::{search, sessions, web_login, web_pages, Error};
use cairn::store::now_ms;
use futures_util::StreamExt;

use crate::harness::TestApp;

/// A login is pending until approved, then answers one token, once; the
/// loginUrl secret is not the doneUrl's.
#[tokio::test]
async fn a_web_login_answers_its_token_once() {
    let t = TestApp::new().await;
    t.user("alice").await;
    let user = t.app.store.user_by_name("alice").await.unwrap().unwrap();
    let started = web_login::start(&t.app, Some("box\u{7}")).await.unwrap();
    assert_ne!(started.login_id, started.done_id);
    assert_eq!(web_login::pending(&t.app, &started.login_id).await.unwrap().hostname.as_deref(), Some("box"));
    assert!(matches!(web_login::poll(&t.app, &started.done_id).await, Ok(web_login::Done::Pending)));
    // The loginUrl's secret does not open the doneUrl, nor the reverse.
    assert!(matches!(web_login::poll(&t.app, &started.login_id).await, Err(Error::NotFound(_))));
    assert!(matches!(web_login::approve(&t.app, &started.done_id, &user).await, Err(Error::NotFound(_))));

    web_login::approve(&t.app, &started.login_id, &user).await.unwrap();
    assert!(matches!(web_login::approve(&t.app, &started.login_id, &user).await, Err(Error::NotFound(_))), "approved once");
    let Ok(web_login::Done::Token(token)) = web_login::poll(&t.app, &started.done_id).await else { panic!("no token") };
    let (stored, owner) = t.app.store.token_with_user(&cairn::domain::tokens::key_of(&token)).await.unwrap().expect("a stored token");
    assert_eq!((owner.name.as_str(), stored.name.as_deref()), ("alice", Some("web login")));
    assert!(matches!(web_login::poll(&t.app, &started.done_id).await, Err(Error::NotFound(_))), "single use");
}

/// A session names its user until it ends; its CSRF token is stable and its own.
#[tokio::test]
async fn sessions_end_and_have_their_own_csrf_token() {
    let t = TestApp::new().await;
    t.user("bob").await;
    let user = t.app.store.user_by_name("bob").await.unwrap().unwrap();
    let ip = "127.0.0.1".parse().unwrap();
    let raw = sessions::create(&t.app, &user).await.unwrap();
    let other = sessions::create(&t.app, &user).await.unwrap();
    assert_eq!(sessions::identity(&t.app, &raw, ip).await.unwrap().map(|i| i.name), Some("bob".into()));
    assert_eq!(sessions::csrf_token(&raw), sessions::csrf_token(&raw));
    assert_ne!(sessions::csrf_token(&raw), sessions::csrf_token(&other));
    assert!(sessions::identity(&t.app, &"0".repeat(64), ip).await.unwrap().is_none());
    sessions::end(&t.app, &raw).await.unwrap();
    assert!(sessions::identity(&t.app, &raw, ip).await.unwrap().is_none());
    assert!(sessions::identity(&t.app, &other, ip).await.unwrap().is_some(), "ending one session leaves the others");
    // Expired sessions are gone.
    t.app.store.purge_web(now_ms() + sessions::TTL_MS + 1).await.unwrap();
    assert!(sessions::identity(&t.app, &other, ip).await.unwrap().is_none());
}

/// The scope-policy plugin, with `@alice` hidden from anonymous readers.
fn private_alice_scope() -> String {
    format!(
        "[[plugins]]\nname = \"scopes\"\nkind = \"auth-policy\"\npath = {:?}\n[plugins.config]\nprivate_scopes = [\"@alice\"]\n",
        cairn_e2e::plugin("scope_policy").display().to_string()
    )
}

/// The home page's counts and recent packages hold only what the reader may
/// read: a private scope (scope-policy's `private_scopes`) is left out for
/// anonymous readers, even when its packages are all the newest, and counted
/// for signed-in readers and admins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_counts_only_what_the_reader_may_read() {
    let t = TestApp::with_toml(&private_alice_scope()).await;
    let alice = t.user("alice").await;
    let mut root = t.user("root").await;
    root.is_admin = true;
    t.publish(&alice, "public-one", "1.0.0").await.unwrap();
    t.publish(&alice, "public-one", "1.1.0").await.unwrap();
    // Newer than public-one, and more than one window of the recent list.
    for i in 0..20 {
        t.publish(&alice, &format!("@alice/p{i:02}"), "1.0.0").await.unwrap();
    }
    let ip = "127.0.0.1".parse().unwrap();
    let names = |h: &web_pages::Home| h.recent.iter().map(|p| p.name.clone()).collect::<Vec<_>>();

    let anon = web_pages::home(&t.app, Reader::new(None, ip), 2).await.unwrap();
    assert_eq!((anon.packages, anon.versions, anon.complete), (1, 2, true));
    assert_eq!(names(&anon), ["public-one"]);
    for reader in [&alice, &root] {
        let home = web_pages::home(&t.app, Reader::new(Some(reader), ip), 2).await.unwrap();
        assert_eq!((home.packages, home.versions, home.complete), (21, 22, true), "{}", reader.name);
        assert_eq!(home.recent.len(), 2);
        assert!(home.recent.iter().all(|p| p.name.starts_with("@alice/")), "{:?}", names(&home));
    }
}

/// Without a read policy the counts are the store's.
#[tokio::test]
async fn home_counts_everything_without_a_policy() {
    let t = TestApp::new().await;
    let alice = t.user("alice").await;
    t.publish(&alice, "one", "1.0.0").await.unwrap();
    t.publish(&alice, "one", "1.0.1").await.unwrap();
    t.publish(&alice, "two", "1.0.0").await.unwrap();
    let home = web_pages::home(&t.app, Reader::new(None, "127.0.0.1".parse().unwrap()), 12).await.unwrap();
    assert_eq!((home.packages, home.versions, home.complete), (2, 3, true));
    let mut recent: Vec<&str> = home.recent.iter().map(|p| p.name.as_str()).collect();
    recent.sort_unstable();
    assert_eq!(recent, ["one", "two"]);
}

/// Past the matches it counts exactly, search gives the readable matches it
/// looked at as a lower bound (`more`), never an estimate from the unfiltered
/// count (which would count a private scope's matches).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_totals_never_count_unreadable_matches() {
    let t = TestApp::with_toml(&private_alice_scope()).await;
    let alice = t.user("alice").await;
    // The private matches are the oldest: the search looks at them last.
    for i in 0..5 {
        t.publish(&alice, &format!("@alice/match-{i}"), "1.0.0").await.unwrap();
    }
    let names: Vec<String> = (0..1_000).map(|i| format!("match-{i:04}")).collect();
    let published: Vec<_> =
        futures_util::stream::iter(names.iter().map(|n| t.publish(&alice, n, "1.0.0"))).buffer_unordered(8).collect().await;
    assert!(published.iter().all(Result::is_ok));
    let ip = "127.0.0.1".parse().unwrap();
    let page = search::search(&t.app, Reader::new(None, ip), "match-", 0, 20).await.unwrap();
    assert_eq!(page.local.len(), 20);
    assert_eq!((page.total, page.more), (1_000, true), "the readable matches looked at, not 1,005");
}
