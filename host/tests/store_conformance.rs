//! The storage conformance suite: one set of checks of the [`Store`] contract,
//! run against SQLite and PostgreSQL alike.

use std::sync::Arc;

use cairn::store::{self, Store, StoreError, Token, User};
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

conformance!(users_round_trip, user_names_are_unique, tokens_round_trip, token_deletion_is_scoped_to_owner, touch_tokens_keeps_the_latest, migrations_are_idempotent);

fn user(name: &str) -> User {
    User {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.into(),
        email: Some(format!("{name}@example.com")),
        password_hash: "$argon2id$fake".into(),
        rev: "1-abc".into(),
        created_at: 1_700_000_000_000,
        updated_at: 1_700_000_000_000,
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
