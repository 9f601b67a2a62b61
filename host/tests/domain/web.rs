//! npm's web login and browser sessions, in-process.

use cairn::domain::{sessions, web_login, Error};
use cairn::store::now_ms;

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
