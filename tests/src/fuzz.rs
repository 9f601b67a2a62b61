//! A route fuzzer: deterministic streams of mutated requests (random methods,
//! package-ish paths with scopes, versions, tarball files, percent-escapes and
//! long names, random headers and bodies) sent to a server on this machine,
//! with a report of what came back. Used by the hostile tests and by
//! `cairn-bench fuzz`; read a server's memory with [`rss_kib`].
//!
//! ```ignore
//! let report = fuzz::run(&server.base, 7, 5_000, &FuzzOptions::default()).await;
//! assert_eq!(report.server_errors, 0, "{report}");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// One request to send.
#[derive(Debug, Clone)]
pub struct FuzzRequest {
    pub method: String,
    /// Path and query, starting with `/` (may hold escapes, valid or not).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the generator may use besides randomness.
#[derive(Debug, Clone, Default)]
pub struct GenOptions {
    /// A valid token, sent on some requests (so writes get past authentication).
    pub token: Option<String>,
    /// Names of packages that exist, mixed in with invented ones.
    pub known_names: Vec<String>,
}

/// SplitMix64: small, fast, deterministic per seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// `n` mutated requests from `seed` (the same seed gives the same requests).
pub fn mutated_requests(seed: u64, n: usize) -> impl Iterator<Item = FuzzRequest> {
    Generator::new(seed, GenOptions::default()).take(n)
}

/// An endless stream of mutated requests.
pub struct Generator {
    rng: Rng,
    opts: GenOptions,
}

impl Generator {
    pub fn new(seed: u64, opts: GenOptions) -> Generator {
        Generator { rng: Rng::new(seed), opts }
    }
}

impl Iterator for Generator {
    type Item = FuzzRequest;
    fn next(&mut self) -> Option<FuzzRequest> {
        Some(request(&mut self.rng, &self.opts))
    }
}

const METHODS: &[&str] = &["GET", "GET", "GET", "GET", "HEAD", "PUT", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "FUZZ"];
const WORDS: &[&str] = &[
    "lodash",
    "react",
    "a",
    "x",
    "left-pad",
    "fs",
    "http",
    "node_modules",
    "favicon.ico",
    "CamelCase",
    "-",
    "_x",
    ".hidden",
    "a.b",
    "~tilde",
    "ü",
    "名前",
    "..",
    ".",
    "%",
    "@",
    "@@",
];
const SPECS: &[&str] = &[
    "latest",
    "next",
    "1.0.0",
    "0.0.1-beta.1",
    "^1.0.0",
    "~2",
    ">=1 <2",
    "*",
    "1.x || >=3",
    "1.0.0.0",
    "v1",
    "",
    "9999999999999999999.0.0",
    "01.0.0",
    "1.0.0+build",
];

fn word(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => rng.pick(WORDS).to_string(),
        1 => {
            // Long names, sometimes far past npm's 214 characters.
            let len = *rng.pick(&[50usize, 214, 215, 300, 1000, 5000]);
            (0..len).map(|_| (b'a' + rng.below(26) as u8) as char).collect()
        }
        _ => {
            let len = 1 + rng.below(12);
            let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789-._ABC~!*'()";
            (0..len).map(|_| alphabet[rng.below(alphabet.len())] as char).collect()
        }
    }
}

/// A package name, as it would appear in a path: `n`, `@s/n` or `@s%2fn`.
fn name(rng: &mut Rng, opts: &GenOptions) -> String {
    if !opts.known_names.is_empty() && rng.chance(25) {
        return opts.known_names[rng.below(opts.known_names.len())].replace('/', "%2f");
    }
    match rng.below(4) {
        0 => format!("@{}/{}", word(rng), word(rng)),
        1 => format!("@{}%2f{}", word(rng), word(rng)),
        2 => format!("@{}%2F{}", word(rng), word(rng)),
        _ => word(rng),
    }
}

fn version(rng: &mut Rng) -> String {
    if rng.chance(50) {
        rng.pick(SPECS).to_string()
    } else {
        format!("{}.{}.{}", rng.below(20), rng.below(100), rng.below(1000))
    }
}

