//! `/-/user/...`, `/-/whoami`: registration, login, lookup, logout.

use cairn_e2e::publish::{publish_ok, publish_with};
use cairn_e2e::{assert_error, both_backends, contains_bytes, Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::json;

both_backends!(
    register_then_login,
    login_errors,
    registration_closed,
    admin_names_cannot_be_claimed,
    lookup_and_whoami,
    logout_revokes_token,
    secrets_are_not_stored_in_clear,
    failed_logins_are_limited,
    scopes_belong_to_their_users,
    new_package_names_follow_npm,
);

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
    let s = Server::start_with(ServerOptions::new(backend).auth("allow_public_registration = false\nadmins = [\"root\"]")).await;
    let (status, body) = s.login("mallory", "password123", Some("m@example.com")).await;
    assert_error(status, &body, 403);
    // Names in auth.admins cannot register either: the operator creates them.
    let (status, body) = s.login("root", "password123", Some("root@example.com")).await;
    assert_error(status, &body, 403);
    assert!(body["reason"].as_str().unwrap().contains("cairn user create root --admin"), "{body}");
    for name in ["mallory", "root"] {
        let (status, _) = s.get(&format!("/-/user/org.couchdb.user:{name}"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

/// Issue 8 #5: nobody becomes admin by registering first.
async fn admin_names_cannot_be_claimed(backend: Backend) {
    // Default configuration: no admin name; whoever registers `admin` is a plain user.
    let s = Server::start(backend).await;
    let squatter = s.add_user("admin", "password123").await;
    let (status, body) = s.get("/-/admin/plugins", Some(&squatter)).await;
    assert_error(status, &body, 403);

    // A listed name that does not exist yet cannot be claimed, even with registration open.
    let s = Server::start_with(ServerOptions::new(backend).auth("admins = [\"root\"]")).await;
    let (status, body) = s.login("root", "password123", Some("root@example.com")).await;
    assert_error(status, &body, 403);
    // The operator makes admins with the CLI; they log in over HTTP.
    let ops = s.add_admin("ops", "password123").await;
    let (status, body) = s.get("/-/admin/plugins", Some(&ops)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Compatibility: an existing account named in `admins` is admin.
    let out = s.cli(&["user", "create", "root", "--password-stdin"], "password123\n").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, body) = s.login("root", "password123", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = s.get("/-/admin/plugins", Some(body["token"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let plain = s.add_user("plain", "password123").await;
    let (status, body) = s.get("/-/admin/plugins", Some(&plain)).await;
    assert_error(status, &body, 403);
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
    // The user herself and admins see the email; other users do not (issue 8 #11).
    let (status, body) = s.get("/-/user/org.couchdb.user:erin", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["email"], json!("erin@example.com"));
    let other = s.add_user("mallory", "password123").await;
    let (status, body) = s.get("/-/user/org.couchdb.user:erin", Some(&other)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("email").is_none(), "another user sees erin's email: {body}");
    let admin = s.add_admin("admin", "password123").await;
    let (_, body) = s.get("/-/user/org.couchdb.user:erin", Some(&admin)).await;
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
    // Whoever presents a raw token may revoke it (it could be used anyway): a
    // leaked token does not stay valid because the finder is someone else.
    let (status, body) = s.call(Method::DELETE, &format!("/-/user/token/{other}"), Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s.get("/-/whoami", Some(&other)).await;
    assert_error(status, &body, 401);
    // Revoking it again: a clear 404.
    let (status, body) = s.call(Method::DELETE, &format!("/-/user/token/{other}"), Some(&token), None).await;
    assert_error(status, &body, 404);
    let (status, body) = s.call(Method::DELETE, &format!("/-/user/token/{token}"), None, None).await;
    assert_error(status, &body, 401);
    let (status, body) = s.call(Method::DELETE, &format!("/-/user/token/{token}"), Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"ok": true}));
    let (status, body) = s.get("/-/whoami", Some(&token)).await;
    assert_error(status, &body, 401);
    // The request log has the requests, never the tokens in their paths (issue 8 #6).
    let log = s.log();
    assert!(log.contains("/-/user/token/***"), "the revokes are not logged: {log}");
    for t in [&token, &other] {
        assert!(!log.contains(t.as_str()) && !log.contains(&t["cairn_".len()..]), "a raw token is in the log:\n{log}");
    }
}

async fn secrets_are_not_stored_in_clear(backend: Backend) {
    let s = Server::start(backend).await;
    let password = "hunter2-very-secret-pw";
    let (status, body) = s.login("heidi", password, Some("heidi@example.com")).await;
    assert_eq!(status, StatusCode::CREATED);
    let login_token = body["token"].as_str().unwrap().to_string();
    let (status, body) =
        s.call(Method::POST, "/-/npm/v1/tokens", Some(&login_token), Some(&json!({"password": password, "readonly": true}))).await;
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

/// Issue 8 #9: wrong passwords are limited per account and per address, with
/// 429 and Retry-After; tokens keep working.
async fn failed_logins_are_limited(backend: Backend) {
    let opts = ServerOptions::new(backend).auth("login_max_failures = 3\nlogin_max_failures_per_ip = 6\nlogin_window_secs = 120");
    let s = Server::start_with(opts).await;
    let token = s.add_user("victim", "password123").await;
    s.add_user("other", "password123").await;
    for _ in 0..3 {
        let (status, body) = s.login("victim", "wrong-password", None).await;
        assert_error(status, &body, 401);
    }
    // Locked: even the right password is refused until the lockout ends.
    let resp = s
        .client
        .put(s.url("/-/user/org.couchdb.user:victim"))
        .json(&json!({"_id": "org.couchdb.user:victim", "name": "victim", "password": "password123", "type": "user"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=120).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_error(StatusCode::TOO_MANY_REQUESTS, &body, 429);
    // Token-based access is untouched.
    let (status, body) = s.get("/-/whoami", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Another account still logs in, until the address itself is over its limit.
    let (status, body) = s.login("other", "password123", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for _ in 0..3 {
        let (status, body) = s.login("other", "wrong-password", None).await;
        assert!(status == 401 || status == 429, "{status} {body}");
    }
    let (status, body) = s.login("third", "password123", None).await;
    assert_error(status, &body, 429);
    let (status, _) = s.get("/-/whoami", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
}

/// Issue 8 #8: `@<username>` belongs to that user; other scopes are open only
/// when listed in `[publish] allowed_scopes`; admins publish anywhere; existing
/// packages stay with their maintainers.
async fn scopes_belong_to_their_users(backend: Backend) {
    let s = Server::start_with(ServerOptions::new(backend).publish("allowed_scopes = [\"@shared\"]")).await;
    let alice = s.add_user("alice", "password123").await;
    let bob = s.add_user("bob", "password123").await;
    let admin = s.add_admin("admin", "password123").await;
    publish_ok(&s, &alice, "@alice/tool", "1.0.0").await;
    publish_ok(&s, &bob, "@shared/thing", "1.0.0").await;
    publish_ok(&s, &bob, "plain-unscoped", "1.0.0").await;
    for name in ["@alice/anything", "@alice/tool", "@unlisted/x"] {
        let p = publish_with(&s, Some(&bob), name, "2.0.0", json!({}), None).await;
        assert_error(p.status, &p.body, 403);
    }
    let p = publish_with(&s, Some(&bob), "@alice/anything", "1.0.0", json!({}), None).await;
    assert!(p.body["reason"].as_str().unwrap().contains("@alice"), "{}", p.body);
    publish_ok(&s, &admin, "@alice/by-admin", "1.0.0").await;
    publish_ok(&s, &admin, "@unlisted/by-admin", "1.0.0").await;
    // Maintainers keep publishing new versions, whatever the scope rules.
    publish_ok(&s, &alice, "@alice/tool", "1.1.0").await;
    publish_ok(&s, &bob, "@shared/thing", "1.1.0").await;

    // `"*"` opens every scope that is not another user's name; unscoped can be closed.
    let s = Server::start_with(ServerOptions::new(backend).publish("allowed_scopes = [\"*\"]\nallow_unscoped = false")).await;
    s.add_user("alice", "password123").await;
    let bob = s.add_user("bob", "password123").await;
    publish_ok(&s, &bob, "@anyorg/x", "1.0.0").await;
    for name in ["@alice/x", "unscoped-x"] {
        let p = publish_with(&s, Some(&bob), name, "1.0.0", json!({}), None).await;
        assert_error(p.status, &p.body, 403);
    }
}

/// Issue 8 #10 and #18: new packages follow validate-npm-package-name's
/// `validForNewPackages` (core module names and `~'!()*` refused,
/// `@scope/_name` accepted).
async fn new_package_names_follow_npm(backend: Backend) {
    let s = Server::start(backend).await;
    let alice = s.add_user("alice", "password123").await;
    for name in ["fs", "http", "child_process", "has~tilde", "crazy!", "it's"] {
        let p = publish_with(&s, Some(&alice), name, "1.0.0", json!({}), None).await;
        assert_error(p.status, &p.body, 422);
    }
    for name in ["@alice/_underscore", "@alice/fs", "fs-extra"] {
        publish_ok(&s, &alice, name, "1.0.0").await;
    }
}
