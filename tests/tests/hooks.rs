//! Webhooks: the Hook Management API, events written with the change
//! (outbox), signed deliveries to a real receiver, retries, and the address
//! rules for endpoints.

use cairn_e2e::hook_receiver::{Received, Receiver};
use cairn_e2e::publish::*;
use cairn_e2e::{assert_error, both_backends, Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::{json, Value};

both_backends!(
    hook_api,
    hook_api_limits_and_validation,
    hook_endpoints_refuse_private_addresses,
    every_event_is_delivered_signed,
    failed_deliveries_are_retried_with_the_same_id,
    delivery_checks_the_address_again,
    events_survive_kill_9,
);

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
    assert_eq!(
        sorted,
        ["created", "delivered", "endpoint", "id", "last_delivery", "name", "response_code", "status", "type", "updated"],
        "{hook}"
    );
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
    let (status, body) =
        s.call(Method::POST, "/-/npm/v1/hooks/hook", Some(&ro), Some(&hook_body("package", "x", "http://127.0.0.1:9/"))).await;
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
    for endpoint in [
        "http://127.0.0.1:9/",
        "http://localhost:9/",
        "http://[::1]:9/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest",
        "http://0.0.0.0/",
    ] {
        let (status, body) = s.call(Method::POST, "/-/npm/v1/hooks/hook", Some(&alice), Some(&hook_body("package", "foo", endpoint))).await;
        assert_error(status, &body, 422);
        assert!(body["reason"].as_str().unwrap().contains("endpoint refused"), "{endpoint}: {body}");
    }
}

// ---------------------------------------------------------------- deliveries

const SECRET: &str = "s3cret-value-42";

/// Waits until the receiver has `n` requests (at most 30 s).
async fn wait_for(r: &Receiver, n: usize) -> Vec<Received> {
    poll(30, || async {
        let got = r.received();
        (got.len() >= n).then_some(got)
    })
    .await
    .unwrap_or_else(|| {
        panic!("expected {n} deliveries, got {:?}", r.received().iter().map(|g| g.json()["event"].clone()).collect::<Vec<_>>())
    })
}

async fn set_owners(s: &Server, token: &str, name: &str, maintainers: Value) {
    let doc = write_doc(s, token, name).await;
    let rev = doc["_rev"].as_str().unwrap();
    let body = json!({"_id": doc["_id"], "_rev": rev, "maintainers": maintainers});
    let (status, body) = s.call(Method::PUT, &format!("/{}/-rev/{rev}", enc(name)), Some(token), Some(&body)).await;
    assert!(status.is_success(), "owners: {status} {body}");
}

async fn star(s: &Server, token: &str, name: &str, user: &str, on: bool) {
    let doc = write_doc(s, token, name).await;
    let mut users = doc.get("users").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
    if on {
        users[user] = json!(true);
    } else {
        users.as_object_mut().unwrap().remove(user);
    }
    let body = json!({"_id": doc["_id"], "_rev": doc["_rev"], "users": users});
    let (status, body) = s.call(Method::PUT, &format!("/{}", enc(name)), Some(token), Some(&body)).await;
    assert!(status.is_success(), "star: {status} {body}");
}

async fn deprecate(s: &Server, token: &str, name: &str, version: &str, msg: &str) {
    let mut doc = write_doc(s, token, name).await;
    doc["versions"][version]["deprecated"] = json!(msg);
    doc.as_object_mut().unwrap().remove("_attachments");
    let (status, body) = s.call(Method::PUT, &format!("/{}", enc(name)), Some(token), Some(&doc)).await;
    assert!(status.is_success(), "deprecate: {status} {body}");
}

async fn tag(s: &Server, token: &str, method: Method, tag: &str, version: Option<&str>) {
    let body = version.map(|v| json!(v));
    let (status, body) = s.call(method, &format!("/-/package/foo/dist-tags/{tag}"), Some(token), body.as_ref()).await;
    assert!(status.is_success(), "dist-tag: {status} {body}");
}

