//! Load tool for the side-by-side benchmarks (tests/bench/registry.sh).
//!
//!   cairn-bench ceiling --port P [--file F --content-type T [--gzip-file G]]
//!            [--routes R] [--threads N] [--count-file C]
//!       A bare hyper server answering from memory: the ceiling for serving
//!       these bytes on this machine. Paths listed in R (lines of
//!       `PATH<TAB>CONTENT_TYPE<TAB>FILE[<TAB>GZIP_FILE]`, e.g. a tarball or a
//!       whole tree of packuments and tarballs) get their file's bytes; every
//!       other path gets F's (404 without --file). A gzip file is sent with
//!       `Content-Encoding: gzip` when the request accepts gzip. N worker
//!       threads (default: one per core, as `cairn serve`). With C, the number
//!       of requests answered is written to C every 100 ms.
//!   cairn-bench adduser --registry URL --name N --password P
//!       Registers (or logs in) a user the way npm does; prints the token.
//!   cairn-bench seed --registry URL --token T --name PKG [--versions 100]
//!       Publishes PKG's versions one by one with realistic manifests and
//!       prints the size of the abbreviated packument.
//!   cairn-bench publish --registry URL --token T [--clients 8] --total N --prefix P
//!       N publishes from concurrent clients (client i publishes new versions
//!       of P-i), then checks that every published version is in its packument.
//!       Exits non-zero on any failed publish or lost version.
//!   cairn-bench visible --registry URL --reader URL2 --token T --name PKG [--samples 100]
//!       Publishes PKG's versions one by one through URL and after each polls
//!       URL2's abbreviated packument (another node on the same database)
//!       until the version is listed; prints p50/p99/max of publish-acknowledged
//!       to visible on the other node.
//!   cairn-bench fuzz --registry URL [--pid PID] [--requests N] [--seed S] [--concurrency 8]
//!            [--token T] [--names a,@s/b] [--rounds 1]
//!       Sends N mutated requests per round (tests/src/fuzz.rs) and prints the
//!       status counts, 5xx and transport errors, and the server's RSS (VmRSS of
//!       PID) before and after each round. Exits non-zero on any 5xx.
//!   cairn-bench receiver --port P
//!       A bare webhook receiver (tests/bench/hooks.sh): answers every POST 200
//!       and counts it with its arrival time; `GET /-/stats` prints
//!       `count=N first_ms=T last_ms=T` (ms since the epoch), `POST /-/reset` clears.
//!   cairn-bench hook-latency --registry URL --token T --port P --name PKG [--count 200]
//!       Registers a package hook on PKG pointing at a receiver of its own on
//!       port P, then publishes versions of PKG one at a time (a random pause
//!       of 0-200 ms between them), each after the previous one's delivery
//!       arrived (an idle queue), and prints the publish-to-delivery latency
//!       percentiles, from the publish's answer and from its request.
//!
//! Only ever pointed at servers on this machine (127.0.0.1).

use std::collections::HashMap;
use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use cairn_e2e::publish::{publish_body, tarball};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

/// `--key value` pairs after the subcommand.
struct Args(HashMap<String, String>);