/// Percent-escapes some characters, sometimes invalidly.
fn escape(rng: &mut Rng, s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match rng.below(40) {
            0 => out.push_str(&format!("%{:02X}", c as u32 & 0xff)),
            1 => out.push_str(rng.pick::<&str>(&["%", "%G1", "%00", "%ff%fe", "%2e%2e", "%2F", "%0a", "%20", "%C3%28", "%E2%80%AE"])),
            _ => out.push(c),
        }
    }
    out.replace('#', "%23")
}

fn path(rng: &mut Rng, opts: &GenOptions) -> String {
    let n = name(rng, opts);
    let v = version(rng);
    let tag = if rng.chance(50) { "latest".to_string() } else { word(rng) };
    let base = n.replace("%2f", "/").replace("%2F", "/").rsplit('/').next().unwrap_or("x").to_string();
    let p = match rng.below(24) {
        0..=5 => format!("/{n}"),
        6..=7 => format!("/{n}/{v}"),
        8..=9 => format!("/{n}/-/{base}-{v}.tgz"),
        10 => format!("/{n}/-/{}", word(rng)),
        11 => format!("/-/package/{n}/dist-tags"),
        12 => format!("/-/package/{n}/dist-tags/{tag}"),
        13 => format!("/-/package/{n}/{}", rng.pick(&["blocks", "collaborators", "syncs", "syncs/1", "syncs/x/log"])),
        14 => format!(
            "/-/v1/search?text={}&size={}&from={}",
            word(rng),
            rng.pick(&["20", "250", "251", "-1", "x", "99999999999"]),
            rng.below(1000)
        ),
        15 => format!("/-/user/org.couchdb.user:{}", word(rng)),
        16 => format!("/-/user/token/{}", word(rng)),
        17 => format!("/-/npm/v1/tokens{}", rng.pick(&["", "/token/abc", "/token/"])),
        18 => format!(
            "/downloads/{}/{}/{n}",
            rng.pick(&["point", "range"]),
            rng.pick(&["last-week", "last-day", "2020-01-01:2020-02-01", "x"])
        ),
        19 => format!("/_changes?since={}&limit={}", rng.below(100), rng.pick(&["1", "1000", "-5", "x"])),
        20 => format!("/{n}/-rev/{}-{}", rng.below(10), word(rng)),
        21 => format!(
            "/-/{}",
            rng.pick(&[
                "ping",
                "whoami",
                "registry",
                "registry/x",
                "scope",
                "admin/plugins",
                "v1/search",
                "npm/v1/security/advisories/bulk",
                "npm/v1/security/audits/quick",
                "_view/starredByUser?key=%22a%22"
            ])
        ),
        22 => format!("/{n}/{}", rng.pick(&["sync", "sync/log/1", "-/x/y/z"])),
        _ => {
            let depth = rng.below(6);
            (0..depth).map(|_| format!("/{}", word(rng))).collect::<String>()
        }
    };
    match p.strip_prefix('/') {
        Some(rest) if rng.chance(30) => format!("/{}", escape(rng, rest)),
        Some(_) => p,
        None => "/".into(),
    }
}

