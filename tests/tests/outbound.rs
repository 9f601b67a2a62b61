//! The outbound HTTP policy (`host/src/outbound.rs`) seen from outside:
//! bodies past the cap are refused while streaming, credentials go only to
//! the origin of the registry they belong to, redirects to another origin
//! carry none.

use cairn_e2e::publish::{poll, tarball_path, PW};
use cairn_e2e::upstream::*;
use cairn_e2e::{both_backends, Backend, Server, ServerOptions};
use serde_json::json;

both_backends!(changes_body_over_cap, change_stream_on_other_origin_gets_no_token, redirect_to_other_port_gets_no_token);

const TOKEN: &str = "outbound-secret-token-5c1e";
const OWN_TOKEN: &str = "outbound-own-token-77ab";

/// A registry table with a change stream.
fn registry(name: &str, host: &str, stream: &str, token: &str, default: bool) -> String {
    format!("[[registries]]\nname = {name:?}\nhost = {host:?}\ntype = \"npm\"\ndefault = {default}\nauth_token = {token:?}\nchange_stream = {stream:?}\n")
}

/// A `_changes` feed that never ends: the follower stops reading at
/// `max_body_bytes`, logs why, keeps running and polls again. Without the
/// cap it would read until the timeout (30 s), hundreds of MB.
async fn changes_body_over_cap(backend: Backend) {
    let fake = FakeUpstream::start().await;
    fake.set_changes(Changes::Endless);
    let stream = format!("{}/_changes", fake.base);
    let opts = ServerOptions::new(backend)
        .toml("changes_poll_ms = 200\nupstream_timeout_secs = 30\nmax_body_bytes = 65536")
        .tail(&registry("endless", &fake.base, &stream, TOKEN, true));
    let s = Server::start_with(opts).await;
    let refused = poll(20, || async {
        let log = s.log();
        let lines = log.lines().filter(|l| l.contains("following the changes feed failed") && l.contains("max_body_bytes")).count();
        (lines >= 2).then_some(log)
    })
    .await;
    let Some(log) = refused else { panic!("no two refusals of the endless feed within 20 s:\n{}", tail(&s.log(), 30)) };
    assert!(!log.contains("timed out"), "the feed was refused at the cap, not read until the timeout:\n{}", tail(&log, 30));
    assert!(!log.contains(TOKEN), "the token is not logged");
    // What the fake handed to the connection: the cap plus socket buffers, not the stream.
    let sent = fake.endless_sent();
    assert!(sent < 32 << 20, "the follower read {sent} bytes of an endless feed with max_body_bytes = 65536");
    // Still serving.
    let (status, _) = s.get("/-/ping", None).await;
    assert!(status.is_success(), "ping after the refusals: {status}");
}

/// A registry whose change stream is on another origin than its host: the
/// follower asks that stream without the registry's token. A registry whose
/// stream is on its own host sends its token there (the control).
async fn change_stream_on_other_origin_gets_no_token(backend: Backend) {
    let (host, elsewhere, own) = (FakeUpstream::start().await, FakeUpstream::start().await, FakeUpstream::start().await);
    let tables = [
        registry("split", &host.base, &format!("{}/_changes", elsewhere.base), TOKEN, true),
        registry("own", &own.base, &format!("{}/_changes", own.base), OWN_TOKEN, false),
    ];
    let opts = ServerOptions::new(backend).toml("changes_poll_ms = 200\nupstream_timeout_secs = 5").tail(&tables.concat());
    let s = Server::start_with(opts).await;
    let polled = poll(20, || async { (elsewhere.hits("/_changes") >= 2 && own.hits("/_changes") >= 2).then_some(()) }).await;
    assert!(polled.is_some(), "both feeds polled twice within 20 s:\n{}", tail(&s.log(), 30));
    let foreign = elsewhere.authorizations("/_changes");
    assert!(foreign.iter().all(Option::is_none), "the other origin received credentials: {foreign:?}");
    let expected = Some(format!("Bearer {OWN_TOKEN}"));
    let mine = own.authorizations("/_changes");
    assert!(mine.iter().all(|a| *a == expected), "the registry's own stream gets its token: {mine:?}");
    assert_eq!(host.hits("/_changes"), 0, "the host itself is not asked for changes");
}

/// The registry (with a token) redirects the packument and the tarball to
/// another loopback port: the sync follows both, and no credentials reach
/// that port; the registry's own port gets the token.
async fn redirect_to_other_port_gets_no_token(backend: Backend) {
    let (registry_fake, other) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let name = "redirected-pkg";
    other.add_version(name, "1.0.0", json!({}));
    let tgz = tarball_path(name, "1.0.0");
    // The packument moves to the other port; its tarball URL is on the
    // registry again, which redirects it to the other port too.
    registry_fake.redirect(&format!("/{name}"), &format!("{}/{name}", other.base));
    registry_fake.redirect(&tgz, &format!("{}{tgz}", other.base));
    let on_registry = format!("{}{tgz}", registry_fake.base);
    other.edit(name, |doc| doc["versions"]["1.0.0"]["dist"]["tarball"] = json!(on_registry));
    let opts = ServerOptions::new(backend).tail(&registry_fake.registry_toml("fake", &format!("auth_token = {TOKEN:?}")));
    let s = Server::start_with(opts).await;
    let bob = s.add_user("bob", PW).await;
    let id = sync_ok(&s, &bob, name, json!({})).await;
    wait_success(&s, name, &id, 30).await;

    let bearer = Some(format!("Bearer {TOKEN}"));
    for path in [format!("/{name}"), tgz.clone()] {
        assert_eq!(registry_fake.authorizations(&path), vec![bearer.clone()], "the registry's own origin gets the token on {path}");
        assert_eq!(other.authorizations(&path), vec![None], "no credentials follow the redirect of {path} to another port");
    }
    let log = task_log(&s, name, &id).await;
    assert!(!log.contains(TOKEN) && !s.log().contains(TOKEN), "the token is not logged");
}