impl Args {
    fn parse(rest: &[String]) -> Result<Args> {
        let mut map = HashMap::new();
        let mut it = rest.iter();
        while let Some(k) = it.next() {
            let key = k.strip_prefix("--").ok_or_else(|| anyhow!("expected --option, got {k:?}"))?;
            let value = it.next().ok_or_else(|| anyhow!("--{key} needs a value"))?;
            map.insert(key.to_string(), value.clone());
        }
        Ok(Args(map))
    }
    fn get(&self, key: &str) -> Result<String> {
        self.0.get(key).cloned().ok_or_else(|| anyhow!("--{key} is required"))
    }
    fn opt(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn num(&self, key: &str, default: Option<usize>) -> Result<usize> {
        match (self.0.get(key), default) {
            (Some(v), _) => v.parse().with_context(|| format!("--{key} {v:?} is not a number")),
            (None, Some(d)) => Ok(d),
            (None, None) => bail!("--{key} is required"),
        }
    }
}

fn usage() -> &'static str {
    "usage: cairn-bench ceiling --port P [--file F --content-type T [--gzip-file G]] [--routes R] [--threads N] [--count-file C]\n\
     \x20      cairn-bench adduser --registry URL --name N --password P\n\
     \x20      cairn-bench seed --registry URL --token T --name PKG [--versions 100]\n\
     \x20      cairn-bench publish --registry URL --token T [--clients 8] --total N --prefix P\n\
     \x20      cairn-bench visible --registry URL --reader URL2 --token T --name PKG [--samples 100]\n\
     \x20      cairn-bench fuzz --registry URL [--pid PID] [--requests N] [--seed S] [--concurrency 8] [--token T] [--names a,b] [--rounds 1]\n\
     \x20      cairn-bench receiver --port P\n\
     \x20      cairn-bench hook-latency --registry URL --token T --port P --name PKG [--count 200]"
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = argv.split_first() else {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    };
    let result = Args::parse(rest).and_then(|args| match cmd.as_str() {
        // The ceiling gets the same runtime as `cairn serve`: multi-threaded, one worker per core.
        "ceiling" => {
            let mut rt = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = args.opt("threads") {
                rt.worker_threads(n.parse().with_context(|| format!("--threads {n:?}"))?);
            }
            rt.enable_all().build()?.block_on(ceiling(args))
        }
        "receiver" => tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(receiver(args)),
        // The clients stay on one thread so they take as little CPU from the server as possible.
        other => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            match other {
                "adduser" => rt.block_on(adduser(args)),
                "seed" => rt.block_on(seed(args)),
                "publish" => rt.block_on(publish(args)),
                "visible" => rt.block_on(visible(args)),
                "fuzz" => rt.block_on(fuzz(args)),
                "hook-latency" => rt.block_on(hook_latency(args)),
                _ => Err(anyhow!("unknown subcommand {other:?}\n{}", usage())),
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn-bench {cmd}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- ceiling

fn accepts_gzip(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(ACCEPT_ENCODING)
        .iter()
        .any(|v| v.to_str().unwrap_or("").split(',').any(|p| p.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("gzip")))
}

/// One answer of the ceiling: its bytes, their gzip (if any), their type.
#[derive(Clone)]
struct Canned {
    body: Bytes,
    gzip: Option<Bytes>,
    content_type: HeaderValue,
}

fn read_bytes(file: &str) -> Result<Bytes> {
    Ok(Bytes::from(std::fs::read(file).with_context(|| format!("reading {file}"))?))
}

/// The answers of `--routes R`, by path.
fn read_routes(file: &str) -> Result<HashMap<String, Canned>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    let mut routes = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let [path, content_type, body, rest @ ..] = f.as_slice() else { bail!("{file}: bad line {line:?}") };
        let gzip = rest.first().map(|g| read_bytes(g)).transpose()?;
        routes.insert(path.to_string(), Canned { body: read_bytes(body)?, gzip, content_type: HeaderValue::from_str(content_type)? });
    }
    Ok(routes)
}

fn answer(canned: Option<&Canned>, gzip_ok: bool) -> Response<Full<Bytes>> {
    let Some(c) = canned else {
        let mut r = Response::new(Full::new(Bytes::from_static(b"{\"error\":\"not_found\"}")));
        *r.status_mut() = hyper::StatusCode::NOT_FOUND;
        return r;
    };
    let mut resp = match (&c.gzip, gzip_ok) {
        (Some(g), true) => {
            let mut r = Response::new(Full::new(g.clone()));
            r.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        }
        _ => Response::new(Full::new(c.body.clone())),
    };
    resp.headers_mut().insert(CONTENT_TYPE, c.content_type.clone());
    resp
}

async fn ceiling(args: Args) -> Result<()> {
    let port = args.num("port", None)?;
    let fallback = match args.opt("file") {
        Some(file) => Some(Canned {
            body: read_bytes(&file)?,
            gzip: args.opt("gzip-file").map(|g| read_bytes(&g)).transpose()?,
            content_type: HeaderValue::from_str(&args.get("content-type")?)?,
        }),
        None => None,
    };
    let routes = Arc::new(args.opt("routes").map(|r| read_routes(&r)).transpose()?.unwrap_or_default());
    // Counted only when asked: the ceiling pays for nothing else.
    let count = args.opt("count-file").map(|file| (file, Arc::new(std::sync::atomic::AtomicU64::new(0))));
    if let Some((file, count)) = count.clone() {
        tokio::spawn(async move {
            loop {
                let _ = std::fs::write(&file, count.load(std::sync::atomic::Ordering::Relaxed).to_string());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port as u16)).await?;
    eprintln!("ceiling serving {} routes (fallback: {}) on 127.0.0.1:{port}", routes.len(), fallback.is_some());
    let fallback = Arc::new(fallback);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (routes, fallback, count) = (routes.clone(), fallback.clone(), count.as_ref().map(|(_, c)| c.clone()));
        let service = service_fn(move |req: Request<Incoming>| {
            if let Some(c) = &count {
                c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let resp = answer(routes.get(req.uri().path()).or(fallback.as_ref().as_ref()), accepts_gzip(&req));
            async move { Ok::<_, Infallible>(resp) }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

// ---------------------------------------------------------------- clients

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(60)).pool_max_idle_per_host(64).no_proxy().build().expect("HTTP client")
}

fn base(args: &Args) -> Result<String> {
    Ok(args.get("registry")?.trim_end_matches('/').to_string())
}

/// `/name` with a scope's `/` escaped, as npm sends it.
fn pkg_path(name: &str) -> String {
    format!("/{}", name.replace('/', "%2f"))
}

async fn adduser(args: Args) -> Result<()> {
    let base = base(&args)?;
    let (name, password) = (args.get("name")?, args.get("password")?);
    let body = json!({
        "_id": format!("org.couchdb.user:{name}"),
        "name": name,
        "password": password,
        "email": format!("{name}@example.com"),
        "type": "user",
        "roles": [],
        "date": "2025-01-01T00:00:00.000Z",
    });
    let resp = client().put(format!("{base}/-/user/org.couchdb.user:{name}")).json(&body).send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        bail!("PUT /-/user/org.couchdb.user:{name}: {status}: {text}");
    }
    let value: Value = serde_json::from_str(&text).with_context(|| format!("answer is not JSON: {text}"))?;
    let token = value["token"].as_str().ok_or_else(|| anyhow!("no token in {text}"))?;
    println!("{token}");
    Ok(())
}

const README: &str = "# bench-pkg\n\nA package published by `cairn-bench seed` for the benchmarks.\n\n\
## Install\n\n```sh\nnpm install bench-pkg\n```\n\n## Usage\n\n```js\nconst bench = require('bench-pkg');\n\
bench.run({ iterations: 1000, warmup: 100 });\n```\n\n## Options\n\n| option | default | meaning |\n|---|---|---|\n\
| iterations | 1000 | how many rounds |\n| warmup | 100 | rounds not measured |\n| reporter | `text` | `text` or `json` |\n\n\
## License\n\nMIT\n";

/// The package.json fields of one version, shaped like a typical library's
/// (dependency ranges drift a little from version to version).
fn realistic_manifest(name: &str, i: usize) -> Value {
    json!({
        "description": "Runs functions in a loop and reports how long they took",
        "keywords": ["benchmark", "performance", "timing", "test"],
        "main": "lib/index.js",
        "types": "lib/index.d.ts",
        "bin": {"bench-run": "bin/cli.js"},
        "scripts": {"build": "tsc -p .", "test": "node --test", "lint": "eslint ."},
        "repository": {"type": "git", "url": format!("git+https://git.example.com/bench/{name}.git")},
        "author": "Bench Author <bench@example.com>",
        "license": "MIT",
        "homepage": format!("https://git.example.com/bench/{name}#readme"),
        "bugs": {"url": format!("https://git.example.com/bench/{name}/issues")},
        "engines": {"node": ">=18"},
        "dependencies": {
            "debug": format!("^4.3.{}", i % 5),
            "semver": format!("^7.{}.0", 3 + i % 4),
            "chalk": "^4.1.2",
            "ms": "^2.1.3",
            "yargs": format!("^17.{}.0", i % 8),
        },
        "devDependencies": {"typescript": "^5.4.0", "eslint": "^8.57.0", "@types/node": "^20.11.0"},
    })
}

fn version_of(i: usize) -> String {
    format!("1.{}.{}", i / 10, i % 10)
}

/// One publish body: a real tarball and the document libnpmpublish sends.
fn publish_doc(base: &str, name: &str, version: &str, i: usize) -> Vec<u8> {
    let tgz = tarball(name, version, realistic_manifest(name, i));
    let mut body = publish_body(name, version, &tgz, None, base);
    body["versions"][version]["readme"] = json!(README.replace("bench-pkg", name));
    body["versions"][version]["readmeFilename"] = json!("README.md");
    serde_json::to_vec(&body).expect("JSON")
}

async fn put_doc(http: &reqwest::Client, base: &str, token: &str, name: &str, body: Vec<u8>) -> Result<()> {
    let resp = http
        .put(format!("{base}{}", pkg_path(name)))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("npm-command", "publish")
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        bail!("PUT {}: {status}: {}", pkg_path(name), text.chars().take(300).collect::<String>());
    }
    resp.bytes().await?;
    Ok(())
}

async fn get_doc(http: &reqwest::Client, base: &str, name: &str, accept: &str) -> Result<Bytes> {
    let resp = http.get(format!("{base}{}", pkg_path(name))).header("accept", accept).send().await?;
    let status = resp.status();
    if !status.is_success() {
        bail!("GET {}: {status}", pkg_path(name));
    }
    Ok(resp.bytes().await?)
}

async fn seed(args: Args) -> Result<()> {
    let base = base(&args)?;
    let (token, name) = (args.get("token")?, args.get("name")?);
    let count = args.num("versions", Some(100))?;
    let http = client();
    let start = Instant::now();
    for i in 0..count {
        let version = version_of(i);
        put_doc(&http, &base, &token, &name, publish_doc(&base, &name, &version, i))
            .await
            .with_context(|| format!("publishing {name}@{version}"))?;
    }
    let took = start.elapsed();
    let abbreviated = get_doc(&http, &base, &name, ABBREVIATED).await?;
    let full = get_doc(&http, &base, &name, "application/json").await?;
    let doc: Value = serde_json::from_slice(&abbreviated).context("abbreviated packument is not JSON")?;
    let served = doc["versions"].as_object().map_or(0, |v| v.len());
    if served != count {
        bail!("the abbreviated packument of {name} lists {served} versions, {count} were published");
    }
    eprintln!("seeded {count} versions of {name} in {:.1} s", took.as_secs_f64());
    println!("abbreviated_bytes={} full_bytes={} versions={served}", abbreviated.len(), full.len());
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[idx.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

/// Publish on one node, poll another until the version shows: how long it took.
async fn visible(args: Args) -> Result<()> {
    let base = base(&args)?;
    let reader = args.get("reader")?.trim_end_matches('/').to_string();
    let (token, name) = (args.get("token")?, args.get("name")?);
    let samples = args.num("samples", Some(100))?;
    let http = client();
    let mut took = Vec::with_capacity(samples);
    for i in 0..samples {
        let version = version_of(i);
        put_doc(&http, &base, &token, &name, publish_doc(&base, &name, &version, i)).await?;
        let published = Instant::now();
        loop {
            let doc: Value = match get_doc(&http, &reader, &name, ABBREVIATED).await {
                Ok(b) => serde_json::from_slice(&b).context("packument is not JSON")?,
                Err(_) => Value::Null, // 404 before the first version shows
            };
            if doc["versions"].get(&version).is_some() {
                took.push(published.elapsed());
                break;
            }
            if published.elapsed() > Duration::from_secs(30) {
                bail!("{name}@{version} not visible on {reader} 30 s after its publish on {base}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    took.sort();
    println!(
        "visible_p50_ms={:.2} visible_p99_ms={:.2} visible_max_ms={:.2} samples={samples}",
        percentile(&took, 50.0),
        percentile(&took, 99.0),
        took.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    );
    Ok(())
}

async fn publish(args: Args) -> Result<()> {
    let base = base(&args)?;
    let token = args.get("token")?;
    let prefix = args.get("prefix")?;
    let clients = args.num("clients", Some(8))?.max(1);
    let total = args.num("total", None)?;

    // Build every body before the clock starts: tarballs and hashes are client work.
    // (package, [(version, publish body)])
    type Plan = (String, Vec<(String, Vec<u8>)>);
    let mut plans: Vec<Plan> = Vec::new();
    for c in 0..clients {
        let name = format!("{prefix}-{c}");
        let n = total / clients + usize::from(c < total % clients);
        let docs = (0..n).map(|i| (version_of(i), publish_doc(&base, &name, &version_of(i), i))).collect();
        plans.push((name, docs));
    }

    let http = client();
    let token = Arc::new(token);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (name, docs) in plans {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(docs.len());
            let mut published = Vec::new();
            let mut failures = Vec::new();
            for (version, body) in docs {
                let t = Instant::now();
                match put_doc(&http, &base, &token, &name, body).await {
                    Ok(()) => {
                        latencies.push(t.elapsed());
                        published.push(version);
                    }
                    Err(e) => failures.push(format!("{name}@{version}: {e:#}")),
                }
            }
            (name, latencies, published, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut published_by_pkg = Vec::new();
    let mut failures = Vec::new();
    for t in tasks {
        let (name, l, p, f) = t.await?;
        latencies.extend(l);
        published_by_pkg.push((name, p));
        failures.extend(f);
    }
    let wall = start.elapsed();
    latencies.sort();
    let ok = latencies.len();

    // No lost version: every acknowledged publish is in its package's document.
    let mut missing = 0usize;
    for (name, versions) in &published_by_pkg {
        let doc: Value = match get_doc(&http, &base, name, "application/json").await {
            Ok(b) => serde_json::from_slice(&b).context("packument is not JSON")?,
            Err(e) if versions.is_empty() => {
                eprintln!("{name}: {e:#} (nothing was published)");
                continue;
            }
            Err(e) => return Err(e),
        };
        let listed = doc["versions"].as_object().cloned().unwrap_or_default();
        for v in versions {
            if !listed.contains_key(v) {
                missing += 1;
                eprintln!("LOST: {name}@{v} was acknowledged but is not in the packument");
            }
        }
    }
    for f in failures.iter().take(10) {
        eprintln!("FAILED: {f}");
    }
    println!(
        "publishes_per_s={:.1} p50_ms={:.2} p99_ms={:.2} ok={ok} failed={} lost={missing} clients={clients} wall_s={:.2}",
        ok as f64 / wall.as_secs_f64(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        failures.len(),
        wall.as_secs_f64()
    );
    if !failures.is_empty() || missing > 0 {
        bail!("{} publishes failed, {missing} acknowledged versions lost", failures.len());
    }
    Ok(())
}

// ---------------------------------------------------------------- fuzz

async fn fuzz(args: Args) -> Result<()> {
    use cairn_e2e::fuzz::{self, FuzzOptions, GenOptions};
    let base = base(&args)?;
    let pid = args.opt("pid").map(|p| p.parse::<u32>()).transpose().context("--pid")?;
    let requests = args.num("requests", Some(10_000))?;
    let seed = args.num("seed", Some(1))? as u64;
    let rounds = args.num("rounds", Some(1))?.max(1);
    let names = args.opt("names").map(|n| n.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()).unwrap_or_default();
    let opts = FuzzOptions {
        concurrency: args.num("concurrency", Some(8))?.max(1),
        generator: GenOptions { token: args.opt("token"), known_names: names },
        timeout: Duration::from_secs(30),
    };
    let rss = || pid.and_then(fuzz::rss_kib).map_or("?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
    println!("round=0 requests=0 rss_mb={}", rss());
    let mut server_errors = 0;
    for round in 1..=rounds {
        let report = fuzz::run(&base, seed.wrapping_add(round as u64), requests, &opts).await;
        eprintln!("{report}");
        server_errors += report.server_errors;
        println!(
            "round={round} requests={} rss_mb={} server_errors={} transport_errors={} per_s={:.0}",
            round * requests,
            rss(),
            report.server_errors,
            report.transport_errors,
            report.sent as f64 / report.elapsed.as_secs_f64()
        );
    }
    if server_errors > 0 {
        bail!("{server_errors} responses were 5xx");
    }
    Ok(())
}

// ---------------------------------------------------------------- webhooks

/// Milliseconds since the epoch, with a fraction.
fn epoch_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_secs_f64() * 1000.0
}

/// Deliveries a receiver counted: how many, first and last arrival (epoch ms).
#[derive(Default)]
struct Arrivals {
    count: u64,
    first_ms: f64,
    last_ms: f64,
}

/// Serves `listener` as a webhook receiver: every POST is answered 200 and
/// counted (and `on_arrival` told its time); `GET /-/stats` and `POST /-/reset`.
async fn serve_receiver(
    listener: tokio::net::TcpListener,
    arrivals: Arc<std::sync::Mutex<Arrivals>>,
    on_arrival: Option<tokio::sync::mpsc::UnboundedSender<f64>>,
) -> Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (arrivals, on_arrival) = (arrivals.clone(), on_arrival.clone());
        let service = service_fn(move |req: Request<Incoming>| {
            let (arrivals, on_arrival) = (arrivals.clone(), on_arrival.clone());
            async move {
                use http_body_util::BodyExt;
                let (path, method) = (req.uri().path().to_string(), req.method().clone());
                // Read the whole body, as a real receiver must before it answers.
                let _ = req.into_body().collect().await;
                let now = epoch_ms();
                let text = match (method.as_str(), path.as_str()) {
                    ("GET", "/-/stats") => {
                        let a = arrivals.lock().unwrap();
                        format!("count={} first_ms={:.3} last_ms={:.3}\n", a.count, a.first_ms, a.last_ms)
                    }
                    ("POST", "/-/reset") => {
                        *arrivals.lock().unwrap() = Arrivals::default();
                        String::new()
                    }
                    _ => {
                        let mut a = arrivals.lock().unwrap();
                        if a.count == 0 {
                            a.first_ms = now;
                        }
                        a.count += 1;
                        a.last_ms = now;
                        if let Some(tx) = &on_arrival {
                            let _ = tx.send(now);
                        }
                        String::new()
                    }
                };
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
            }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn receiver(args: Args) -> Result<()> {
    let port = args.num("port", None)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port as u16)).await?;
    eprintln!("receiver listening on 127.0.0.1:{port}");
    serve_receiver(listener, Arc::default(), None).await
}

/// A small deterministic generator for the pauses between publishes.
fn next_pause(state: &mut u64) -> Duration {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    Duration::from_millis(*state % 201)
}

async fn hook_latency(args: Args) -> Result<()> {
    let base = base(&args)?;
    let (token, name) = (args.get("token")?, args.get("name")?);
    let (port, count) = (args.num("port", None)?, args.num("count", Some(200))?.max(1));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port as u16)).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(serve_receiver(listener, Arc::default(), Some(tx)));
    let http = client();
    let docs: Vec<(String, Vec<u8>)> = (0..count).map(|i| (version_of(i), publish_doc(&base, &name, &version_of(i), i))).collect();
    // A hook may name a package before it exists.
    let hook = json!({"type": "package", "name": name, "endpoint": format!("http://127.0.0.1:{port}/hook"), "secret": "bench-secret"});
    let resp = http.post(format!("{base}/-/npm/v1/hooks/hook")).bearer_auth(&token).json(&hook).send().await?;
    if !resp.status().is_success() {
        bail!("creating the hook: {}: {}", resp.status(), resp.text().await.unwrap_or_default());
    }
    let (mut from_answer, mut from_request) = (Vec::with_capacity(count), Vec::with_capacity(count));
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for (version, body) in docs {
        tokio::time::sleep(next_pause(&mut seed)).await;
        let sent = epoch_ms();
        put_doc(&http, &base, &token, &name, body).await.with_context(|| format!("publishing {name}@{version}"))?;
        let answered = epoch_ms();
        let arrived = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .map_err(|_| anyhow!("no delivery of {name}@{version} within 30 s"))?
            .ok_or_else(|| anyhow!("the receiver stopped"))?;
        // A delivery can beat the client's reading of the answer; that counts as 0.
        from_answer.push(Duration::from_secs_f64((arrived - answered).max(0.0) / 1000.0));
        from_request.push(Duration::from_secs_f64((arrived - sent).max(0.0) / 1000.0));
    }
    server.abort();
    from_answer.sort();
    from_request.sort();
    println!(
        "deliveries={count} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} from_request_p50_ms={:.2} from_request_p99_ms={:.2}",
        percentile(&from_answer, 50.0),
        percentile(&from_answer, 99.0),
        from_answer.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
        percentile(&from_request, 50.0),
        percentile(&from_request, 99.0),
    );
    Ok(())
}