fn headers(rng: &mut Rng, opts: &GenOptions) -> Vec<(String, String)> {
    let mut h = Vec::new();
    if rng.chance(50) {
        h.push((
            "accept".into(),
            rng.pick(&[
                "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
                "application/json",
                "*/*",
                "text/html",
                ";;;q=x",
            ])
            .to_string(),
        ));
    }
    if rng.chance(50) {
        h.push(("accept-encoding".into(), rng.pick(&["gzip", "gzip, deflate, br", "identity", "br", "gzip;q=0"]).to_string()));
    }
    if rng.chance(10) {
        h.push(("if-none-match".into(), format!("W/\"{:x}\"", rng.next_u64())));
    }
    match rng.below(10) {
        0 => h.push(("authorization".into(), format!("Bearer {:032x}", rng.next_u64()))),
        1 => h.push(("authorization".into(), format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(rng.bytes(12))))),
        2 => h.push(("authorization".into(), rng.pick(&["Bearer", "Bearer ", "Negotiate x", "basic Og==", "Basic !!!"]).to_string())),
        3..=5 => {
            if let Some(t) = &opts.token {
                h.push(("authorization".into(), format!("Bearer {t}")));
            }
        }
        _ => {}
    }
    if rng.chance(20) {
        h.push((
            "content-type".into(),
            rng.pick(&["application/json", "application/octet-stream", "text/plain", "multipart/form-data; boundary=x"]).to_string(),
        ));
    }
    if rng.chance(10) {
        h.push(("npm-command".into(), rng.pick(&["install", "publish", "view", "unpublish"]).to_string()));
    }
    if rng.chance(5) {
        let len = *rng.pick(&[10usize, 64, 65, 4000]);
        h.push(("x-request-id".into(), "r".repeat(len)));
    }
    if rng.chance(5) {
        h.push(("x-fuzz".into(), "v".repeat(rng.below(8000))));
    }
    if rng.chance(3) {
        h.push(("expect".into(), "100-continue".into()));
    }
    h
}

fn publish_doc(rng: &mut Rng, opts: &GenOptions) -> Value {
    let n = name(rng, opts).replace("%2f", "/").replace("%2F", "/");
    let v = version(rng);
    let len = rng.below(512);
    let data = base64::engine::general_purpose::STANDARD.encode(rng.bytes(len));
    let mut doc = json!({
        "_id": n, "name": n, "description": word(rng),
        "dist-tags": {"latest": v},
        "versions": {v.clone(): {"name": n, "version": v, "dist": {"shasum": "x", "tarball": format!("http://x/{n}.tgz"), "integrity": "sha512-AAAA"}}},
        "_attachments": {format!("{n}-{v}.tgz"): {"content_type": "application/octet-stream", "data": data, "length": rng.below(600)}},
    });
    match rng.below(6) {
        0 => doc["_attachments"] = json!({}),
        1 => doc["versions"] = json!([1, 2]),
        2 => doc["dist-tags"] = json!({"latest": 5, "": "1"}),
        3 => doc["_rev"] = json!(format!("{}-{}", rng.below(5), word(rng))),
        _ => {}
    }
    doc
}

fn body(rng: &mut Rng, opts: &GenOptions) -> Vec<u8> {
    match rng.below(20) {
        0..=7 => Vec::new(),
        8..=10 => serde_json::to_vec(&publish_doc(rng, opts)).unwrap(),
        11 => serde_json::to_vec(&json!({"name": word(rng), "password": word(rng), "email": "a@b.c", "type": "user"})).unwrap(),
        12 => serde_json::to_vec(&json!(version(rng))).unwrap(),
        13 => {
            let len = rng.below(4096);
            rng.bytes(len)
        }
        14 => b"{\"a\":".to_vec(),
        15 => {
            let depth = 1 + rng.below(20_000);
            let mut v = vec![b'['; depth];
            v.extend(std::iter::repeat_n(b']', depth));
            v
        }
        16 => br#"{"name":"\u0000","versions":{}}"#.to_vec(),
        17 if rng.chance(30) => vec![b' '; 64 * 1024 + rng.below(1024 * 1024)],
        _ => serde_json::to_vec(&json!({"_rev": "1-x", "versions": {}, "dist-tags": {}, "maintainers": [{"name": word(rng)}]})).unwrap(),
    }
}

fn request(rng: &mut Rng, opts: &GenOptions) -> FuzzRequest {
    let method = rng.pick(METHODS).to_string();
    let path = path(rng, opts);
    let headers = headers(rng, opts);
    let body = if method == "GET" && !rng.chance(5) { Vec::new() } else { body(rng, opts) };
    FuzzRequest { method, path, headers, body }
}