async fn every_event_is_delivered_signed(backend: Backend) {
    let s = start(backend, LOOPBACK_OK).await;
    let r = Receiver::start(0).await;
    let alice = s.add_user("alice", PW).await;
    let bob = s.add_user("bob", PW).await;
    let hook = add_hook(&s, &alice, "package", "foo", &r.url).await;
    add_hook(&s, &bob, "owner", "bob", &format!("{}/owner", r.url)).await;
    add_hook(&s, &alice, "scope", "@acme", &format!("{}/scope", r.url)).await;

    publish_ok(&s, &alice, "foo", "1.0.0").await;
    publish_ok(&s, &alice, "foo", "1.1.0").await;
    tag(&s, &alice, Method::PUT, "beta", Some("1.0.0")).await;
    tag(&s, &alice, Method::DELETE, "beta", None).await;
    let (am, bm) = (json!({"name": "alice", "email": "alice@example.com"}), json!({"name": "bob", "email": "bob@example.com"}));
    set_owners(&s, &alice, "foo", json!([am, bm])).await;
    set_owners(&s, &alice, "foo", json!([am])).await;
    deprecate(&s, &alice, "foo", "1.0.0", "use 1.1.0").await;
    deprecate(&s, &alice, "foo", "1.0.0", "").await;
    star(&s, &bob, "foo", "bob", true).await;
    star(&s, &bob, "foo", "bob", false).await;
    unpublish_version(&s, &alice, "foo", "1.1.0").await;
    publish_ok(&s, &alice, "@acme/w", "1.0.0").await;
    let doc = write_doc(&s, &alice, "foo").await;
    let (status, body) = s.call(Method::DELETE, &format!("/foo/-rev/{}", doc["_rev"].as_str().unwrap()), Some(&alice), None).await;
    assert!(status.is_success(), "delete: {status} {body}");

    let want = [
        "package:publish",
        "package:publish",
        "package:dist-tag",
        "package:dist-tag-rm",
        "package:owner",
        "package:owner-rm",
        "package:deprecate",
        "package:undeprecate",
        "package:star",
        "package:unstar",
        "package:unpublish",
    ];
    let events = |path: &str| -> Vec<Value> { r.received().iter().filter(|g| g.path == path).map(Received::json).collect() };
    poll(30, || async { (events("/hook").len() >= want.len() + 2).then_some(()) }).await.expect("every event of foo");
    for g in r.received() {
        assert!(g.signed_with(SECRET), "bad signature on {}", String::from_utf8_lossy(&g.body));
        assert_eq!(g.content_type.as_deref(), Some("application/json"));
        assert!(g.delivery_id.as_ref().is_some_and(|id| !id.is_empty()));
    }
    let names = |list: Vec<Value>| -> Vec<String> { list.iter().map(|j| j["event"].as_str().unwrap().to_string()).collect() };
    // The package hook: every event in order; the unpublish of the latest 1.1.0
    // also moved `latest` (a dist-tag event of its own), then the whole package went.
    let pkg_events = events("/hook");
    assert!(
        pkg_events.iter().any(|j| j["event"] == json!("package:dist-tag") && j["change"] == json!({"tag": "latest", "version": "1.0.0"})),
        "{pkg_events:?}"
    );
    let pkg_events: Vec<Value> = pkg_events.into_iter().filter(|j| j["change"]["tag"] != json!("latest")).collect();
    let mut want_foo = want.to_vec();
    want_foo.push("package:unpublish");
    assert_eq!(names(pkg_events), want_foo);
    // The owner hook heard of foo while bob was an owner, including his removal.
    assert_eq!(names(events("/hook/owner")), ["package:owner", "package:owner-rm"]);
    // The scope hook: the publish of @acme/w only.
    assert_eq!(names(events("/hook/scope")), ["package:publish"]);

    let first = r.received().into_iter().find(|g| g.path == "/hook").unwrap().json();
    assert_eq!((&first["name"], &first["type"], &first["version"]), (&json!("foo"), &json!("package"), &json!("1.0.0")), "{first}");
    assert_eq!(first["hookOwner"], json!({"username": "alice"}));
    assert_eq!(first["payload"]["name"], json!("foo"));
    assert!(first["payload"]["versions"]["1.0.0"].is_object(), "{first}");
    assert!(first["time"].is_i64(), "{first}");
    let owner_rm =
        r.received().into_iter().find(|g| g.path == "/hook/owner" && g.json()["event"] == json!("package:owner-rm")).unwrap().json();
    assert_eq!(owner_rm["change"]["user"], json!("bob"));
    assert_eq!(owner_rm["hookOwner"], json!({"username": "bob"}));

    // The hook object and its deliveries.
    let id = hook["id"].as_str().unwrap();
    let (_, h) = s.get(&format!("/-/npm/v1/hooks/hook/{id}"), Some(&alice)).await;
    assert_eq!((&h["delivered"], &h["response_code"]), (&json!(true), &json!(200)), "{h}");
    assert!(h["last_delivery"].as_str().is_some_and(|t| t.ends_with('Z')), "{h}");
    let (_, list) = s.get(&format!("/-/npm/v1/hooks/hook/{id}/deliveries"), Some(&alice)).await;
    let list = list["objects"].as_array().unwrap().clone();
    assert_eq!(list.len(), 13, "{list:?}");
    assert!(
        list.iter().all(|d| d["state"] == json!("delivered") && d["attempts"] == json!(1) && d["response_code"] == json!(200)),
        "{list:?}"
    );
}

