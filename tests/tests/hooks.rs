//! Webhooks: the Hook Management API, events written with the change
//! (outbox), signed deliveries to a real receiver, retries, and the address
//! rules for endpoints.

use cairn_e2e::publish::*;
use cairn_e2e::{assert_error, both_backends, Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::{json, Value};

both_backends!(hook_api, hook_api_limits_and_validation, hook_endpoints_refuse_private_addresses);

const LOOPBACK_OK: &str = "[hooks]\nallow_private_targets = [\"127.0.0.0/8\"]\nretry_base_ms = 50\ntimeout_ms = 2000\n";

async fn start(backend: Backend, hooks_toml: &str) -> Server {
    Server::start_with(ServerOptions::new(backend).tail(hooks_toml)).await
}

fn hook_body(kind: &str, name: &str, endpoint: &str) -> Value {
    json!({"type": kind, "name": name, "endpoint": endpoint, "secret": "s3cret-value-42"})
}

async fn add_hook(s: &Server, token: &str, kind: &str, name: &str, endpoint: &str) -> Value {
    let (status, body) = s.call(Method::POST, "/-/npm/v1/hooks/hook", Some(token), Some(&hook_body(kind, name, endpoint))).await;
    assert_eq!(status, StatusCode::OK, "create hook: {body}");
    body
}

async fn hook_api(backend: Backend) {
    let s = start(backend, LOOPBACK_OK).await;
    let alice = s.add_user("alice", PW).await;
    let bob = s.add_user("bob", PW).await;
    let admin = s.add_admin("admin", PW).await;

    let hook = add_hook(&s, &alice, "package", "foo", "http://127.0.0.1:9/a").await;
    let keys: Vec<&str> = hook.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, ["created", "delivered", "endpoint", "id", "last_delivery", "name", "response_code", "status", "type", "updated"], "{hook}");
    assert_eq!(hook["delivered"], json!(false));
    assert_eq!(hook["last_delivery"], Value::Null);
    let id = hook["id"].as_str().unwrap().to_string();
    add_hook(&s, &alice, "scope", "@acme", "http://127.0.0.1:9/b").await;
    add_hook(&s, &bob, "owner", "bob", "http://127.0.0.1:9/c").await;

    // Lists: own hooks only; `package=` filters; admins see all with all=true.
    let (status, list) = s.get("/-/npm/v1/hooks", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["objects"].as_array().unwrap().len(), 2, "{list}");
    let (_, list) = s.get("/-/npm/v1/hooks?package=foo", Some(&alice)).await;
    assert_eq!(list["objects"].as_array().unwrap().len(), 1, "{list}");
    let (_, list) = s.get("/-/npm/v1/hooks?offset=1&limit=1", Some(&alice)).await;
    assert_eq!(list["objects"][0]["name"], json!("@acme"), "{list}");
    let (_, list) = s.get("/-/npm/v1/hooks?all=true", Some(&admin)).await;
    assert_eq!(list["objects"].as_array().unwrap().len(), 3, "{list}");
    let (status, body) = s.get("/-/npm/v1/hooks?all=true", Some(&bob)).await;
    assert_error(status, &body, 403);
    let (status, body) = s.get("/-/npm/v1/hooks?limit=101", Some(&bob)).await;
    assert_error(status, &body, 422);
    let (status, body) = s.get("/-/npm/v1/hooks", None).await;
    assert_error(status, &body, 401);

    // One hook: owner and admin yes, another user 403, unknown 404.
    let path = format!("/-/npm/v1/hooks/hook/{id}");
    let (status, body) = s.get(&path, Some(&alice)).await;
    assert_eq!((status, &body["id"]), (StatusCode::OK, &json!(id)), "{body}");
    let (status, _) = s.get(&path, Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s.get(&path, Some(&bob)).await;
    assert_error(status, &body, 403);
    let (status, body) = s.get("/-/npm/v1/hooks/hook/nope", Some(&alice)).await;
    assert_error(status, &body, 404);

    let change = json!({"endpoint": "http://127.0.0.1:9/new", "secret": "another-secret-7"});
    let (status, body) = s.call(Method::PUT, &path, Some(&bob), Some(&change)).await;
    assert_error(status, &body, 403);
    let (status, body) = s.call(Method::PUT, "/-/npm/v1/hooks/hook/nope", Some(&alice), Some(&change)).await;
    assert_error(status, &body, 404);
    let (status, body) = s.call(Method::PUT, &path, Some(&alice), Some(&change)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["endpoint"], json!("http://127.0.0.1:9/new"));

    // Readonly tokens cannot create, change or delete.
    let ro = readonly_token(&s, &alice).await;
    let (status, body) = s.call(Method::POST, "/-/npm/v1/hooks/hook", Some(&ro), Some(&hook_body("package", "x", "http://127.0.0.1:9/"))).await;
    assert_error(status, &body, 403);
    let (status, body) = s.call(Method::PUT, &path, Some(&ro), Some(&change)).await;
    assert_error(status, &body, 403);
    let (status, body) = s.call(Method::DELETE, &path, Some(&ro), None).await;
    assert_error(status, &body, 403);
    let (status, _) = s.get(&path, Some(&ro)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = s.get(&format!("{path}/deliveries"), Some(&alice)).await;
    assert_eq!((status, body["objects"].clone()), (StatusCode::OK, json!([])), "{body}");
    let (status, body) = s.get(&format!("{path}/deliveries"), Some(&bob)).await;
    assert_error(status, &body, 403);

    let (status, body) = s.call(Method::DELETE, &path, Some(&bob), None).await;
    assert_error(status, &body, 403);
    let (status, body) = s.call(Method::DELETE, &path, Some(&alice), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["deleted"].as_str().is_some_and(|d| d.ends_with('Z')), "{body}");
    let (status, body) = s.get(&path, Some(&alice)).await;
    assert_error(status, &body, 404);
    let (status, body) = s.call(Method::DELETE, &path, Some(&alice), None).await;
    assert_error(status, &body, 404);

    // The secret is in no answer and no log line.
    let (_, all) = s.get("/-/npm/v1/hooks?all=true", Some(&admin)).await;
    for text in [all.to_string(), s.log()] {
        assert!(!text.contains("s3cret-value-42") && !text.contains("another-secret-7"), "secret leaked: {text}");
    }
}

async fn hook_api_limits_and_validation(backend: Backend) {
    let s = start(backend, &format!("{LOOPBACK_OK}max_per_user = 2\n")).await;
    let alice = s.add_user("alice", PW).await;
    let create = |body: Value| {
        let s = &s;
        let alice = alice.clone();
        async move { s.call(Method::POST, "/-/npm/v1/hooks/hook", Some(&alice), Some(&body)).await }
    };
    let long = "x".repeat(429);
    let long_url = format!("http://127.0.0.1:9/{}", "p".repeat(2040));
    for bad in [
        hook_body("nonsense", "foo", "http://127.0.0.1:9/"),
        hook_body("package", "", "http://127.0.0.1:9/"),
        hook_body("package", &long, "http://127.0.0.1:9/"),
        hook_body("scope", "acme", "http://127.0.0.1:9/"),
        hook_body("package", "foo", "/relative"),
        hook_body("package", "foo", "ftp://127.0.0.1/"),
        hook_body("package", "foo", &long_url),
        json!({"type": "package", "name": "foo", "endpoint": "http://127.0.0.1:9/", "secret": ""}),
        json!({"type": "package", "name": "foo", "endpoint": "http://127.0.0.1:9/", "secret": "s".repeat(201)}),
        json!({"type": "package", "name": "foo", "endpoint": "http://127.0.0.1:9/"}),
    ] {
        let (status, body) = create(bad.clone()).await;
        assert_error(status, &body, 422);
    }
    let (status, body) = s.call(Method::POST, "/-/npm/v1/hooks/hook", Some(&alice), None).await;
    assert_error(status, &body, 400);
    // At most max_per_user hooks.
    for name in ["a", "b"] {
        let (status, body) = create(hook_body("package", name, "http://127.0.0.1:9/")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = create(hook_body("package", "c", "http://127.0.0.1:9/")).await;
    assert_error(status, &body, 403);
    assert!(body["reason"].as_str().unwrap().contains("max_per_user"), "{body}");
}

async fn hook_endpoints_refuse_private_addresses(backend: Backend) {
    let s = start(backend, "").await;
    let alice = s.add_user("alice", PW).await;
    for endpoint in ["http://127.0.0.1:9/", "http://localhost:9/", "http://[::1]:9/", "http://10.0.0.1/", "http://169.254.169.254/latest", "http://0.0.0.0/"] {
        let (status, body) = s.call(Method::POST, "/-/npm/v1/hooks/hook", Some(&alice), Some(&hook_body("package", "foo", endpoint))).await;
        assert_error(status, &body, 422);
        assert!(body["reason"].as_str().unwrap().contains("endpoint refused"), "{endpoint}: {body}");
    }
}
