//! Upstream registries and scopes: `/-/registry[...]` and `/-/scope[...]`, the
//! `[[registries]]` of the config, and the upstream `auth_token` (sent
//! upstream, never shown).

use std::collections::BTreeSet;

use cairn_e2e::publish::*;
use cairn_e2e::upstream::*;
use cairn_e2e::{assert_error, both_backends, Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::{json, Value};

both_backends!(
    registry_crud,
    registry_validation,
    registry_pagination,
    scopes,
    config_registries_listed,
    auth_token_never_shown,
    url_credentials_never_shown,
);

async fn post(s: &Server, token: Option<&str>, path: &str, body: &Value) -> (StatusCode, Value) {
    s.call(Method::POST, path, token, Some(body)).await
}

/// Creates a registry as `token`; asserts 201 and returns its JSON.
async fn create_registry(s: &Server, token: &str, body: Value) -> Value {
    let (status, resp) = post(s, Some(token), "/-/registry", &body).await;
    assert_eq!(status, StatusCode::CREATED, "POST /-/registry {body}: {resp}");
    assert_eq!(resp["ok"], json!(true), "{resp}");
    assert_eq!(resp["registryId"], resp["registry"]["registryId"], "{resp}");
    resp["registry"].clone()
}

async fn registry_crud(backend: Backend) {
    let s = Server::start(backend).await;
    let admin = s.add_admin("admin", PW).await;
    let alice = s.add_user("alice", PW).await;
    let body = json!({
        "name": "mirror",
        "host": "http://127.0.0.1:9/",
        "type": "cnpm",
        "changeStream": "http://127.0.0.1:9/_changes",
    });

    // Only admins create registries.
    let (status, resp) = post(&s, None, "/-/registry", &body).await;
    assert_error(status, &resp, 401);
    let (status, resp) = post(&s, Some(&alice), "/-/registry", &body).await;
    assert_error(status, &resp, 403);

    let r = create_registry(&s, &admin, body.clone()).await;
    let id = r["registryId"].as_str().expect("registryId").to_string();
    assert!(!id.is_empty());
    assert_eq!(r["name"], json!("mirror"));
    assert_eq!(r["host"].as_str().unwrap().trim_end_matches('/'), "http://127.0.0.1:9");
    assert_eq!(r["type"], json!("cnpm"));
    assert_eq!(r["changeStream"], json!("http://127.0.0.1:9/_changes"));
    assert_eq!(r["userPrefix"], json!("mirror:"), "default user prefix is `<name>:`");
    assert_eq!(r["default"], json!(false));
    assert_eq!(r["authTokenSet"], json!(false));
    assert_eq!(r["fromConfig"], json!(false));

    // Shown by id and by name.
    for key in [id.as_str(), "mirror"] {
        let (status, shown) = s.get(&format!("/-/registry/{key}"), Some(&admin)).await;
        assert_eq!(status, StatusCode::OK, "GET /-/registry/{key}: {shown}");
        assert_eq!(shown["registryId"], json!(id));
        assert_eq!(shown["name"], json!("mirror"));
        assert_eq!(shown["type"], json!("cnpm"));
    }
    let (status, list) = s.get("/-/registry", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], json!(1), "{list}");
    assert_eq!(list["data"][0]["registryId"], json!(id), "{list}");

    // The same name twice.
    let (status, resp) = post(&s, Some(&admin), "/-/registry", &json!({"name": "mirror", "host": "http://127.0.0.1:10"})).await;
    assert_error(status, &resp, 409);

    // PATCH: admins only; changes what it names.
    let patch = json!({"host": "http://127.0.0.1:11", "default": true, "type": "npm"});
    let (status, resp) = s.call(Method::PATCH, &format!("/-/registry/{id}"), None, Some(&patch)).await;
    assert_error(status, &resp, 401);
    let (status, resp) = s.call(Method::PATCH, &format!("/-/registry/{id}"), Some(&alice), Some(&patch)).await;
    assert_error(status, &resp, 403);
    let (status, resp) = s.call(Method::PATCH, &format!("/-/registry/{id}"), Some(&admin), Some(&patch)).await;
    assert_eq!(status, StatusCode::OK, "PATCH: {resp}");
    assert_eq!(resp["registry"]["host"].as_str().unwrap().trim_end_matches('/'), "http://127.0.0.1:11", "{resp}");
    assert_eq!(resp["registry"]["default"], json!(true), "{resp}");
    assert_eq!(resp["registry"]["type"], json!("npm"), "{resp}");
    let (_, shown) = s.get(&format!("/-/registry/{id}"), Some(&admin)).await;
    assert_eq!(shown["host"].as_str().unwrap().trim_end_matches('/'), "http://127.0.0.1:11", "{shown}");
    assert_eq!(shown["default"], json!(true), "{shown}");
    assert_eq!(shown["name"], json!("mirror"), "unchanged fields stay: {shown}");
    assert_eq!(shown["changeStream"], json!("http://127.0.0.1:9/_changes"), "{shown}");
    let (status, resp) = s.call(Method::PATCH, "/-/registry/nosuchregistry", Some(&admin), Some(&patch)).await;
    assert_error(status, &resp, 404);
    // Renaming onto another registry's name.
    create_registry(&s, &admin, json!({"name": "taken", "host": "http://127.0.0.1:12"})).await;
    let (status, resp) = s.call(Method::PATCH, &format!("/-/registry/{id}"), Some(&admin), Some(&json!({"name": "taken"}))).await;
    assert_error(status, &resp, 409);
    let (_, shown) = s.get(&format!("/-/registry/{id}"), Some(&admin)).await;
    assert_eq!(shown["name"], json!("mirror"), "{shown}");
    let (status, resp) = s.call(Method::DELETE, "/-/registry/taken", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "DELETE by name: {resp}");

    // DELETE: admins only; then it is gone.
    let (status, resp) = s.call(Method::DELETE, &format!("/-/registry/{id}"), None, None).await;
    assert_error(status, &resp, 401);
    let (status, resp) = s.call(Method::DELETE, &format!("/-/registry/{id}"), Some(&alice), None).await;
    assert_error(status, &resp, 403);
    let (status, resp) = s.call(Method::DELETE, &format!("/-/registry/{id}"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "DELETE: {resp}");
    let (status, resp) = s.get(&format!("/-/registry/{id}"), Some(&admin)).await;
    assert_error(status, &resp, 404);
    let (status, resp) = s.call(Method::DELETE, &format!("/-/registry/{id}"), Some(&admin), None).await;
    assert_error(status, &resp, 404);
    let (_, list) = s.get("/-/registry", Some(&admin)).await;
    assert_eq!(list["total"], json!(0), "{list}");
    let (status, resp) = s.get("/-/registry/nosuchregistry", Some(&admin)).await;
    assert_error(status, &resp, 404);
}

async fn registry_validation(backend: Backend) {
    let s = Server::start(backend).await;
    let admin = s.add_admin("admin", PW).await;
    for (what, body) in [
        ("host not a URL", json!({"name": "a", "host": "not a url"})),
        ("host not http(s)", json!({"name": "a", "host": "ftp://127.0.0.1/"})),
        ("unknown type", json!({"name": "a", "host": "http://127.0.0.1:9", "type": "bogus"})),
        ("no host", json!({"name": "a"})),
        ("no name", json!({"host": "http://127.0.0.1:9"})),
        ("empty name", json!({"name": "", "host": "http://127.0.0.1:9"})),
        ("host not a string", json!({"name": "a", "host": 5})),
    ] {
        let (status, resp) = post(&s, Some(&admin), "/-/registry", &body).await;
        assert_error(status, &resp, 422);
        let _ = what;
    }
    let (_, list) = s.get("/-/registry", Some(&admin)).await;
    assert_eq!(list["total"], json!(0), "nothing invalid was stored: {list}");

    let r = create_registry(&s, &admin, json!({"name": "ok", "host": "http://127.0.0.1:9"})).await;
    assert_eq!(r["type"], json!("npm"), "type defaults to npm: {r}");
    let id = r["registryId"].as_str().unwrap();
    for body in [json!({"host": "nope"}), json!({"type": "bogus"}), json!({"host": "ftp://x/"})] {
        let (status, resp) = s.call(Method::PATCH, &format!("/-/registry/{id}"), Some(&admin), Some(&body)).await;
        assert_error(status, &resp, 422);
    }
    let (_, shown) = s.get(&format!("/-/registry/{id}"), Some(&admin)).await;
    assert_eq!(shown["host"].as_str().unwrap().trim_end_matches('/'), "http://127.0.0.1:9", "a refused PATCH changes nothing: {shown}");
    assert_eq!(shown["type"], json!("npm"));
}

async fn registry_pagination(backend: Backend) {
    let s = Server::start(backend).await;
    let admin = s.add_admin("admin", PW).await;
    let names: Vec<String> = (0..22).map(|i| format!("reg{i:02}")).collect();
    for n in &names {
        create_registry(&s, &admin, json!({"name": n, "host": "http://127.0.0.1:9"})).await;
    }
    let page = |q: String| {
        let s = &s;
        let admin = admin.clone();
        async move { s.get(&format!("/-/registry{q}"), Some(&admin)).await }
    };
    // Default: 20 from index 0.
    let (status, all) = page(String::new()).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["total"], json!(22));
    assert_eq!(all["data"].as_array().unwrap().len(), 20, "default pageSize is 20");
    let (_, second) = page("?pageIndex=1".into()).await;
    assert_eq!(second["data"].as_array().unwrap().len(), 2, "{second}");

    // Pages of 5 cover every registry once.
    let mut seen = Vec::new();
    for index in 0..5 {
        let (status, p) = page(format!("?pageSize=5&pageIndex={index}")).await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!(p["total"], json!(22), "{p}");
        let data = p["data"].as_array().unwrap();
        assert_eq!(data.len(), if index < 4 { 5 } else { 2 }, "page {index}: {p}");
        seen.extend(data.iter().map(|r| r["name"].as_str().unwrap().to_string()));
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 22, "pages overlap: {seen:?}");
    assert_eq!(unique.into_iter().cloned().collect::<Vec<_>>(), names);
    let (_, beyond) = page("?pageSize=5&pageIndex=9".into()).await;
    assert_eq!(beyond["data"], json!([]), "{beyond}");
    assert_eq!(beyond["total"], json!(22), "{beyond}");

    let (status, p) = page("?pageSize=1".into()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p["data"].as_array().unwrap().len(), 1);
    let (status, p) = page("?pageSize=100".into()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p["data"].as_array().unwrap().len(), 22);
    for bad in ["?pageSize=0", "?pageSize=101", "?pageSize=-1", "?pageSize=abc", "?pageIndex=-1", "?pageIndex=x"] {
        let (status, resp) = page(bad.into()).await;
        assert_error(status, &resp, 422);
    }
}

