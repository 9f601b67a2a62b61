//! `/-/user/...`, `/-/whoami`: registration, login, lookup, logout.

use cairn_e2e::{assert_error, both_backends, contains_bytes, Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::json;

both_backends!(register_then_login, login_errors, registration_closed, lookup_and_whoami, logout_revokes_token, secrets_are_not_stored_in_clear);

async fn register_then_login(backend: Backend) {
    let s = Server::start(backend).await;
    let (status, body) = s.login("alice", "password123", Some("alice@example.com")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["ok"], json!(true));
    assert_eq!(body["id"], json!("org.couchdb.user:alice"));
    let rev = body["rev"].as_str().unwrap().to_string();
    assert!(rev.starts_with("1-"), "{rev}");
    let first = body["token"].as_str().unwrap().to_string();

    // Login (no email, as `npm login` sends it) issues a fresh token; the rev is stable.
    let (status, body) = s.login("alice", "password123", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["rev"], json!(rev));
    let second = body["token"].as_str().unwrap();
    assert_ne!(first, second);
    for t in [first.as_str(), second] {
        let (status, body) = s.get("/-/whoami", Some(t)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"username": "alice"}));
    }
    // Same email (any case) is fine too.
    let (status, _) = s.login("alice", "password123", Some("ALICE@example.com")).await;
    assert_eq!(status, StatusCode::CREATED);
    // Logging in with an unknown name creates no account: registering needs an email.
    let (status, body) = s.login("noemail", "password123", None).await;
    assert_error(status, &body, 404);
    let (status, _) = s.get("/-/user/org.couchdb.user:noemail", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn login_errors(backend: Backend) {
    let s = Server::start(backend).await;
    s.add_user("bob", "password123").await;

    let (status, body) = s.login("bob", "wrong-password", None).await;
    assert_error(status, &body, 401);
    let (status, body) = s.login("bob", "password123", Some("other@example.com")).await;
    assert_error(status, &body, 409);

    let put = |path: String, body: serde_json::Value| {
        let s = &s;
        async move { s.call(Method::PUT, &path, None, Some(&body)).await }
    };
    let good = |name: &str| json!({"_id": format!("org.couchdb.user:{name}"), "name": name, "password": "password123", "type": "user", "email": "x@example.com"});

    // Name in the URL differs from the body.
    let (status, body) = put("/-/user/org.couchdb.user:carol".into(), good("dave")).await;
    assert_error(status, &body, 422);
    // Wrong _id, wrong or missing type.
    let mut b = good("carol");
    b["_id"] = json!("org.couchdb.user:someone");
    let (status, body) = put("/-/user/org.couchdb.user:carol".into(), b).await;
    assert_error(status, &body, 422);
    let mut b = good("carol");
    b["type"] = json!("admin");
    let (status, body) = put("/-/user/org.couchdb.user:carol".into(), b).await;
    assert_error(status, &body, 422);
    let mut b = good("carol");
    b.as_object_mut().unwrap().remove("type");
    let (status, body) = put("/-/user/org.couchdb.user:carol".into(), b).await;
    assert_error(status, &body, 422);
    // Password length 8..=100.
    for pw in ["short", &"p".repeat(101)] {
        let mut b = good("carol");
        b["password"] = json!(pw);
        let (status, body) = put("/-/user/org.couchdb.user:carol".into(), b).await;
        assert_error(status, &body, 422);
    }
    // Name rules: 1..=100 chars, npm's user-name rules.
    for name in ["Carol", ".carol", "car ol", &"c".repeat(101)] {
        let path = format!("/-/user/org.couchdb.user:{}", name.replace(' ', "%20"));
        let (status, body) = put(path, good(name)).await;
        assert_error(status, &body, 422);
    }
    // Email validated when present.
    let mut b = good("carol");
    b["email"] = json!("not-an-email");
    let (status, body) = put("/-/user/org.couchdb.user:carol".into(), b).await;
    assert_error(status, &body, 422);
    // Wrong JSON types are 422, malformed JSON 400, no body 400.
    let mut b = good("carol");
    b["password"] = json!(12345678);
    let (status, body) = put("/-/user/org.couchdb.user:carol".into(), b).await;
    assert_error(status, &body, 422);
    let resp = s.client.put(s.url("/-/user/org.couchdb.user:carol")).body("{not json").send().await.unwrap();
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_error(status, &body, 400);
    let (status, body) = s.call(Method::PUT, "/-/user/org.couchdb.user:carol", None, None).await;
    assert_error(status, &body, 400);
    // The URL must name a couchdb user document.
    let (status, body) = put("/-/user/carol".into(), good("carol")).await;
    assert_error(status, &body, 404);
    // Nothing above created carol.
    let (status, _) = s.get("/-/user/org.couchdb.user:carol", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn registration_closed(backend: Backend) {
    let s = Server::start_with(ServerOptions::new(backend).auth("allow_public_registration = false")).await;
    let (status, body) = s.login("mallory", "password123", Some("m@example.com")).await;
    assert_error(status, &body, 403);
    // Names in auth.admins may still register and log in.
    let (status, body) = s.login("admin", "password123", Some("admin@example.com")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = s.login("admin", "password123", None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = s.get("/-/user/org.couchdb.user:mallory", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn lookup_and_whoami(backend: Backend) {
    let s = Server::start(backend).await;
    let token = s.add_user("erin", "password123").await;
    // Anonymous callers see the name, not the email.
    let (status, body) = s.get("/-/user/org.couchdb.user:erin", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], json!("erin"));
    assert_eq!(body["_id"], json!("org.couchdb.user:erin"));
    assert!(body.get("email").is_none(), "{body}");
    assert!(body.get("password").is_none() && body.get("password_hash").is_none());
    // Authenticated callers (npm owner add) see the email.
    let (status, body) = s.get("/-/user/org.couchdb.user:erin", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["email"], json!("erin@example.com"));
    let (status, body) = s.get("/-/user/org.couchdb.user:nobody", None).await;
    assert_error(status, &body, 404);

    let (status, body) = s.get("/-/whoami", None).await;
    assert_error(status, &body, 401);
    let (status, body) = s.get("/-/whoami", Some("cairn_0000000000000000000000000000000000000000000000000000000000000000")).await;
    assert_error(status, &body, 401);
    let resp = s.client.get(s.url("/-/whoami")).basic_auth("erin", Some("password123")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = s.get("/-/whoami", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["username"], json!("erin"));
}

async fn logout_revokes_token(backend: Backend) {
    let s = Server::start(backend).await;
    let token = s.add_user("frank", "password123").await;
    let other = s.add_user("grace", "password123").await;
    // A user cannot log out somebody else's token.
    let (status, body) = s.call(Method::DELETE, &format!("/-/user/token/{other}"), Some(&token), None).await;
    assert_error(status, &body, 404);
    let (status, body) = s.call(Method::DELETE, &format!("/-/user/token/{token}"), None, None).await;
    assert_error(status, &body, 401);
    let (status, body) = s.call(Method::DELETE, &format!("/-/user/token/{token}"), Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"ok": true}));
    let (status, body) = s.get("/-/whoami", Some(&token)).await;
    assert_error(status, &body, 401);
    let (status, _) = s.get("/-/whoami", Some(&other)).await;
    assert_eq!(status, StatusCode::OK);
}

async fn secrets_are_not_stored_in_clear(backend: Backend) {
    let s = Server::start(backend).await;
    let password = "hunter2-very-secret-pw";
    let (status, body) = s.login("heidi", password, Some("heidi@example.com")).await;
    assert_eq!(status, StatusCode::CREATED);
    let login_token = body["token"].as_str().unwrap().to_string();
    let (status, body) = s
        .call(Method::POST, "/-/npm/v1/tokens", Some(&login_token), Some(&json!({"password": password, "readonly": true})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let api_token = body["token"].as_str().unwrap().to_string();
    // Use them so that last-use times are written too.
    s.get("/-/whoami", Some(&login_token)).await;
    s.get("/-/whoami", Some(&api_token)).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let stored = s.stored_bytes().await;
    assert!(contains_bytes(&stored, b"heidi"), "the dump should see the user at all");
    for secret in [password, login_token.as_str(), api_token.as_str(), &login_token["cairn_".len()..]] {
        assert!(!contains_bytes(&stored, secret.as_bytes()), "secret {secret:?} found in storage");
    }
    assert!(!s.log().contains(&login_token) && !s.log().contains(password), "secret in the log");
}
