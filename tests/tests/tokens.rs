//! `/-/npm/v1/tokens`: creation, listing, revocation; readonly and CIDR rules.

use cairn_e2e::{assert_error, both_backends, Backend, Method, Server, StatusCode};
use serde_json::{json, Value};

both_backends!(create_list_delete, create_validation, readonly_tokens_never_write, cidr_whitelist_is_enforced, last_used_is_tracked);

const PW: &str = "password123";

async fn create(s: &Server, token: &str, body: Value) -> (StatusCode, Value) {
    s.call(Method::POST, "/-/npm/v1/tokens", Some(token), Some(&body)).await
}

async fn create_list_delete(backend: Backend) {
    let s = Server::start(backend).await;
    let login = s.add_user("ivan", PW).await;
    let (status, body) = create(
        &s,
        &login,
        json!({"password": PW, "readonly": false, "automation": true, "cidr_whitelist": ["127.0.0.1", "192.168.1.0/24"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let raw = body["token"].as_str().unwrap().to_string();
    let key = body["key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 128, "key is the sha512 hex of the token");
    assert_eq!(body["automation"], json!(true));
    assert_eq!(body["readonly"], json!(false));
    assert_eq!(body["cidr_whitelist"], json!(["127.0.0.1/32", "192.168.1.0/24"]));
    assert!(body["created"].as_str().unwrap().ends_with('Z'));
    assert!(body["updated"].is_string());
    let (status, _) = s.get("/-/whoami", Some(&raw)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, list) = s.get("/-/npm/v1/tokens", Some(&login)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], json!(2));
    assert_eq!(list["urls"], json!({}));
    let objects = list["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 2);
    for o in objects {
        let shown = o["token"].as_str().unwrap();
        assert!(shown.contains("...") && shown.len() < 20, "token must be masked: {shown}");
        assert!(!shown.contains(&raw[10..20]));
        for field in ["key", "readonly", "automation", "created", "updated", "cidr_whitelist", "lastUsedAt"] {
            assert!(o.get(field).is_some(), "{field} missing in {o}");
        }
    }
    let mine = objects.iter().find(|o| o["key"] == json!(key)).expect("new token listed");
    assert_eq!(mine["automation"], json!(true));
    assert_eq!(mine["cidr_whitelist"], json!(["127.0.0.1/32", "192.168.1.0/24"]));
    let login_entry = objects.iter().find(|o| o["key"] != json!(key)).unwrap();
    assert_eq!(login_entry["cidr_whitelist"], Value::Null);

    // Other users see none of these.
    let other = s.add_user("judy", PW).await;
    let (_, list) = s.get("/-/npm/v1/tokens", Some(&other)).await;
    assert_eq!(list["total"], json!(1));
    let (status, body) = s.call(Method::DELETE, &format!("/-/npm/v1/tokens/token/{key}"), Some(&other), None).await;
    assert_error(status, &body, 404);

    let (status, body) = s.call(Method::DELETE, &format!("/-/npm/v1/tokens/token/{key}"), Some(&login), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"ok": true}));
    let (status, body) = s.get("/-/whoami", Some(&raw)).await;
    assert_error(status, &body, 401);
    let (_, list) = s.get("/-/npm/v1/tokens", Some(&login)).await;
    assert_eq!(list["total"], json!(1));
    let (status, body) = s.call(Method::DELETE, &format!("/-/npm/v1/tokens/token/{key}"), Some(&login), None).await;
    assert_error(status, &body, 404);
    // A token can also be revoked by its raw value.
    let (_, body) = create(&s, &login, json!({"password": PW})).await;
    let raw2 = body["token"].as_str().unwrap().to_string();
    let (status, _) = s.call(Method::DELETE, &format!("/-/npm/v1/tokens/token/{raw2}"), Some(&login), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.get("/-/whoami", Some(&raw2)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Anonymous callers get 401 everywhere here.
    let (status, body) = s.get("/-/npm/v1/tokens", None).await;
    assert_error(status, &body, 401);
    let (status, body) = s.call(Method::POST, "/-/npm/v1/tokens", None, Some(&json!({"password": PW}))).await;
    assert_error(status, &body, 401);
}

async fn create_validation(backend: Backend) {
    let s = Server::start(backend).await;
    let login = s.add_user("kate", PW).await;
    let (status, body) = create(&s, &login, json!({"password": "wrong-password"})).await;
    assert_error(status, &body, 401);
    let (status, body) = create(&s, &login, json!({"readonly": true})).await;
    assert_error(status, &body, 422);
    let (status, body) = create(&s, &login, json!({"password": "short"})).await;
    assert_error(status, &body, 422);
    let (status, body) = create(&s, &login, json!({"password": PW, "readonly": "yes"})).await;
    assert_error(status, &body, 422);
    let (status, body) = create(&s, &login, json!({"password": PW, "cidr_whitelist": ["10.0.0.0/33"]})).await;
    assert_error(status, &body, 422);
    let (status, body) = create(&s, &login, json!({"password": PW, "cidr_whitelist": ["not-an-ip"]})).await;
    assert_error(status, &body, 422);
    let (status, body) = create(&s, &login, json!({"password": PW, "cidr_whitelist": "10.0.0.0/8"})).await;
    assert_error(status, &body, 422);
    let eleven: Vec<String> = (0..11).map(|i| format!("10.0.{i}.0/24")).collect();
    let (status, body) = create(&s, &login, json!({"password": PW, "cidr_whitelist": eleven})).await;
    assert_error(status, &body, 422);
    let ten: Vec<String> = (0..10).map(|i| format!("10.0.{i}.0/24")).collect();
    let (status, body) = create(&s, &login, json!({"password": PW, "cidr_whitelist": ten})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // None of the refused requests created a token.
    let (_, list) = s.get("/-/npm/v1/tokens", Some(&login)).await;
    assert_eq!(list["total"], json!(2));
}

async fn readonly_tokens_never_write(backend: Backend) {
    let s = Server::start(backend).await;
    let login = s.add_user("leo", PW).await;
    let (status, body) = create(&s, &login, json!({"password": PW, "readonly": true})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["readonly"], json!(true));
    let ro = body["token"].as_str().unwrap().to_string();
    let ro_key = body["key"].as_str().unwrap().to_string();
    // Reads work.
    let (status, _) = s.get("/-/whoami", Some(&ro)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.get("/-/npm/v1/tokens", Some(&ro)).await;
    assert_eq!(status, StatusCode::OK);
    // Writes are refused with 403, whatever the route, before anything else.
    let (status, body) = create(&s, &ro, json!({"password": PW})).await;
    assert_error(status, &body, 403);
    let login_key = s.get("/-/npm/v1/tokens", Some(&login)).await.1["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .find(|k| *k != ro_key)
        .unwrap();
    let (status, body) = s.call(Method::DELETE, &format!("/-/npm/v1/tokens/token/{login_key}"), Some(&ro), None).await;
    assert_error(status, &body, 403);
    for (method, path) in [(Method::PUT, "/some-package"), (Method::DELETE, "/some-package/-rev/1-abc"), (Method::POST, "/-/anything")] {
        let (status, body) = s.call(method.clone(), path, Some(&ro), Some(&json!({}))).await;
        assert_error(status, &body, 403);
    }
    // The login token still works: nothing was revoked.
    let (status, _) = s.get("/-/whoami", Some(&login)).await;
    assert_eq!(status, StatusCode::OK);
}

async fn cidr_whitelist_is_enforced(backend: Backend) {
    let s = Server::start(backend).await;
    let login = s.add_user("mia", PW).await;
    let (_, body) = create(&s, &login, json!({"password": PW, "cidr_whitelist": ["10.0.0.0/8"]})).await;
    let outside = body["token"].as_str().unwrap().to_string();
    let (_, body) = create(&s, &login, json!({"password": PW, "cidr_whitelist": ["10.0.0.0/8", "127.0.0.0/8"]})).await;
    let inside = body["token"].as_str().unwrap().to_string();
    // The test connects from 127.0.0.1: outside 10/8 on every request, reads included.
    let (status, body) = s.get("/-/whoami", Some(&outside)).await;
    assert_error(status, &body, 403);
    let (status, body) = s.get("/-/ping", Some(&outside)).await;
    assert_error(status, &body, 403);
    let (status, body) = s.get("/-/npm/v1/tokens", Some(&outside)).await;
    assert_error(status, &body, 403);
    let (status, body) = s.get("/-/whoami", Some(&inside)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn last_used_is_tracked(backend: Backend) {
    let s = Server::start(backend).await;
    let login = s.add_user("nina", PW).await;
    let (_, body) = create(&s, &login, json!({"password": PW})).await;
    let fresh = body["token"].as_str().unwrap().to_string();
    let fresh_key = body["key"].as_str().unwrap().to_string();
    let entry = |list: &Value| list["objects"].as_array().unwrap().iter().find(|o| o["key"] == json!(fresh_key)).unwrap().clone();
    let (_, list) = s.get("/-/npm/v1/tokens", Some(&login)).await;
    assert_eq!(entry(&list)["lastUsedAt"], Value::Null, "never used yet");
    s.get("/-/whoami", Some(&fresh)).await;
    let (_, list) = s.get("/-/npm/v1/tokens", Some(&login)).await;
    let used = entry(&list)["lastUsedAt"].as_str().expect("lastUsedAt after use").to_string();
    // It survives a restart: it was flushed to the database.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut s = s;
    s.restart().await;
    let (_, list) = s.get("/-/npm/v1/tokens", Some(&login)).await;
    assert_eq!(entry(&list)["lastUsedAt"].as_str(), Some(used.as_str()));
}
