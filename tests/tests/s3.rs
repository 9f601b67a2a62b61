//! Cairn on S3-compatible object storage (moto's server): `npm publish` and
//! `npm install` with `[blobs] kind = "s3"`, a start refused on a missing
//! bucket, the S3 server stopped mid-run (503 with the error body, nothing
//! half-written, service again after its restart), and `cairn blobs copy`
//! moving an installation from local files to S3, resumably and verified.

use std::path::Path;
use std::time::Duration;

use cairn_e2e::clients::{isolated_command, Run};
use cairn_e2e::publish::{poll, publish_ok, publish_with, tarball_path, PW};
use cairn_e2e::s3::{self, Moto};
use cairn_e2e::{assert_error, both_backends, Backend, Server, ServerOptions, StatusCode};
use serde_json::json;

both_backends!(npm_publish_and_install_on_s3, an_s3_outage_answers_503_and_recovers, blobs_copy_moves_an_installation);

/// The keys in `bucket` (moto answers unsigned listings).
async fn bucket_keys(endpoint: &str, bucket: &str) -> Vec<String> {
    let xml = reqwest::get(format!("{endpoint}/{bucket}?list-type=2")).await.unwrap().text().await.unwrap();
    xml.split("<Key>").skip(1).filter_map(|s| s.split("</Key>").next()).map(str::to_string).collect()
}

async fn npm(dir: &Path, cwd: &Path, args: &[&str]) -> Run {
    let mut cmd = isolated_command("npm", &dir.join("npmrc"), &dir.join("globalnpmrc"), &dir.join("cache"));
    cmd.current_dir(cwd).env("HOME", dir).args(args);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output()).await.expect("npm in time").expect("run npm");
    Run::from_output(format!("npm {}", args.join(" ")), out, String::new())
}

/// A throwaway npm config for `s` with `token`, and an empty global config.
fn npm_home(s: &Server, token: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("npmrc"), format!("registry={}/\n//{}/:_authToken={token}\n", s.base, s.addr)).unwrap();
    std::fs::write(dir.path().join("globalnpmrc"), "").unwrap();
    dir
}