/// How to send.
#[derive(Debug, Clone)]
pub struct FuzzOptions {
    /// Requests in flight at once.
    pub concurrency: usize,
    pub generator: GenOptions,
    /// Per-request timeout; a request past it counts as a transport error.
    pub timeout: Duration,
}

impl Default for FuzzOptions {
    fn default() -> Self {
        FuzzOptions { concurrency: 8, generator: GenOptions::default(), timeout: Duration::from_secs(30) }
    }
}

/// What came back.
#[derive(Debug, Default, Clone)]
pub struct FuzzReport {
    pub sent: u64,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Responses with a 5xx status.
    pub server_errors: u64,
    /// Requests that got no complete response (reset, closed, timed out).
    pub transport_errors: u64,
    /// Up to 20 examples of 5xx and transport errors: `METHOD path -> what`.
    pub examples: Vec<String>,
    pub elapsed: Duration,
}

impl fmt::Display for FuzzReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "{} requests in {:.1}s ({rate:.0}/s): {} 5xx, {} transport errors; statuses {:?}",
            self.sent,
            self.elapsed.as_secs_f64(),
            self.server_errors,
            self.transport_errors,
            self.statuses
        )?;
        for e in &self.examples {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// Sends `n` requests generated from `seed` to `base_url` (e.g. `http://127.0.0.1:7001`),
/// `opts.concurrency` at a time over keep-alive connections, and reports.
pub async fn run(base_url: &str, seed: u64, n: usize, opts: &FuzzOptions) -> FuzzReport {
    let client = reqwest::Client::builder()
        .timeout(opts.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(opts.concurrency)
        .build()
        .expect("http client");
    let source = Arc::new(Mutex::new(Generator::new(seed, opts.generator.clone()).take(n)));
    let report = Arc::new(Mutex::new(FuzzReport::default()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..opts.concurrency.max(1) {
        let (client, source, report, base) = (client.clone(), source.clone(), report.clone(), base_url.trim_end_matches('/').to_string());
        workers.push(tokio::spawn(async move {
            loop {
                let Some(req) = source.lock().unwrap().next() else { break };
                let outcome = send(&client, &base, &req).await;
                record(&mut report.lock().unwrap(), &req, outcome);
            }
        }));
    }
    for w in workers {
        w.await.expect("fuzz worker");
    }
    let mut report = report.lock().unwrap().clone();
    report.elapsed = started.elapsed();
    report
}

async fn send(client: &reqwest::Client, base: &str, req: &FuzzRequest) -> Result<u16, String> {
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut builder = client.request(method, format!("{base}{}", req.path));
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    if !req.body.is_empty() {
        builder = builder.body(req.body.clone());
    }
    let resp = builder.send().await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    resp.bytes().await.map_err(|e| format!("reading the body of a {status}: {e:?}"))?;
    Ok(status)
}

fn record(report: &mut FuzzReport, req: &FuzzRequest, outcome: Result<u16, String>) {
    report.sent += 1;
    let example = match outcome {
        Ok(status) => {
            *report.statuses.entry(status).or_default() += 1;
            if status < 500 {
                return;
            }
            report.server_errors += 1;
            format!("{status}")
        }
        Err(e) => {
            report.transport_errors += 1;
            e
        }
    };
    if report.examples.len() < 20 {
        let path: String = req.path.chars().take(200).collect();
        report.examples.push(format!("{} {path} ({} body bytes) -> {example}", req.method, req.body.len()));
    }
}

/// The resident memory of process `pid` in KiB (`VmRSS` of /proc/PID/status), if readable.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_requests() {
        let a: Vec<String> = mutated_requests(3, 200).map(|r| format!("{} {} {}", r.method, r.path, r.body.len())).collect();
        let b: Vec<String> = mutated_requests(3, 200).map(|r| format!("{} {} {}", r.method, r.path, r.body.len())).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|l| l.split(' ').nth(1).is_some_and(|p| p.starts_with('/'))));
        let c: Vec<String> = mutated_requests(4, 200).map(|r| format!("{} {} {}", r.method, r.path, r.body.len())).collect();
        assert_ne!(a, c);
    }
}
