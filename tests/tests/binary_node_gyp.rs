//! A real consumer of the binary mirror: `node-gyp` (the copy bundled with
//! npm) installs Node.js headers from Cairn's `/-/binary/node/` with
//! `--dist-url`, and builds a small N-API addon against them. The fake dist
//! site serves a headers tarball made from this machine's own Node.js
//! headers, for the running Node.js version, with its `SHASUMS256.txt`;
//! nothing else is reachable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use cairn_e2e::fake_http::{FakeHttp, Reply, Seen};
use cairn_e2e::publish::{poll, PW};
use cairn_e2e::{both_backends, Backend, Method, Server, ServerOptions, StatusCode};
use sha2::{Digest, Sha256};

both_backends!(node_gyp_installs_headers_from_the_mirror);

fn node(args: &[&str]) -> String {
    let out = Command::new("node").args(args).output().expect("node is needed for this test");
    assert!(out.status.success(), "node {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `node-v<ver>/include/node/...` from the local headers, gzipped.
fn headers_tarball(version: &str, include: &Path) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all(format!("node-{version}/include/node"), include).expect("tar the headers");
    tar.into_inner().unwrap().finish().unwrap()
}

fn autoindex(entries: &[(&str, Option<usize>)]) -> Vec<u8> {
    let mut html = String::from("<html><body><pre><a href=\"../\">../</a>\n");
    for (name, size) in entries {
        let size = size.map_or("-".to_string(), |s| s.to_string());
        html.push_str(&format!("<a href=\"{name}\">{name}</a>                    01-Jan-2024 10:00     {size}\n"));
    }
    html.push_str("</pre></body></html>\n");
    html.into_bytes()
}

fn node_gyp_js() -> PathBuf {
    let out = Command::new("npm").args(["root", "-g"]).output().expect("npm is needed for this test");
    let js = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("npm/node_modules/node-gyp/bin/node-gyp.js");
    assert!(js.exists(), "{} not found", js.display());
    js
}

/// Runs node-gyp with no proxy and a home of its own.
fn node_gyp(dir: &Path, home: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("node");
    cmd.arg(node_gyp_js()).args(args).current_dir(dir).env("HOME", home).env("npm_config_cache", home.join("npm-cache"));
    for var in
        ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "npm_config_proxy", "npm_config_https_proxy", "npm_config_nodedir"]
    {
        cmd.env_remove(var);
    }
    cmd.output().expect("run node-gyp")
}

async fn node_gyp_installs_headers_from_the_mirror(backend: Backend) {
    let version = node(&["-p", "process.version"]);
    let include = PathBuf::from(node(&["-p", "require('path').resolve(process.execPath, '../../include/node')"]));
    assert!(include.join("node.h").exists() && include.join("common.gypi").exists(), "no Node.js headers in {}", include.display());
    let tarball = headers_tarball(&version, &include);
    let name = format!("node-{version}-headers.tar.gz");
    let sums = format!("{}  {name}\n", hex::encode(Sha256::digest(&tarball)));
    let site: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
    {
        let mut s = site.lock().unwrap();
        s.insert("/dist/".into(), autoindex(&[(&format!("{version}/"), None)]));
        s.insert(format!("/dist/{version}/"), autoindex(&[("SHASUMS256.txt", Some(sums.len())), (&name, Some(tarball.len()))]));
        s.insert(format!("/dist/{version}/SHASUMS256.txt"), sums.into_bytes());
        s.insert(format!("/dist/{version}/{name}"), tarball.clone());
    }
    let dist =
        FakeHttp::start(move |q: &Seen| site.lock().unwrap().get(&q.path).map_or_else(|| Reply::status(404), |b| Reply::ok(b.clone())))
            .await;
    let tail = format!("[[binaries]]\ncategory = \"node\"\ntype = \"node\"\ndist_url = \"{}/dist/\"\n", dist.base);
    let s = Server::start_with(ServerOptions::new(backend).tail(&tail)).await;
    let admin = s.add_admin("admin", PW).await;
    let (status, body) = s.call(Method::POST, "/-/binary/node/sync", Some(&admin), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let done = poll(60, || async {
        let (_, t) = s.get(&format!("/-/binary/node/syncs/{}", body["taskId"].as_str().unwrap()), None).await;
        (t["state"] == "success").then_some(())
    })
    .await;
    assert!(done.is_some(), "the sync did not succeed:\n{}", s.log());
    dist.clear();

    let work = tempfile::tempdir().unwrap();
    let (devdir, home, addon) = (work.path().join("devdir"), work.path().join("home"), work.path().join("addon"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&addon).unwrap();
    let dist_url = format!("--dist-url={}/-/binary/node", s.base);
    let (devdir_arg, target) = (format!("--devdir={}", devdir.display()), format!("--target={}", version.trim_start_matches('v')));
    let out = node_gyp(work.path(), &home, &["install", &dist_url, &devdir_arg, &target]);
    let log = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "node-gyp install failed:\n{log}\ncairn:\n{}", s.log());
    let installed = devdir.join(version.trim_start_matches('v'));
    assert!(installed.join("include/node/node.h").exists(), "no headers in {}:\n{log}", installed.display());
    assert!(installed.join("include/node/common.gypi").exists());
    assert_eq!(dist.requests(), Vec::<String>::new(), "node-gyp reached only Cairn");

    // A tiny N-API addon, built against those headers and loaded.
    std::fs::write(addon.join("binding.gyp"), r#"{"targets": [{"target_name": "hello", "sources": ["hello.c"]}]}"#).unwrap();
    std::fs::write(
        addon.join("hello.c"),
        "#include <node_api.h>\n\
         static napi_value Hello(napi_env env, napi_callback_info info) {\n\
           napi_value s; napi_create_string_utf8(env, \"from the mirror\", NAPI_AUTO_LENGTH, &s); return s; }\n\
         NAPI_MODULE_INIT() {\n\
           napi_value fn; napi_create_function(env, \"hello\", NAPI_AUTO_LENGTH, Hello, NULL, &fn);\n\
           napi_set_named_property(env, exports, \"hello\", fn); return exports; }\n",
    )
    .unwrap();
    let out = node_gyp(&addon, &home, &["rebuild", &dist_url, &devdir_arg, &target]);
    let log = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "node-gyp rebuild failed:\n{log}");
    let said = node(&["-p", &format!("require({:?}).hello()", addon.join("build/Release/hello.node").display().to_string())]);
    assert_eq!(said, "from the mirror");
}