async fn scopes(backend: Backend) {
    let s = Server::start(backend).await;
    let admin = s.add_admin("admin", PW).await;
    let alice = s.add_user("alice", PW).await;
    let a = create_registry(&s, &admin, json!({"name": "a", "host": "http://127.0.0.1:9"})).await;
    let b = create_registry(&s, &admin, json!({"name": "b", "host": "http://127.0.0.1:10"})).await;
    let (a_id, b_id) = (a["registryId"].as_str().unwrap().to_string(), b["registryId"].as_str().unwrap().to_string());

    let body = json!({"name": "@x", "registryId": a_id});
    let (status, resp) = post(&s, None, "/-/scope", &body).await;
    assert_error(status, &resp, 401);
    let (status, resp) = post(&s, Some(&alice), "/-/scope", &body).await;
    assert_error(status, &resp, 403);
    let (status, resp) = post(&s, Some(&admin), "/-/scope", &body).await;
    assert_eq!(status, StatusCode::CREATED, "POST /-/scope: {resp}");
    let x_id = resp["scopeId"].as_str().expect("scopeId").to_string();
    assert_eq!(resp["scope"]["name"], json!("@x"), "{resp}");
    assert_eq!(resp["scope"]["registryId"], json!(a_id), "{resp}");
    let (status, resp) = post(&s, Some(&admin), "/-/scope", &json!({"name": "@y", "registryId": a_id})).await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");

    // Invalid scopes, unknown registries, duplicates.
    for bad in ["x", "@", "@a/b", "", "@Has Space"] {
        let (status, resp) = post(&s, Some(&admin), "/-/scope", &json!({"name": bad, "registryId": a_id})).await;
        assert_error(status, &resp, 422);
    }
    let (status, resp) = post(&s, Some(&admin), "/-/scope", &json!({"name": "@z", "registryId": "nosuchregistry"})).await;
    assert_error(status, &resp, 422);
    let (status, resp) = post(&s, Some(&admin), "/-/scope", &json!({"name": "@x", "registryId": a_id})).await;
    assert_error(status, &resp, 409);
    let (status, resp) = post(&s, Some(&admin), "/-/scope", &json!({"name": "@x", "registryId": b_id})).await;
    assert_error(status, &resp, 409);

    // Listed under their registry (by id or name).
    for key in [a_id.as_str(), "a"] {
        let (status, list) = s.get(&format!("/-/registry/{key}/scopes"), Some(&admin)).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let names: Vec<&str> = list["data"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["@x", "@y"], "{list}");
        assert_eq!(list["total"], json!(2), "{list}");
    }
    let (_, list) = s.get(&format!("/-/registry/{b_id}/scopes"), Some(&admin)).await;
    assert_eq!(list["data"], json!([]), "{list}");
    let (status, resp) = s.get("/-/registry/nosuchregistry/scopes", Some(&admin)).await;
    assert_error(status, &resp, 404);

    // DELETE /-/scope/:id.
    let (status, resp) = s.call(Method::DELETE, &format!("/-/scope/{x_id}"), None, None).await;
    assert_error(status, &resp, 401);
    let (status, resp) = s.call(Method::DELETE, &format!("/-/scope/{x_id}"), Some(&alice), None).await;
    assert_error(status, &resp, 403);
    let (status, resp) = s.call(Method::DELETE, &format!("/-/scope/{x_id}"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let (status, resp) = s.call(Method::DELETE, &format!("/-/scope/{x_id}"), Some(&admin), None).await;
    assert_error(status, &resp, 404);
    let (_, list) = s.get(&format!("/-/registry/{a_id}/scopes"), Some(&admin)).await;
    let names: Vec<&str> = list["data"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["@y"], "{list}");
    // The name is free again.
    let (status, resp) = post(&s, Some(&admin), "/-/scope", &json!({"name": "@x", "registryId": b_id})).await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");

    // Deleting a registry deletes its scopes: @y can then go to another registry.
    let (status, resp) = s.call(Method::DELETE, &format!("/-/registry/{a_id}"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let (status, resp) = post(&s, Some(&admin), "/-/scope", &json!({"name": "@y", "registryId": b_id})).await;
    assert_eq!(status, StatusCode::CREATED, "@y was left behind by its deleted registry: {resp}");
    let (_, list) = s.get(&format!("/-/registry/{b_id}/scopes"), Some(&admin)).await;
    let names: Vec<&str> = list["data"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["@x", "@y"], "{list}");
}

async fn config_registries_listed(backend: Backend) {
    let tail = "[[registries]]\nname = \"cfg-main\"\nhost = \"http://127.0.0.1:9/\"\ntype = \"cnpm\"\ndefault = true\nscopes = [\"@cfg\", \"@other\"]\n\n\
                [[registries]]\nname = \"cfg-second\"\nhost = \"http://127.0.0.1:10\"\nuser_prefix = \"second/\"\n";
    let mut s = Server::start_with(ServerOptions::new(backend).tail(tail)).await;
    let admin = s.add_admin("admin", PW).await;
    for round in 0..2 {
        let (status, list) = s.get("/-/registry", Some(&admin)).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list["total"], json!(2), "round {round}: {list}");
        let data = list["data"].as_array().unwrap();
        let find = |n: &str| data.iter().find(|r| r["name"] == json!(n)).cloned().unwrap_or_else(|| panic!("{n} not listed: {list}"));
        let main = find("cfg-main");
        assert_eq!(main["host"].as_str().unwrap().trim_end_matches('/'), "http://127.0.0.1:9");
        assert_eq!(main["type"], json!("cnpm"));
        assert_eq!(main["default"], json!(true));
        assert_eq!(main["fromConfig"], json!(true));
        assert_eq!(main["userPrefix"], json!("cfg-main:"));
        let second = find("cfg-second");
        assert_eq!(second["type"], json!("npm"));
        assert_eq!(second["default"], json!(false));
        assert_eq!(second["userPrefix"], json!("second/"));
        let (status, scopes) = s.get("/-/registry/cfg-main/scopes", Some(&admin)).await;
        assert_eq!(status, StatusCode::OK, "{scopes}");
        let names: Vec<&str> = scopes["data"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["@cfg", "@other"], "{scopes}");
        // Seeding again at a restart changes nothing.
        s.restart().await;
    }
}

const CONFIG_TOKEN: &str = "cfgtok-5d1c9a77e3b04f2aa0c1";
const API_TOKEN: &str = "apitok-0b3e6f1d2c4a48e8b9d7";
const PATCHED_TOKEN: &str = "patchtok-9e8d7c6b5a4f43e2d1c0";

#[track_caller]
fn assert_no_token(what: &str, text: &str) {
    for t in [CONFIG_TOKEN, API_TOKEN, PATCHED_TOKEN] {
        assert!(!text.contains(t), "{what} shows an upstream auth token: {text}");
    }
}

async fn auth_token_never_shown(backend: Backend) {
    let fake = FakeUpstream::start().await;
    let tgz = fake.add_version("tok-a", "1.0.0", json!({}));
    fake.add_version("tok-b", "1.0.0", json!({}));
    let tail = fake.registry_toml("fake", &format!("auth_token = {CONFIG_TOKEN:?}"));
    let s = Server::start_with(ServerOptions::new(backend).tail(&tail)).await;
    let admin = s.add_admin("admin", PW).await;
    let bob = s.add_user("bob", PW).await;

    // The configured registry: listed and shown without its token.
    let (_, list) = s.get("/-/registry", Some(&admin)).await;
    assert_no_token("GET /-/registry", &list.to_string());
    assert_eq!(list["data"][0]["authTokenSet"], json!(true), "{list}");
    let (_, shown) = s.get("/-/registry/fake", Some(&admin)).await;
    assert_no_token("GET /-/registry/fake", &shown.to_string());
    assert_eq!(shown["authTokenSet"], json!(true), "{shown}");

    // A registry created with a token, then given another: never echoed.
    let (status, created) =
        post(&s, Some(&admin), "/-/registry", &json!({"name": "api", "host": fake.base, "type": "npm", "authToken": API_TOKEN})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_no_token("POST /-/registry", &created.to_string());
    assert_eq!(created["registry"]["authTokenSet"], json!(true), "{created}");
    let (status, patched) = s.call(Method::PATCH, "/-/registry/api", Some(&admin), Some(&json!({"authToken": PATCHED_TOKEN}))).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_no_token("PATCH /-/registry/api", &patched.to_string());
    for path in ["/-/registry", "/-/registry/api", "/-/registry/fake", "/-/registry/api/scopes"] {
        for token in [Some(admin.as_str()), Some(bob.as_str()), None] {
            let (_, body) = s.get(path, token).await;
            assert_no_token(path, &body.to_string());
        }
    }

    // Yet the tokens go upstream, as Bearer, on packument and tarball requests.
    let id_a = sync_ok(&s, &bob, "tok-a", json!({})).await;
    wait_success(&s, "tok-a", &id_a, 30).await;
    let id_b = sync_ok(&s, &bob, "tok-b", json!({"registryName": "api"})).await;
    wait_success(&s, "tok-b", &id_b, 30).await;
    for (name, token) in [("tok-a", CONFIG_TOKEN), ("tok-b", PATCHED_TOKEN)] {
        for path in [packument_path(name), tarball_path(name, "1.0.0")] {
            let auths = fake.authorizations(&path);
            assert!(!auths.is_empty(), "no request on {path}");
            for a in auths {
                assert_eq!(a.as_deref(), Some(format!("Bearer {token}").as_str()), "Authorization sent for {path}");
            }
        }
    }
    let r = request(&s, Method::GET, "/tok-a/-/tok-a-1.0.0.tgz", None, &[], None).await;
    assert_eq!(r.bytes, tgz, "synced tarball");

    // A tarball hosted elsewhere than the registry never gets the token.
    let elsewhere = FakeUpstream::start().await;
    fake.add_version("tok-c", "1.0.0", json!({}));
    elsewhere.add_version("tok-c", "1.0.0", json!({}));
    let moved = format!("{}{}", elsewhere.base, tarball_path("tok-c", "1.0.0"));
    fake.edit("tok-c", |doc| doc["versions"]["1.0.0"]["dist"]["tarball"] = json!(moved));
    let id_c = sync_ok(&s, &bob, "tok-c", json!({})).await;
    wait_success(&s, "tok-c", &id_c, 30).await;
    assert_eq!(fake.authorizations(&packument_path("tok-c")), vec![Some(format!("Bearer {CONFIG_TOKEN}"))]);
    assert_eq!(fake.hits(&tarball_path("tok-c", "1.0.0")), 0);
    assert_eq!(elsewhere.authorizations(&tarball_path("tok-c", "1.0.0")), vec![None], "the token went to a third-party tarball host");

    // Not in the task logs, not in the server log.
    for (name, id) in [("tok-a", &id_a), ("tok-b", &id_b)] {
        assert_no_token("the sync log", &task_log(&s, name, id).await);
        let (_, t) = s.get(&format!("/-/package/{name}/syncs/{id}"), None).await;
        assert_no_token("the sync task", &t.to_string());
    }
    assert_no_token("the server log", &s.log());
}

const URL_PASSWORD: &str = "urlpass-4c8e1f02b7";

/// Issue 8 #7: `user:password@` inside a registry URL goes upstream only: not
/// to `GET /-/registry` (anonymous or not), the audit proxy's error, task logs
/// or the server log.
async fn url_credentials_never_shown(backend: Backend) {
    let fake = FakeUpstream::start().await;
    fake.add_version("cred-a", "1.0.0", json!({}));
    let with_creds = |base: &str| base.replacen("http://", &format!("http://upuser:{URL_PASSWORD}@"), 1);
    // The default registry is down (nothing listens on port 9), so the audit proxy fails.
    let tail = format!(
        "[[registries]]\nname = \"down\"\nhost = {:?}\ndefault = true\n\n[[registries]]\nname = \"fake\"\nhost = {:?}\n",
        with_creds("http://127.0.0.1:9"),
        with_creds(&fake.base)
    );
    let s = Server::start_with(ServerOptions::new(backend).tail(&tail)).await;
    let bob = s.add_user("bob", PW).await;
    for path in ["/-/registry", "/-/registry/down", "/-/registry/fake"] {
        for token in [Some(bob.as_str()), None] {
            let (status, body) = s.get(path, token).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let text = body.to_string();
            assert!(!text.contains(URL_PASSWORD) && !text.contains("upuser"), "{path} shows URL credentials: {text}");
        }
    }
    let (_, shown) = s.get("/-/registry/down", None).await;
    assert_eq!(shown["host"], json!("http://127.0.0.1:9"));

    let (status, body) = post(&s, Some(&bob), "/-/npm/v1/security/advisories/bulk", &json!({"lodash": ["4.17.0"]})).await;
    assert!(status.is_server_error(), "{status} {body}");
    // The reason names the registry (not its URL), and never its credentials.
    assert!(body["reason"].as_str().is_some_and(|r| r.contains("registry down")), "{body}");
    assert!(!body.to_string().contains(URL_PASSWORD), "the audit error shows URL credentials: {body}");

    // The credentials do go upstream (as Basic auth), and nowhere else.
    let id = sync_ok(&s, &bob, "cred-a", json!({"registryName": "fake"})).await;
    wait_success(&s, "cred-a", &id, 30).await;
    let auths = fake.authorizations(&packument_path("cred-a"));
    assert!(!auths.is_empty() && auths.iter().all(|a| a.as_deref().is_some_and(|a| a.starts_with("Basic "))), "{auths:?}");
    let log = task_log(&s, "cred-a", &id).await;
    assert!(log.contains("upstream: fake"), "{log}");
    assert!(!log.contains(URL_PASSWORD), "the task log shows URL credentials: {log}");
    assert!(!s.log().contains(URL_PASSWORD), "the server log shows URL credentials:\n{}", s.log());
}
