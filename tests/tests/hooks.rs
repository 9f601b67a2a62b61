//! Webhooks: the Hook Management API, events written with the change
//! (outbox), signed deliveries to a real receiver, retries, and the address
//! rules for endpoints.

use cairn_e2e::hook_receiver::{Received, Receiver};
use cairn_e2e::publish::*;
use cairn_e2e::samples::CHAT_HOOK;
use cairn_e2e::{assert_error, both_backends, plugin, Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::{json, Value};

both_backends!(
    hook_api,
    hook_api_limits_and_validation,
    hook_endpoints_refuse_private_addresses,
    every_event_is_delivered_signed,
    failed_deliveries_are_retried_with_the_same_id,
    delivery_checks_the_address_again,
    events_survive_kill_9,
    formatter_plugins_build_the_request,
    formatters_swap_without_restart,
    hanging_receivers_time_out_and_are_retried,
    events_from_a_sync_are_delivered,
    a_hook_waits_for_its_older_delivery,
    client_errors_fail_at_once_and_retries_give_up,
    a_change_with_nothing_more_specific_is_package_change,
    the_policy_plugins_are_asked_for_hook_admin,
);

mod two_processes_deliver_each_once {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::two_processes_deliver_each_once().await
    }
}

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
        ["created", "delivered", "endpoint", "formatter", "id", "last_delivery", "name", "response_code", "status", "type", "updated"],
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
    let (_, list) = s.get("/-/npm/v1/hooks", Some(&admin)).await;
    assert_eq!(list["objects"], json!([]), "without all=true an admin sees their own hooks");
    let (status, body) = s.get("/-/npm/v1/hooks?all=true", Some(&bob)).await;
    assert_error(status, &body, 403);
    let (status, body) = s.get("/-/npm/v1/hooks?limit=101", Some(&bob)).await;
    assert_error(status, &body, 422);
    let (status, body) = s.get("/-/npm/v1/hooks", None).await;
    assert_error(status, &body, 401);
    let (status, body) = s.call(Method::POST, "/-/npm/v1/hooks/hook", None, Some(&hook_body("package", "x", "http://127.0.0.1:9/"))).await;
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
    // An update is checked like a creation: the allow list opens 127.0.0.0/8 only.
    for (endpoint, secret) in
        [("http://10.0.0.1/x", "another-secret-7"), ("ftp://127.0.0.1/", "another-secret-7"), ("http://127.0.0.1:9/", "")]
    {
        let (status, body) = s.call(Method::PUT, &path, Some(&alice), Some(&json!({"endpoint": endpoint, "secret": secret}))).await;
        assert_error(status, &body, 422);
    }
    let (status, body) =
        s.call(Method::POST, "/-/npm/v1/hooks/hook", Some(&alice), Some(&hook_body("package", "x", "http://10.0.0.1/"))).await;
    assert_error(status, &body, 422);
    assert!(body["reason"].as_str().unwrap().contains("endpoint refused"), "{body}");
    let (_, body) = s.get(&path, Some(&alice)).await;
    assert_eq!(body["endpoint"], json!("http://127.0.0.1:9/new"), "a refused update changes nothing");
    // Admins may change and delete anyone's hooks, and see their deliveries.
    let (_, list) = s.get("/-/npm/v1/hooks?package=%40acme", Some(&alice)).await;
    let acme = format!("/-/npm/v1/hooks/hook/{}", list["objects"][0]["id"].as_str().unwrap());
    let (status, body) = s.call(Method::PUT, &acme, Some(&admin), Some(&change)).await;
    assert_eq!((status, &body["endpoint"]), (StatusCode::OK, &json!("http://127.0.0.1:9/new")), "{body}");
    let (status, body) = s.get(&format!("{acme}/deliveries"), Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s.call(Method::DELETE, &acme, Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s.get("/-/npm/v1/hooks/hook/nope/deliveries", Some(&alice)).await;
    assert_error(status, &body, 404);

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
    // The payload is the document when the event is fanned out: let the first
    // one go out before the package changes (and is finally deleted) below.
    poll(30, || async { r.received().iter().any(|g| g.path == "/hook").then_some(()) }).await.expect("the first publish delivered");
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

    // The hook object and its deliveries (an attempt's end is recorded just
    // after the receiver answered it).
    let id = hook["id"].as_str().unwrap();
    let delivered = |d: &Value| d["state"] == json!("delivered") && d["attempts"] == json!(1) && d["response_code"] == json!(200);
    let list = poll(10, || async {
        let (_, list) = s.get(&format!("/-/npm/v1/hooks/hook/{id}/deliveries"), Some(&alice)).await;
        let list = list["objects"].as_array().unwrap().clone();
        (list.len() == 13 && list.iter().all(delivered)).then_some(list)
    })
    .await;
    assert!(list.is_some(), "13 deliveries, all delivered once");
    let (_, h) = s.get(&format!("/-/npm/v1/hooks/hook/{id}"), Some(&alice)).await;
    assert_eq!((&h["delivered"], &h["response_code"]), (&json!(true), &json!(200)), "{h}");
    assert!(h["last_delivery"].as_str().is_some_and(|t| t.ends_with('Z')), "{h}");
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
    let mut s = start(backend, "[hooks]\nallow_private_targets = [\"127.0.0.0/8\", \"::1/128\"]\nretry_base_ms = 50\n").await;
    let r = Receiver::start(0).await;
    let alice = s.add_user("alice", PW).await;
    // An IP literal (checked before sending) and a name (checked as it resolves, on the addresses connected to).
    let by_name = r.url.replace("127.0.0.1", "localhost");
    let hooks = [add_hook(&s, &alice, "package", "foo", &r.url).await, add_hook(&s, &alice, "package", "foo", &by_name).await];
    // The operator closes loopback again: the hooks exist, but their addresses are refused when sending.
    s.rewrite_config("[hooks]\nretry_base_ms = 50\n");
    s.restart().await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    for hook in &hooks {
        let path = format!("/-/npm/v1/hooks/hook/{}/deliveries", hook["id"].as_str().unwrap());
        let list = poll(30, || async {
            let (_, list) = s.get(&path, Some(&alice)).await;
            (list["objects"][0]["state"] == json!("failed")).then_some(list)
        })
        .await
        .expect("a failed delivery");
        let d = &list["objects"][0];
        assert_eq!(d["attempts"], json!(1), "refused at once, not retried: {d}");
        assert!(d["error"].as_str().unwrap().contains("endpoint refused"), "{hook}: {d}");
    }
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

// ---------------------------------------------------------------- formatters

/// `file` (a build of the chat-hook sample) as the formatter `name`.
fn formatter_toml(file: &str, name: &str, config: &str) -> String {
    format!(
        "[[plugins]]\nname = {name:?}\nkind = \"hook-formatter\"\npath = {:?}\ntimeout_ms = 2000\n[plugins.config]\n{config}\n",
        plugin(file).display().to_string()
    )
}

async fn deliveries_of(s: &Server, token: &str, hook: &Value) -> Value {
    let (_, list) = s.get(&format!("/-/npm/v1/hooks/hook/{}/deliveries", hook["id"].as_str().unwrap()), Some(token)).await;
    list
}

/// Once per build of the chat-hook sample (Rust, JavaScript, ...).
async fn formatter_plugins_build_the_request(backend: Backend) {
    for (label, file) in CHAT_HOOK {
        eprintln!("chat hook: {label} ({file}.wasm)");
        formatters_build_the_request(backend, file).await;
    }
}

async fn formatters_build_the_request(backend: Backend, file: &str) {
    // `bad` returns a header value the host refuses (not visible ASCII): a bad result, a fault.
    let tail = [
        LOOPBACK_OK.to_string(),
        formatter_toml(file, "chat", "username = \"registry-bot\"\nheaders = { \"X-Channel\" = \"#releases\" }"),
        formatter_toml(file, "bad", "headers = { \"X-Channel\" = \"#réleases\" }"),
    ]
    .join("\n");
    let s = start(backend, &tail).await;
    let (r, r2) = (Receiver::start(0).await, Receiver::start(0).await);
    let alice = s.add_user("alice", PW).await;
    let with = |endpoint: &str, formatter: Value| {
        let mut b = hook_body("package", "foo", endpoint);
        b["formatter"] = formatter;
        b
    };
    // Only a configured hook-formatter plugin may be named.
    for bad in [json!("nope"), json!(42)] {
        let (status, body) = s.call(Method::POST, "/-/npm/v1/hooks/hook", Some(&alice), Some(&with(&r.url, bad))).await;
        assert_error(status, &body, 422);
    }
    let (status, hook) = s.call(Method::POST, "/-/npm/v1/hooks/hook", Some(&alice), Some(&with(&r.url, json!("chat")))).await;
    assert_eq!((status, &hook["formatter"]), (StatusCode::OK, &json!("chat")), "{hook}");
    let (status, faulty) = s.call(Method::POST, "/-/npm/v1/hooks/hook", Some(&alice), Some(&with(&r2.url, json!("bad")))).await;
    assert_eq!(status, StatusCode::OK, "{faulty}");
    let path = format!("/-/npm/v1/hooks/hook/{}", faulty["id"].as_str().unwrap());
    let (status, body) =
        s.call(Method::PUT, &path, Some(&alice), Some(&json!({"endpoint": r2.url, "secret": SECRET, "formatter": "nope"}))).await;
    assert_error(status, &body, 422);

    publish_ok(&s, &alice, "foo", "1.0.0").await;
    // The formatter's request, signed over the bytes it produced.
    let got = wait_for(&r, 1).await;
    let msg = got[0].json();
    assert!(msg["text"].as_str().unwrap().contains("foo@1.0.0"), "{msg}");
    assert_eq!(msg["username"], json!("registry-bot"));
    assert_eq!(got[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(got[0].header("x-channel"), Some("#releases"));
    assert!(got[0].signed_with(SECRET) && got[0].delivery_id.is_some(), "{got:?}");

    // The faulting formatter fails its attempts, naming the plugin; nothing reaches its receiver.
    let list = poll(30, || async {
        let list = deliveries_of(&s, &alice, &faulty).await;
        (list["objects"][0]["attempts"].as_i64() >= Some(2)).then_some(list)
    })
    .await;
    let list = match list {
        Some(list) => list,
        None => panic!("retried attempts: {} / {:?}", deliveries_of(&s, &alice, &faulty).await, r2.received()),
    };
    let d = &list["objects"][0];
    assert_eq!(d["state"], json!("pending"), "{d}");
    assert!(d["error"].as_str().is_some_and(|e| e.contains("formatter bad") && e.contains("X-Channel")), "{d}");
    assert!(r2.received().is_empty());
    // The server and the other hook are unaffected; switching the hook to `chat` delivers the same delivery.
    let (status, _) = s.get("/foo", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) =
        s.call(Method::PUT, &path, Some(&alice), Some(&json!({"endpoint": r2.url, "secret": SECRET, "formatter": "chat"}))).await;
    assert_eq!((status, &body["formatter"]), (StatusCode::OK, &json!("chat")), "{body}");
    let got2 = wait_for(&r2, 1).await;
    assert_eq!(got2[0].delivery_id.as_deref(), d["id"].as_str());
    assert!(got2[0].signed_with(SECRET) && got2[0].json()["username"] == json!("registry-bot"));
    // `null` goes back to npm's body; an update without `formatter` keeps it.
    let (_, body) = s.call(Method::PUT, &path, Some(&alice), Some(&json!({"endpoint": r2.url, "secret": SECRET}))).await;
    assert_eq!(body["formatter"], json!("chat"));
    let (_, body) = s.call(Method::PUT, &path, Some(&alice), Some(&json!({"endpoint": r2.url, "secret": SECRET, "formatter": null}))).await;
    assert_eq!(body["formatter"], Value::Null);
    publish_ok(&s, &alice, "foo", "1.0.1").await;
    let got2 = wait_for(&r2, 2).await;
    assert_eq!(got2[1].json()["event"], json!("package:publish"));
    assert!(got2[1].signed_with(SECRET));
}

/// Once per build of the chat-hook sample (Rust, JavaScript, ...).
async fn formatters_swap_without_restart(backend: Backend) {
    for (label, file) in CHAT_HOOK {
        eprintln!("chat hook: {label} ({file}.wasm)");
        formatters_swap(backend, file).await;
    }
}

async fn formatters_swap(backend: Backend, file: &str) {
    let with_chat = |username: &str| format!("{LOOPBACK_OK}\n{}", formatter_toml(file, "chat", &format!("username = {username:?}")));
    let s = start(backend, &with_chat("v1")).await;
    let admin = s.add_admin("admin", PW).await;
    let alice = s.add_user("alice", PW).await;
    let r = Receiver::start(0).await;
    let mut body = hook_body("package", "foo", &r.url);
    body["formatter"] = json!("chat");
    let (status, hook) = s.call(Method::POST, "/-/npm/v1/hooks/hook", Some(&alice), Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{hook}");
    let reload = |toml: String| {
        let (s, admin) = (&s, admin.clone());
        async move {
            s.rewrite_config(&toml);
            let (status, out) = s.call(Method::POST, "/-/admin/plugins/reload", Some(&admin), None).await;
            assert_eq!(status, StatusCode::OK, "{out}");
        }
    };
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    assert_eq!(wait_for(&r, 1).await[0].json()["username"], json!("v1"));
    // A new configuration of the formatter is used from the next attempt on, without a restart.
    reload(with_chat("v2")).await;
    publish_ok(&s, &alice, "foo", "1.0.1").await;
    let got = wait_for(&r, 2).await;
    assert_eq!(got[1].json()["username"], json!("v2"));
    assert!(got[1].json()["text"].as_str().unwrap().contains("foo@1.0.1") && got[1].signed_with(SECRET));
    // A formatter that is no longer configured fails the attempts, naming it; nothing is sent.
    reload(LOOPBACK_OK.to_string()).await;
    publish_ok(&s, &alice, "foo", "1.0.2").await;
    let list = poll(30, || async {
        let list = deliveries_of(&s, &alice, &hook).await;
        list["objects"].as_array().unwrap().iter().find(|d| d["error"].is_string()).cloned()
    })
    .await
    .expect("a failed attempt");
    assert!(list["error"].as_str().unwrap().contains("formatter chat"), "{list}");
    assert_eq!(list["state"], json!("pending"), "{list}");
    assert_eq!(r.received().len(), 2);
    // Configured again: the same delivery goes out.
    reload(with_chat("v3")).await;
    let got = wait_for(&r, 3).await;
    assert_eq!((got[2].delivery_id.as_deref(), &got[2].json()["username"]), (list["id"].as_str(), &json!("v3")));
}

// ---------------------------------------------------------------- timeouts, syncs, processes

async fn hanging_receivers_time_out_and_are_retried(backend: Backend) {
    let s = start(backend, "[hooks]\nallow_private_targets = [\"127.0.0.0/8\"]\nretry_base_ms = 50\ntimeout_ms = 300\n").await;
    let r = Receiver::start_hanging(2).await;
    let alice = s.add_user("alice", PW).await;
    let hook = add_hook(&s, &alice, "package", "foo", &r.url).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    let got = wait_for(&r, 3).await;
    assert_eq!(r.hangs_left(), 0);
    assert!(got.iter().all(|g| g.delivery_id == got[0].delivery_id && g.signed_with(SECRET)), "{got:?}");
    let list = poll(30, || async {
        let list = deliveries_of(&s, &alice, &hook).await;
        (list["objects"][0]["state"] == json!("delivered")).then_some(list)
    })
    .await
    .expect("delivered after two timeouts");
    let d = &list["objects"][0];
    assert_eq!((&d["attempts"], &d["response_code"]), (&json!(3), &json!(200)), "{d}");
    assert!(d["error"].as_str().is_some_and(|e| e.contains("timed out")), "{d}");
}

/// `(event, version)` of what the receiver got after the first `from`, once it
/// includes all of `wanted` (a wanted version `null` matches any).
async fn wait_events(r: &Receiver, from: usize, wanted: &[(&str, Value)]) -> Vec<(String, Value)> {
    let events = || {
        r.received()[from..]
            .iter()
            .map(|g| (g.json()["event"].as_str().unwrap().to_string(), g.json()["version"].clone()))
            .collect::<Vec<_>>()
    };
    let done = poll(30, || async {
        let got = events();
        wanted.iter().all(|(e, v)| got.iter().any(|(ge, gv)| ge == e && (v.is_null() || gv == v))).then_some(got)
    })
    .await;
    done.unwrap_or_else(|| panic!("expected {wanted:?}, got {:?}", events()))
}

async fn sync_now(s: &Server, token: &str, name: &str) {
    let id = cairn_e2e::upstream::sync_ok(s, token, name, json!({})).await;
    cairn_e2e::upstream::wait_success(s, name, &id, 30).await;
}

async fn events_from_a_sync_are_delivered(backend: Backend) {
    let up = Server::start(backend).await;
    let up_alice = up.add_user("alice", PW).await;
    let tail = format!("{LOOPBACK_OK}\n[[registries]]\nname = \"up\"\nhost = {:?}\ntype = \"cnpm\"\ndefault = true\n", up.base);
    // Versions gone upstream are removed here too (an unpublish).
    let s = Server::start_with(ServerOptions::new(backend).toml("sync_delete_mode = \"delete\"").tail(&tail)).await;
    let bob = s.add_user("bob", PW).await;
    let r = Receiver::start(0).await;
    add_hook(&s, &bob, "package", "foo", &r.url).await;
    publish_ok(&up, &up_alice, "foo", "1.0.0").await;
    sync_now(&s, &bob, "foo").await;
    wait_events(&r, 0, &[("package:publish", json!("1.0.0")), ("package:owner", Value::Null)]).await;
    // Each kind of change upstream reaches the hook through the next sync.
    let n = r.received().len();
    publish_ok(&up, &up_alice, "foo", "1.1.0").await;
    deprecate(&up, &up_alice, "foo", "1.0.0", "old").await;
    tag(&up, &up_alice, Method::PUT, "beta", Some("1.0.0")).await;
    sync_now(&s, &bob, "foo").await;
    wait_events(&r, n, &[("package:publish", json!("1.1.0")), ("package:deprecate", json!("1.0.0")), ("package:dist-tag", json!("1.0.0"))])
        .await;
    let n = r.received().len();
    deprecate(&up, &up_alice, "foo", "1.0.0", "").await;
    tag(&up, &up_alice, Method::DELETE, "beta", None).await;
    sync_now(&s, &bob, "foo").await;
    wait_events(&r, n, &[("package:undeprecate", json!("1.0.0")), ("package:dist-tag-rm", Value::Null)]).await;
    // Owners, and a version unpublished upstream.
    up.add_user("bob", PW).await;
    let (am, bm) = (json!({"name": "alice", "email": "alice@example.com"}), json!({"name": "bob", "email": "bob@example.com"}));
    let n = r.received().len();
    set_owners(&up, &up_alice, "foo", json!([am, bm])).await;
    sync_now(&s, &bob, "foo").await;
    wait_events(&r, n, &[("package:owner", Value::Null)]).await;
    let owner_events = |from: usize, event: &str| -> Vec<Value> {
        r.received()[from..]
            .iter()
            .map(Received::json)
            .filter(|j| j["event"] == json!(event))
            .map(|j| j["change"]["user"].clone())
            .collect()
    };
    assert!(
        owner_events(n, "package:owner").iter().any(|u| u.as_str().is_some_and(|u| u.ends_with("bob"))),
        "{:?}",
        owner_events(n, "package:owner")
    );
    let n = r.received().len();
    set_owners(&up, &up_alice, "foo", json!([am])).await;
    unpublish_version(&up, &up_alice, "foo", "1.1.0").await;
    sync_now(&s, &bob, "foo").await;
    wait_events(&r, n, &[("package:owner-rm", Value::Null), ("package:unpublish", json!("1.1.0"))]).await;
    assert!(owner_events(n, "package:owner-rm").iter().any(|u| u.as_str().is_some_and(|u| u.ends_with("bob"))));
    let got = r.received();
    assert!(got.iter().all(|g| g.signed_with(SECRET) && g.json()["name"] == json!("foo")), "{got:?}");
}

/// Two processes on one PostgreSQL both fan out and deliver: each delivery is sent once.
async fn two_processes_deliver_each_once() {
    let toml = "[hooks]\nallow_private_targets = [\"127.0.0.0/8\"]\nretry_base_ms = 50\ntimeout_ms = 2000\nworkers = 4\n";
    let a = start(Backend::Postgres, toml).await;
    let b = Server::start_with(ServerOptions::new(Backend::Postgres).database(&a.database_url).tail(toml)).await;
    let alice = a.add_user("alice", PW).await;
    let r = Receiver::start(0).await;
    for _ in 0..4 {
        add_hook(&a, &alice, "scope", "@acme", &r.url).await;
    }
    let versions: Vec<String> = (0..10).map(|i| format!("1.0.{i}")).collect();
    for (i, v) in versions.iter().enumerate() {
        // Writes through both processes.
        let s = if i % 2 == 0 { &a } else { &b };
        publish_ok(s, &alice, "@acme/pkg", v).await;
    }
    wait_for(&r, 40).await;
    // Let any duplicate arrive before counting.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let got = r.received();
    let ids: std::collections::BTreeSet<_> = got.iter().map(|g| g.delivery_id.clone().unwrap()).collect();
    assert_eq!((got.len(), ids.len()), (40, 40), "each of 10 events x 4 hooks once");
    for v in &versions {
        assert_eq!(got.iter().filter(|g| g.json()["version"] == json!(v)).count(), 4, "{v}");
    }
    assert!(got.iter().all(|g| g.signed_with(SECRET)));
}

// ---------------------------------------------------------------- order, failures, policies

/// A delivery is not sent while an older one to the same hook is pending:
/// three publishes to a receiver that fails three times arrive in order.
async fn a_hook_waits_for_its_older_delivery(backend: Backend) {
    let s = start(backend, LOOPBACK_OK).await;
    let r = Receiver::start(3).await;
    let alice = s.add_user("alice", PW).await;
    add_hook(&s, &alice, "package", "foo", &r.url).await;
    // Published within a few milliseconds: the first delivery's retries take longer.
    for v in ["1.0.0", "1.0.1", "1.0.2"] {
        publish_ok(&s, &alice, "foo", v).await;
    }
    let got = wait_for(&r, 6).await;
    let versions: Vec<Value> = got.iter().map(|g| g.json()["version"].clone()).collect();
    assert_eq!(versions, ["1.0.0", "1.0.0", "1.0.0", "1.0.0", "1.0.1", "1.0.2"].map(|v| json!(v)));
    assert!(got[..4].iter().all(|g| g.delivery_id == got[0].delivery_id), "{got:?}");
    assert!(got.iter().all(|g| g.signed_with(SECRET)));
}

/// The newest delivery of `hook` once it is no longer pending.
async fn finished(s: &Server, token: &str, hook: &Value) -> Value {
    let got = poll(30, || async {
        let list = deliveries_of(s, token, hook).await;
        let d = list["objects"][0].clone();
        (d["state"] == json!("delivered") || d["state"] == json!("failed")).then_some(d)
    })
    .await;
    match got {
        Some(d) => d,
        None => panic!("still pending: {}", deliveries_of(s, token, hook).await),
    }
}

/// A 4xx other than 408 and 429 fails a delivery at once; 429 and 5xx are
/// retried, up to `max_attempts`; a failed delivery does not hold up the
/// hook's next one.
async fn client_errors_fail_at_once_and_retries_give_up(backend: Backend) {
    let s = start(backend, &format!("{LOOPBACK_OK}max_attempts = 3\n")).await;
    let gone = Receiver::start_failing_with(410, 1).await;
    let limited = Receiver::start_failing_with(429, 1).await;
    let down = Receiver::start_failing_with(503, usize::MAX).await;
    let alice = s.add_user("alice", PW).await;
    let h_gone = add_hook(&s, &alice, "package", "foo", &gone.url).await;
    let h_limited = add_hook(&s, &alice, "package", "foo", &limited.url).await;
    let h_down = add_hook(&s, &alice, "package", "foo", &down.url).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;

    let d = finished(&s, &alice, &h_gone).await;
    assert_eq!((&d["state"], &d["attempts"], &d["response_code"]), (&json!("failed"), &json!(1), &json!(410)), "{d}");
    assert!(d["error"].as_str().is_some_and(|e| e.contains("410")), "{d}");
    let d = finished(&s, &alice, &h_limited).await;
    assert_eq!((&d["state"], &d["attempts"], &d["response_code"]), (&json!("delivered"), &json!(2), &json!(200)), "{d}");
    assert!(d["error"].as_str().is_some_and(|e| e.contains("429")), "{d}");
    let d = finished(&s, &alice, &h_down).await;
    assert_eq!((&d["state"], &d["attempts"], &d["response_code"]), (&json!("failed"), &json!(3), &json!(503)), "{d}");
    assert!(d["error"].as_str().is_some_and(|e| e.contains("gave up after 3 attempts")), "{d}");
    assert_eq!((gone.received().len(), limited.received().len(), down.received().len()), (1, 2, 3));
    let (_, h) = s.get(&format!("/-/npm/v1/hooks/hook/{}", h_gone["id"].as_str().unwrap()), Some(&alice)).await;
    assert_eq!((&h["delivered"], &h["response_code"]), (&json!(false), &json!(410)), "{h}");

    // The next event still reaches the hook whose delivery failed.
    publish_ok(&s, &alice, "foo", "1.0.1").await;
    let got = wait_for(&gone, 2).await;
    assert_eq!(got[1].json()["version"], json!("1.0.1"));
    assert_ne!(got[1].delivery_id, got[0].delivery_id);
    let d = poll(30, || async {
        let list = deliveries_of(&s, &alice, &h_gone).await;
        (list["objects"][0]["state"] == json!("delivered")).then(|| list["objects"][0].clone())
    })
    .await
    .expect("the second delivery recorded");
    assert_eq!((&d["attempts"], &d["response_code"]), (&json!(1), &json!(200)), "{d}");
}

/// A write that changes nothing more specific (here a dist-tag set to the
/// version it already names: only the document's rev moves) is `package:change`.
async fn a_change_with_nothing_more_specific_is_package_change(backend: Backend) {
    let s = start(backend, LOOPBACK_OK).await;
    let r = Receiver::start(0).await;
    let alice = s.add_user("alice", PW).await;
    add_hook(&s, &alice, "package", "foo", &r.url).await;
    publish_ok(&s, &alice, "foo", "1.0.0").await;
    wait_for(&r, 1).await;
    tag(&s, &alice, Method::PUT, "latest", Some("1.0.0")).await;
    let got = wait_for(&r, 2).await;
    let change = got[1].json();
    assert_eq!((&change["event"], &change["change"], &change["name"]), (&json!("package:change"), &json!({}), &json!("foo")), "{change}");
    assert!(got[1].signed_with(SECRET));
}

/// Creating, changing and deleting a hook asks the auth-policy plugins
/// (`hook-admin`); reading it does not.
async fn the_policy_plugins_are_asked_for_hook_admin(backend: Backend) {
    let mut s = start(backend, LOOPBACK_OK).await;
    let alice = s.add_user("alice", PW).await;
    let hook = add_hook(&s, &alice, "package", "foo", "http://127.0.0.1:9/a").await;
    let path = format!("/-/npm/v1/hooks/hook/{}", hook["id"].as_str().unwrap());
    // An auth-policy plugin that denies every action.
    let deny = format!(
        "[[plugins]]\nname = \"nay\"\nkind = \"auth-policy\"\npath = {:?}\ntimeout_ms = 2000\n[plugins.config]\nmode = \"deny\"\n",
        plugin("hostile").display().to_string()
    );
    s.rewrite_config(&format!("{LOOPBACK_OK}\n{deny}"));
    s.restart().await;
    let (status, body) =
        s.call(Method::POST, "/-/npm/v1/hooks/hook", Some(&alice), Some(&hook_body("package", "bar", "http://127.0.0.1:9/b"))).await;
    assert_error(status, &body, 403);
    assert!(body["reason"].as_str().unwrap().contains("hostile says no"), "{body}");
    let change = json!({"endpoint": "http://127.0.0.1:9/new", "secret": "another-secret-7"});
    let (status, body) = s.call(Method::PUT, &path, Some(&alice), Some(&change)).await;
    assert_error(status, &body, 403);
    let (status, body) = s.call(Method::DELETE, &path, Some(&alice), None).await;
    assert_error(status, &body, 403);
    let (status, body) = s.get(&path, Some(&alice)).await;
    assert_eq!((status, &body["endpoint"]), (StatusCode::OK, &json!("http://127.0.0.1:9/a")), "{body}");
    let (_, list) = s.get("/-/npm/v1/hooks", Some(&alice)).await;
    assert_eq!(list["objects"].as_array().unwrap().len(), 1, "{list}");
}