async fn failed_deliveries_are_retried_with_the_same_id(backend: Backend) {
    let s = start(backend, LOOPBACK_OK).await;
    let r = Receiver::start(3).await;
    let alice = s.add_user("alice", PW).await;
    let hook = add_hook(&s, &alice, "package", "foo", &r.url).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    let got = wait_for(&r, 4).await;
    assert_eq!(r.failures_left(), 0);
    assert!(got.iter().all(|g| g.delivery_id == got[0].delivery_id && g.body == got[0].body && g.signed_with(SECRET)), "{got:?}");
    let path = format!("/-/npm/v1/hooks/hook/{}/deliveries", hook["id"].as_str().unwrap());
    let list = poll(10, || async {
        let (_, list) = s.get(&path, Some(&alice)).await;
        (list["objects"][0]["state"] == json!("delivered")).then_some(list)
    })
    .await
    .expect("delivered");
    let d = &list["objects"][0];
    assert_eq!(list["objects"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!((&d["attempts"], &d["response_code"], &d["event"]), (&json!(4), &json!(200), &json!("package:publish")), "{d}");
    assert_eq!(d["id"].as_str(), got[0].delivery_id.as_deref());
    assert!(d["error"].as_str().is_some_and(|e| e.contains("503")), "{d}");
    // Nothing more arrives.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(r.received().len(), 4);
}

async fn delivery_checks_the_address_again(backend: Backend) {
    let mut s = start(backend, LOOPBACK_OK).await;
    let r = Receiver::start(0).await;
    let alice = s.add_user("alice", PW).await;
    let hook = add_hook(&s, &alice, "package", "foo", &r.url).await;
    // The operator closes loopback again: the hook exists, but its address is refused when sending.
    s.rewrite_config("[hooks]\nretry_base_ms = 50\n");
    s.restart().await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    let path = format!("/-/npm/v1/hooks/hook/{}/deliveries", hook["id"].as_str().unwrap());
    let list = poll(30, || async {
        let (_, list) = s.get(&path, Some(&alice)).await;
        (list["objects"][0]["state"] == json!("failed")).then_some(list)
    })
    .await
    .expect("a failed delivery");
    let d = &list["objects"][0];
    assert_eq!(d["attempts"], json!(1), "refused at once, not retried: {d}");
    assert!(d["error"].as_str().unwrap().contains("endpoint refused"), "{d}");
    assert!(r.received().is_empty());
}

async fn events_survive_kill_9(backend: Backend) {
    // Delivery off in the first life: the event can only reach the receiver from the outbox.
    let mut s = start(backend, "[hooks]\nenabled = false\nallow_private_targets = [\"127.0.0.0/8\"]\n").await;
    let r = Receiver::start(0).await;
    let alice = s.add_user("alice", PW).await;
    add_hook(&s, &alice, "package", "foo", &r.url).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    s.kill9().await;
    s.rewrite_config(LOOPBACK_OK);
    s.restart().await;
    let got = wait_for(&r, 1).await;
    assert_eq!(got[0].json()["event"], json!("package:publish"));
    assert_eq!(got[0].json()["version"], json!("1.0.0"));
    assert!(got[0].signed_with(SECRET));
}