async fn npm_publish_and_install_on_s3(backend: Backend) {
    let endpoint = s3::endpoint();
    let bucket = s3::create_bucket(&endpoint).await;
    let s = Server::start_with(ServerOptions::new(backend).tail(&s3::blobs_toml(&endpoint, &bucket))).await;
    assert_eq!(s.get("/-/ready", None).await, (StatusCode::OK, json!({"ok": true})));
    let token = s.add_user("alice", PW).await;

    let publisher = npm_home(&s, &token);
    let pkg = publisher.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    std::fs::write(pkg.join("package.json"), r#"{"name":"on-s3","version":"1.0.0","main":"index.js"}"#).unwrap();
    std::fs::write(pkg.join("index.js"), "module.exports = 's3';\n").unwrap();
    npm(publisher.path(), &pkg, &["publish"]).await.assert_ok();

    let keys = bucket_keys(&endpoint, &bucket).await;
    assert!(keys.iter().any(|k| k.starts_with("cairn/tarballs/on-s3/on-s3-1.0.0")), "the tarball is in the bucket: {keys:?}");
    assert!(!s.data_dir.path().join("blobs/tarballs").exists(), "nothing in the local blob directory");

    let reader = npm_home(&s, &token);
    let project = reader.path().join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(project.join("package.json"), r#"{"name":"project","version":"1.0.0"}"#).unwrap();
    npm(reader.path(), &project, &["install", "on-s3"]).await.assert_ok();
    let installed = std::fs::read_to_string(project.join("node_modules/on-s3/index.js")).unwrap();
    assert_eq!(installed, "module.exports = 's3';\n");

    // An HTTP publish and the tarball read back byte for byte, HEAD with its length.
    let tgz = publish_ok(&s, &token, "on-s3", "1.0.1").await;
    let resp = s.client.get(s.url(&tarball_path("on-s3", "1.0.1"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), tgz);
    let head = s.client.head(s.url(&tarball_path("on-s3", "1.0.1"))).send().await.unwrap();
    assert_eq!(head.headers()["content-length"].to_str().unwrap(), tgz.len().to_string());
    assert!(!s.log().contains("moto-secret"), "no credential in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_fails_at_start() {
    let endpoint = s3::endpoint();
    let bucket = format!("cairn-missing-{}", uuid::Uuid::new_v4().simple());
    let opts = ServerOptions::new(Backend::Sqlite).tail(&s3::blobs_toml(&endpoint, &bucket));
    let Err(log) = Server::try_start_with(opts).await else { panic!("cairn started on a missing bucket") };
    assert!(log.contains(&format!("bucket {bucket} does not exist")), "{log}");
    assert!(!log.contains("moto-secret"), "no credential in the error: {log}");

    // Nothing listens there: the message says the bucket cannot be reached.
    let opts = ServerOptions::new(Backend::Sqlite).tail(&s3::blobs_toml("http://127.0.0.1:9", "cairn-nowhere"));
    let Err(log) = Server::try_start_with(opts).await else { panic!("cairn started without its object store") };
    assert!(log.contains("bucket cairn-nowhere cannot be listed"), "{log}");
}

async fn an_s3_outage_answers_503_and_recovers(backend: Backend) {
    let mut moto = Moto::start().await;
    let bucket = s3::create_bucket(&moto.endpoint()).await;
    let s = Server::start_with(ServerOptions::new(backend).tail(&s3::blobs_toml(&moto.endpoint(), &bucket))).await;
    let token = s.add_user("alice", PW).await;
    publish_ok(&s, &token, "outage", "1.0.0").await;

    moto.stop();
    let (status, body) = s.get(&tarball_path("outage", "1.0.0"), None).await;
    assert_error(status, &body, 503);
    let p = publish_with(&s, Some(&token), "outage", "1.0.1", json!({}), None).await;
    assert_error(p.status, &p.body, 503);
    assert!(p.body["reason"].as_str().unwrap().contains("blob store"), "{}", p.body);
    assert!(!p.body.to_string().contains(&moto.port.to_string()), "the storage address is not answered: {}", p.body);
    let (status, body) = s.get("/-/ready", None).await;
    assert_error(status, &body, 503);
    assert_eq!(s.get("/-/health", None).await, (StatusCode::OK, json!({"ok": true})));
    // The database still answers, and the failed publish left no version.
    let (status, doc) = s.get("/outage", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["versions"].as_object().unwrap().keys().collect::<Vec<_>>(), ["1.0.0"]);

    moto.restart().await;
    s3::put_bucket(&moto.endpoint(), &bucket).await;
    let ready = poll(30, || async { (s.get("/-/ready", None).await.0 == StatusCode::OK).then_some(()) }).await;
    assert!(ready.is_some(), "ready again after the object store came back");
    let tgz = publish_ok(&s, &token, "outage", "1.0.1").await;
    let resp = s.client.get(s.url(&tarball_path("outage", "1.0.1"))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), tgz);
    assert!(!s.log().contains("moto-secret"), "no credential in the log");
}

/// `cairn blobs copy` stdout, asserting success.
async fn copy(s: &Server) -> String {
    let out = s.cli(&["blobs", "copy", "--from", "local", "--to", "s3"], "").await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "cairn blobs copy failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

async fn blobs_copy_moves_an_installation(backend: Backend) {
    let endpoint = s3::endpoint();
    let bucket = s3::create_bucket(&endpoint).await;
    let mut s = Server::start(backend).await;
    // The S3 keys beside kind = "local": the copy reads them, the server does not.
    s.rewrite_config(&s3::blobs_toml(&endpoint, &bucket).replace("kind = \"s3\"", "kind = \"local\""));
    s.restart().await;
    let token = s.add_user("alice", PW).await;
    let mut tarballs = Vec::new();
    for (name, version) in [("moved-a", "1.0.0"), ("@sc/moved-b", "2.0.0")] {
        tarballs.push((name, version, publish_ok(&s, &token, name, version).await));
    }
    s.stop_with("TERM").await;

    let first = copy(&s).await;
    assert!(first.contains("[2/2]") && first.matches("copied and verified").count() == 2, "{first}");
    assert!(first.contains("done: 2 copied"), "{first}");
    assert_eq!(bucket_keys(&endpoint, &bucket).await.len(), 2);
    let again = copy(&s).await;
    assert!(again.contains("done: 0 copied (0 bytes), 2 already there"), "{again}");

    // An object whose bytes differ at equal size is copied again (compared by digest).
    let local = s.data_dir.path().join("blobs/tarballs/moved-a");
    let file = std::fs::read_dir(&local).unwrap().next().unwrap().unwrap().path();
    let original = std::fs::read(&file).unwrap();
    let mut changed = original.clone();
    changed[0] ^= 0xff;
    std::fs::write(&file, &changed).unwrap();
    let recopied = copy(&s).await;
    assert!(recopied.contains("done: 1 copied") && recopied.contains("1 already there"), "{recopied}");
    std::fs::write(&file, &original).unwrap();
    assert!(copy(&s).await.contains("done: 1 copied"), "the original bytes go back");

    // Resumed after more publishes: only the new object is copied.
    s.restart().await;
    tarballs.push(("moved-a", "1.1.0", publish_ok(&s, &token, "moved-a", "1.1.0").await));
    s.stop_with("TERM").await;
    let resumed = copy(&s).await;
    assert!(resumed.contains("[3/3]") && resumed.contains("done: 1 copied") && resumed.contains("2 already there"), "{resumed}");

    // The server on S3 serves every tarball; the local files are not read.
    s.rewrite_config(&s3::blobs_toml(&endpoint, &bucket));
    std::fs::rename(s.data_dir.path().join("blobs"), s.data_dir.path().join("blobs-old")).unwrap();
    s.restart().await;
    for (name, version, tgz) in &tarballs {
        let resp = s.client.get(s.url(&tarball_path(name, version))).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{name}@{version}");
        assert_eq!(&resp.bytes().await.unwrap().to_vec(), tgz, "{name}@{version}");
    }
    assert_eq!(s.get("/-/ready", None).await.0, StatusCode::OK);
}
