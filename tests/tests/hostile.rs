//! The hostile suite (issue 8): what a crash-happy operator and an attacker do
//! to a registry. kill -9 during concurrent publishes, concurrent writes on one
//! package (publish, dist-tag, unpublish, deprecate) and a fuzz smoke, on both
//! backends. Assertions are about end states and status codes only; every
//! loop is bounded.
//!
//! The default sizes keep this file within the CI budget (about two minutes on
//! two cores); `CAIRN_HOSTILE_LONG=1` runs the long variants (20 kills, 200
//! race trials, 100,000 fuzzed requests).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cairn_e2e::crash::*;
use cairn_e2e::fuzz;
use cairn_e2e::publish::*;
use cairn_e2e::{both_backends, Backend, Method, Server, StatusCode};
use serde_json::{json, Value};

both_backends!(
    kill9_during_concurrent_publishes,
    publish_races_dist_tag_latest,
    dist_tag_races_unpublish,
    unpublish_and_deprecate_during_publishes,
    fuzz_smoke,
);

/// True with `CAIRN_HOSTILE_LONG=1`: more kills, trials and requests.
fn long() -> bool {
    std::env::var("CAIRN_HOSTILE_LONG").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn size(default: usize, long_size: usize) -> usize {
    if long() {
        long_size
    } else {
        default
    }
}

/// A status that must never come back, or a transport error, as a line for the failure message.
fn note_bad(bad: &Mutex<Vec<String>>, what: &str, sent: &Sent) {
    match sent {
        Ok((status, body)) if status.is_server_error() => bad.lock().unwrap().push(format!("{what}: {status} {body}")),
        Ok(_) => {}
        Err(e) => bad.lock().unwrap().push(format!("{what}: {e}")),
    }
}

// ---------------------------------------------------------------------------
// kill -9 during concurrent publishes

const KILL_WORKERS: usize = 4;

/// Kills the server with SIGKILL while publishes are in flight, restarts it
/// on the same data dir / database, and checks that every acknowledged (201)
/// version is there with its tarball, and that every version there is whole.
async fn kill9_during_concurrent_publishes(backend: Backend) {
    let mut s = Server::start(backend).await;
    let token = s.add_user("alice", PW).await;
    let mut acked = Vec::new();
    for round in 0..size(3, 20) {
        let (mut got, refused) = publish_until_killed(&mut s, &token, round).await;
        assert!(refused.is_empty(), "round {round}: publishes of new versions refused before the kill: {refused:?}");
        let acked_now = got.len();
        acked.append(&mut got);
        s.restart().await;
        let present = assert_all_present(&s, &acked).await;
        eprintln!(
            "{backend:?} round {round}: {acked_now} acknowledged before the kill; {present} versions present, {} acknowledged in all",
            acked.len()
        );
    }
    let log = s.log();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

/// Four workers publish distinct versions of two packages back to back; once
/// `target` are acknowledged the server gets SIGKILL with others in flight.
/// Returns the acknowledged publishes and any other status received (the
/// requests the kill cut off are not counted).
async fn publish_until_killed(s: &mut Server, token: &str, round: usize) -> (Vec<Acked>, Vec<Refused>) {
    let publishers = Publishers::start(&[Client::new(s, token)], KILL_WORKERS, round + 1);
    // A different point each round: after 6, 9, 12, … acknowledgements.
    let target = 6 + 3 * (round % 8);
    let reached = publishers.wait_acked(target, 60).await;
    s.kill9().await;
    let (acked, mut refused) = publishers.finish().await;
    assert!(reached, "round {round}: fewer than {target} publishes acknowledged in 60 s");
    refused.retain(|r| r.status.is_some());
    (acked, refused)
}

// ---------------------------------------------------------------------------
// Races on one package

/// Publishes and `PUT /-/package/P/dist-tags/latest` at once on one package:
/// every write succeeds (no 5xx: on PostgreSQL they used to deadlock).
async fn publish_races_dist_tag_latest(backend: Backend) {
    let s = Server::start(backend).await;
    let token = s.add_user("alice", PW).await;
    let name = "race-tags";
    publish_ok(&s, &token, name, "1.0.0").await;
    let per_worker = size(10, 100);
    let c = Client::new(&s, &token);
    let bad = Arc::new(Mutex::new(Vec::new()));
    let published = Arc::new(Mutex::new(vec!["1.0.0".to_string()]));
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (c1, bad1, published1) = (c.clone(), bad.clone(), published.clone());
        tasks.push(tokio::spawn(async move {
            let (c, bad, published) = (c1, bad1, published1);
            for i in 0..per_worker {
                let version = format!("2.{w}.{i}");
                match c.publish(name, &version).await {
                    Ok((StatusCode::CREATED, _)) => published.lock().unwrap().push(version),
                    Ok((status, _)) => bad.lock().unwrap().push(format!("publish {version}: {status}")),
                    Err(e) => bad.lock().unwrap().push(format!("publish {version}: {e}")),
                }
            }
        }));
        let (c, bad, published) = (c.clone(), bad.clone(), published.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_worker {
                let version = {
                    let p = published.lock().unwrap();
                    p[(i * 7 + w) % p.len()].clone()
                };
                let sent = c.set_tag(name, "latest", &version).await;
                match &sent {
                    Ok((status, _)) if status.is_success() => {}
                    Ok((status, body)) => bad.lock().unwrap().push(format!("dist-tag latest {version}: {status} {body}")),
                    Err(e) => bad.lock().unwrap().push(format!("dist-tag latest {version}: {e}")),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let bad = bad.lock().unwrap().clone();
    let log = s.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).take(3).collect();
    assert!(bad.is_empty(), "{} of {} writes failed: {bad:#?}\nserver log: {errors:#?}", bad.len(), 8 * per_worker);
    let doc = packument(&s, name).await;
    for v in published.lock().unwrap().iter() {
        assert!(doc["versions"][v].is_object(), "acknowledged {name}@{v} missing");
    }
    assert_tags_whole(&s, name, &doc).await;
}

/// npm's unpublish of one version (libnpmpublish) from the document read
/// with ?write=true: the document without the version and without tags
/// naming it (`latest` moved to the highest remaining), for
/// `PUT /NAME/-rev/REV`. Returns that body, REV and the version's tarball URL
/// (for the `DELETE` that follows); None when the version is not there.
fn trimmed_doc(mut doc: Value, version: &str) -> Option<(Value, String, String)> {
    let tarball = doc["versions"][version]["dist"]["tarball"].as_str()?.to_string();
    let latest = doc["dist-tags"]["latest"].clone();
    doc["versions"].as_object_mut()?.remove(version);
    doc["dist-tags"].as_object_mut()?.retain(|_, v| v != &json!(version));
    if latest == json!(version) {
        let mut remaining: Vec<String> = doc["versions"].as_object()?.keys().cloned().collect();
        remaining.sort_by_key(|v| v.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>());
        doc["dist-tags"]["latest"] = json!(remaining.last()?);
    }
    let o = doc.as_object_mut()?;
    o.remove("_attachments");
    o.remove("_revisions");
    let rev = doc["_rev"].as_str().unwrap_or_default().to_string();
    Some((doc, rev, tarball))
}

async fn put_trimmed(c: &Client, name: &str, body: &Value, rev: &str) -> Sent {
    c.send(Method::PUT, &format!("/{}/-rev/{rev}", enc(name)), Some(body)).await
}

/// The read and PUT /NAME/-rev/REV steps of an unpublish; returns the tarball URL when they succeeded.
async fn trim_version(c: &Client, name: &str, version: &str, steps: &mut Vec<(&'static str, Sent)>) -> Option<String> {
    let read = c.write_doc(name).await;
    let Ok((StatusCode::OK, doc)) = read else {
        steps.push(("GET ?write=true", read));
        return None;
    };
    let (body, rev, tarball) = trimmed_doc(doc, version)?;
    let sent = put_trimmed(c, name, &body, &rev).await;
    let ok = matches!(&sent, Ok((s, _)) if s.is_success());
    steps.push(("PUT -rev", sent));
    ok.then_some(tarball)
}

/// The DELETE /NAME/-/FILE/-rev/REV step of an unpublish.
async fn delete_tarball(c: &Client, name: &str, tarball: &str, steps: &mut Vec<(&'static str, Sent)>) {
    let read = c.write_doc(name).await;
    let Ok((StatusCode::OK, doc)) = read else {
        steps.push(("GET ?write=true", read));
        return;
    };
    let rev = doc["_rev"].as_str().unwrap_or_default();
    steps.push(("DELETE tarball", c.send(Method::DELETE, &format!("{}/-rev/{rev}", url_path(tarball)), None).await));
}

/// Sets TAG to 2.0.0 (`PUT /-/package/P/dist-tags/TAG`, or a `PUT /P` of the
/// tags without `_rev`) while 2.0.0 is unpublished: afterwards no tag names
/// a missing version and `GET /P/latest` answers.
async fn dist_tag_races_unpublish(backend: Backend) {
    let s = Server::start(backend).await;
    let token = s.add_user("alice", PW).await;
    let c = Client::new(&s, &token);
    let trials = size(24, 200);
    let bad = Mutex::new(Vec::new());
    let mut broken = Vec::new();
    for t in 0..trials {
        let name = format!("race-unpublish-{t}");
        let tag = if t % 2 == 0 { "latest" } else { "next" };
        let via_doc = (t / 2) % 2 == 1;
        publish_ok(&s, &token, &name, "1.0.0").await;
        publish_tagged(&s, &token, &name, "2.0.0", "beta").await;
        let set = async {
            if via_doc {
                let mut tags = json!({"latest": "1.0.0", "beta": "2.0.0"});
                tags[tag] = json!("2.0.0");
                let body = json!({"_id": name, "name": name, "dist-tags": tags});
                c.send(Method::PUT, &format!("/{name}"), Some(&body)).await
            } else {
                c.set_tag(&name, tag, "2.0.0").await
            }
        };
        // npm reads first; the tag is set while the trimmed document is sent.
        let (status, doc) = c.write_doc(&name).await.unwrap();
        assert_eq!(status, StatusCode::OK, "GET {name}?write=true: {doc}");
        let (body, rev, tarball) = trimmed_doc(doc, "2.0.0").expect("2.0.0 in the document");
        let (set, trimmed) = tokio::join!(set, put_trimmed(&c, &name, &body, &rev));
        note_bad(&bad, &format!("{name}: set {tag}"), &set);
        note_bad(&bad, &format!("{name}: unpublish PUT -rev"), &trimmed);
        if matches!(&trimmed, Ok((s, _)) if s.is_success()) {
            let mut steps = Vec::new();
            delete_tarball(&c, &name, &tarball, &mut steps).await;
            for (step, sent) in &steps {
                note_bad(&bad, &format!("{name}: unpublish {step}"), sent);
            }
        }
        let doc = packument(&s, &name).await;
        let dangling = dangling_tags(&doc);
        let (status, v) = s.get(&format!("/{name}/latest"), None).await;
        if !dangling.is_empty() || status != StatusCode::OK {
            let how = if via_doc { "PUT /P" } else { "PUT dist-tags" };
            let got = if status == StatusCode::OK { v["version"].clone() } else { v };
            broken.push(format!("{name} ({how} {tag}): dangling {dangling:?}, GET /P/latest {status} {got}"));
        }
    }
    let bad = bad.into_inner().unwrap();
    assert!(bad.is_empty(), "server errors: {bad:#?}");
    assert!(broken.is_empty(), "{} of {trials} trials left a dangling dist-tag: {broken:#?}", broken.len());
}

/// Up to three attempts, as npm does: a 409 means read again and retry.
async fn with_retries<F, Fut>(what: &str, mut attempt: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Sent>,
{
    let mut last = String::new();
    for _ in 0..3 {
        match attempt().await {
            Ok((status, _)) if status.is_success() => return Ok(()),
            Ok((StatusCode::CONFLICT, body)) => last = format!("409 {body}"),
            Ok((status, body)) => return Err(format!("{what}: {status} {body}")),
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
    Err(format!("{what}: still {last} after 3 attempts"))
}

/// `npm deprecate NAME@VERSION MSG`: read, set `deprecated`, PUT the document (with its `_rev`).
async fn npm_deprecate(c: &Client, name: &str, version: &str, msg: &str) -> Sent {
    let (status, mut doc) = c.write_doc(name).await?;
    if status != StatusCode::OK {
        return Ok((status, doc));
    }
    doc["versions"][version]["deprecated"] = json!(msg);
    doc.as_object_mut().unwrap().remove("_attachments");
    c.send(Method::PUT, &format!("/{}", enc(name)), Some(&doc)).await
}

/// The last step of `steps`, or a 200 when the version was already gone.
fn last_step(steps: Vec<(&'static str, Sent)>) -> Sent {
    steps.into_iter().last().map(|(_, s)| s).unwrap_or(Ok((StatusCode::OK, Value::Null)))
}

/// `npm unpublish NAME@VERSION`, each step retried on 409 as npm does.
async fn npm_unpublish(c: &Client, name: &str, version: &str) -> Result<(), String> {
    let tarball = Mutex::new(None);
    with_retries(&format!("unpublish {version} (PUT -rev)"), || async {
        let mut steps = Vec::new();
        *tarball.lock().unwrap() = trim_version(c, name, version, &mut steps).await;
        last_step(steps)
    })
    .await?;
    let Some(tarball) = tarball.into_inner().unwrap() else { return Ok(()) };
    with_retries(&format!("unpublish {version} (DELETE tarball)"), || async {
        let mut steps = Vec::new();
        delete_tarball(c, name, &tarball, &mut steps).await;
        last_step(steps)
    })
    .await
}

/// npm unpublish and npm deprecate while two workers publish new versions of
/// the same package without pause: both succeed within npm's retries, and no
/// concurrently published version is lost.
async fn unpublish_and_deprecate_during_publishes(backend: Backend) {
    let s = Server::start(backend).await;
    let token = s.add_user("alice", PW).await;
    let name = "steady";
    let ops = size(3, 20);
    for i in 1..=2 * ops {
        publish_ok(&s, &token, name, &format!("0.0.{i}")).await;
    }
    let c = Client::new(&s, &token);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let bad = Arc::new(Mutex::new(Vec::new()));
    let mut publishers = Vec::new();
    for w in 0..2 {
        let (c, stop, acked, bad) = (c.clone(), stop.clone(), acked.clone(), bad.clone());
        publishers.push(tokio::spawn(async move {
            for i in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let version = format!("1.{w}.{i}");
                match c.publish(name, &version).await {
                    Ok((StatusCode::CREATED, _)) => acked.lock().unwrap().push(version),
                    Ok((status, _)) => bad.lock().unwrap().push(format!("publish {version}: {status}")),
                    Err(e) => bad.lock().unwrap().push(format!("publish {version}: {e}")),
                }
            }
        }));
    }
    let started = poll(30, || {
        let n = acked.lock().unwrap().len();
        async move { (n >= 2).then_some(()) }
    })
    .await;
    assert!(started.is_some(), "the publishers did not get going: {:?}", bad.lock().unwrap());

    let mut failed = Vec::new();
    for j in 0..ops {
        let (dep, unp) = (format!("0.0.{}", 2 * j + 1), format!("0.0.{}", 2 * j + 2));
        failed.extend(with_retries(&format!("deprecate {dep}"), || npm_deprecate(&c, name, &dep, "hostile")).await.err());
        failed.extend(npm_unpublish(&c, name, &unp).await.err());
    }
    stop.store(true, Ordering::Relaxed);
    for p in publishers {
        p.await.unwrap();
    }
    let bad = bad.lock().unwrap().clone();
    assert!(bad.is_empty(), "publishes refused: {bad:#?}");
    assert!(failed.is_empty(), "{} of {} unpublish/deprecate operations failed: {failed:#?}", failed.len(), 2 * ops);

    let doc = packument(&s, name).await;
    for j in 0..ops {
        let (dep, unp) = (format!("0.0.{}", 2 * j + 1), format!("0.0.{}", 2 * j + 2));
        assert_eq!(doc["versions"][&dep]["deprecated"], json!("hostile"), "{name}@{dep} deprecated");
        assert!(doc["versions"].get(&unp).is_none(), "{name}@{unp} unpublished");
        let r = request(&s, Method::GET, &tarball_path(name, &unp), None, &[], None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "tarball of the unpublished {unp}");
    }
    for v in acked.lock().unwrap().iter() {
        assert!(doc["versions"][v].is_object(), "{name}@{v}, published during the unpublishes, is missing");
    }
    assert_tags_whole(&s, name, &doc).await;
}

// ---------------------------------------------------------------------------
// Fuzz smoke

/// Thousands of mutated requests (the generator of `cairn_e2e::fuzz`, with a
/// valid token and real package names mixed in): no 5xx, no panic, and the
/// server's memory stays bounded. `CAIRN_FUZZ_SEED` replays another stream.
async fn fuzz_smoke(backend: Backend) {
    let s = Server::start(backend).await;
    let token = s.add_user("alice", PW).await;
    // `@alice/…`: the scope named after the user is hers (issue 8, item 8).
    let known = ["fuzz-target", "@alice/scoped"];
    for name in known {
        publish_ok(&s, &token, name, "1.0.0").await;
        publish_tagged(&s, &token, name, "1.1.0-beta.1", "next").await;
    }
    let idle = fuzz::rss_kib(s.pid()).expect("VmRSS");
    let seed = std::env::var("CAIRN_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let n = size(3_000, 100_000);
    let opts = fuzz::FuzzOptions {
        concurrency: 8,
        generator: fuzz::GenOptions { token: Some(token), known_names: known.iter().map(|n| n.to_string()).collect() },
        ..Default::default()
    };
    let report = fuzz::run(&s.base, seed, n, &opts).await;
    let rss = fuzz::rss_kib(s.pid()).expect("VmRSS");
    eprintln!("fuzz_smoke {backend:?} seed {seed}: {report}\nRSS idle {idle} KiB, after {rss} KiB");
    // 501 is the audit route's deliberate answer when no upstream is configured
    // (`POST /-/npm/v1/security/advisories/bulk`, the only NOT_IMPLEMENTED in
    // host/src); every other 5xx is a defect.
    let failures: u64 = report.statuses.iter().filter(|(code, _)| **code >= 500 && **code != 501).map(|(_, n)| n).sum();
    assert_eq!(failures, 0, "seed {seed}: {report}");
    let not_implemented = report.examples.iter().filter(|e| e.ends_with("-> 501"));
    for e in not_implemented {
        assert!(e.contains("/-/npm/v1/security/"), "seed {seed}: a 501 outside the audit routes: {e}\n{report}");
    }
    let log = s.log();
    assert!(!log.contains("panicked"), "seed {seed}: the server panicked:\n{log}");
    // Still serving, and what was published is intact.
    for name in known {
        let doc = packument(&s, name).await;
        assert_tags_whole(&s, name, &doc).await;
    }
    // Twice the idle memory plus 64 MiB for the caches to fill (issue 8 saw
    // 62 MB grow to 457 MB over 100,000 such requests).
    let bound = 2 * idle + 64 * 1024;
    assert!(rss <= bound, "seed {seed}: RSS {rss} KiB after {n} fuzzed requests, idle {idle} KiB, bound {bound} KiB");
}
