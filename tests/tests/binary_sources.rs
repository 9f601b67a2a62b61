//! The binary mirror's other sources and views: `bucket` (a fake S3 answering
//! ListObjectsV2 and version 1 listings two entries a page), `github` (a fake
//! releases API, two releases a page with `Link` headers), the HTML browsing
//! pages (a hostile object name escaped), and `api` resyncs that ask only for
//! what changed (`since`, requests counted through a proxy) or walk an
//! upstream that ignores it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cairn_e2e::fake_http::{FakeHttp, Reply, Seen};
use cairn_e2e::publish::{poll, PW};
use cairn_e2e::{both_backends, Backend, Method, Server, ServerOptions, StatusCode};
use serde_json::{json, Value};

both_backends!(bucket_source, github_source, github_digests_are_verified, html_browsing, api_resync_asks_since, api_resync_without_since);

// ------------------------------------------------------------------ helpers

fn binary_toml(category: &str, kind: &str, keys: &str) -> String {
    format!("[[binaries]]\ncategory = {category:?}\ndescription = \"{category} files\"\ntype = {kind:?}\n{keys}\n")
}

async fn server(backend: Backend, tail: &str) -> Server {
    Server::start_with(ServerOptions::new(backend).tail(tail)).await
}

/// Syncs `category` as `admin`, waits for the end; (task, log).
async fn sync(s: &Server, admin: &str, category: &str) -> (Value, String) {
    let (status, body) = s.call(Method::POST, &format!("/-/binary/{category}/sync"), Some(admin), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["taskId"].as_str().unwrap().to_string();
    let task = poll(60, || async {
        let (_, t) = s.get(&format!("/-/binary/{category}/syncs/{id}"), None).await;
        matches!(t["state"].as_str(), Some("success" | "error")).then_some(t)
    })
    .await
    .unwrap_or_else(|| panic!("the sync did not end:\n{}", s.log()));
    let (_, log) = s.get(&format!("/-/binary/{category}/syncs/{id}/log"), None).await;
    (task, log.as_str().unwrap_or_default().to_string())
}

fn names(list: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        list.as_array().unwrap_or_else(|| panic!("not a list: {list}")).iter().map(|e| e["name"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

fn entry<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array().unwrap().iter().find(|e| e["name"] == name).unwrap_or_else(|| panic!("{name} not in {list}"))
}

async fn bytes(s: &Server, path: &str, accept: &str) -> (StatusCode, String, Vec<u8>) {
    let resp = s.client.get(s.url(path)).header("accept", accept).send().await.unwrap();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (resp.status(), ct, resp.bytes().await.unwrap().to_vec())
}

// ------------------------------------------------------------------ fake S3

/// Objects by key: (body, LastModified, advertised size when it lies).
type Objects = Arc<Mutex<BTreeMap<String, (Vec<u8>, String, Option<usize>)>>>;

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// A ListObjects answer for `/v2/` (ListObjectsV2, continuation tokens) or
/// `/v1/` (version 1, markers), two entries a page.
fn list_objects(objects: &Objects, v2: bool, q: &Seen) -> Reply {
    let prefix = q.param("prefix").unwrap_or_default();
    assert_eq!(q.param("delimiter").as_deref(), Some("/"), "{}", q.query);
    let mut entries: BTreeMap<String, Option<(usize, String)>> = BTreeMap::new();
    for (key, (body, date, lie)) in objects.lock().unwrap().iter() {
        let Some(rest) = key.strip_prefix(&prefix) else { continue };
        match rest.find('/') {
            Some(i) => entries.insert(format!("{prefix}{}", &rest[..=i]), None),
            None => entries.insert(key.clone(), Some((lie.unwrap_or(body.len()), date.clone()))),
        };
    }
    let all: Vec<_> = entries.into_iter().collect();
    let start = if v2 {
        q.param("continuation-token").map_or(0, |t| t.trim_start_matches("tok-").parse().unwrap())
    } else {
        q.param("marker").map_or(0, |m| all.iter().position(|(k, _)| *k > m).unwrap_or(all.len()))
    };
    let page = &all[start.min(all.len())..(start + 2).min(all.len())];
    let more = start + 2 < all.len();
    let mut xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix>{}</Prefix><IsTruncated>{more}</IsTruncated>", xml_escape(&prefix));
    if more && v2 {
        xml.push_str(&format!("<NextContinuationToken>tok-{}</NextContinuationToken>", start + 2));
    }
    if more && !v2 {
        xml.push_str(&format!("<NextMarker>{}</NextMarker>", xml_escape(&page.last().unwrap().0)));
    }
    for (key, object) in page {
        match object {
            None => xml.push_str(&format!("<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>", xml_escape(key))),
            Some((size, date)) => xml.push_str(&format!(
                "<Contents><Key>{}</Key><LastModified>{date}</LastModified><ETag>\"0123\"</ETag><Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                xml_escape(key)
            )),
        }
    }
    xml.push_str("</ListBucketResult>");
    Reply::ok(xml).header("content-type", "application/xml")
}

async fn fake_s3(objects: Objects) -> FakeHttp {
    FakeHttp::start(move |q: &Seen| {
        let (bucket, key) = q.path.trim_start_matches('/').split_once('/').unwrap_or(("", ""));
        if key.is_empty() && q.param("list-type").is_some() {
            return list_objects(&objects, bucket == "v2", q);
        }
        match objects.lock().unwrap().get(&cairn_e2e::fake_http::decode(key)) {
            Some((body, _, _)) => Reply::ok(body.clone()),
            None => Reply::status(404),
        }
    })
    .await
}

const T1: &str = "2024-01-01T10:00:00.000Z";
const T2: &str = "2024-02-01T10:00:00.000Z";

fn put(objects: &Objects, key: &str, body: &[u8], date: &str) {
    objects.lock().unwrap().insert(key.into(), (body.to_vec(), date.into(), None));
}

/// Two bucket binaries over one fake S3: `s3` (ListObjectsV2) and `gcs`
/// (version 1 answers). Pages of two entries, sizes verified, only changes
/// fetched again.
async fn bucket_source(backend: Backend) {
    let objects: Objects = Arc::default();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    put(&objects, "index.json", b"[]", T1);
    put(&objects, "v1.0.0/", b"", T1);
    put(&objects, "v1.0.0/a.tgz", &big, T1);
    put(&objects, "v1.0.0/b.tgz", b"bbb", T1);
    put(&objects, "v1.0.0/c.tgz", b"ccc", T1);
    put(&objects, "v1.0.0/docs/readme.txt", b"read me", T1);
    put(&objects, "v2.0.0/x.tgz", b"x2", T1);
    objects.lock().unwrap().insert("v2.0.0/lies.tgz".into(), (b"short".to_vec(), T1.into(), Some(500)));
    let s3 = fake_s3(objects.clone()).await;
    let tail = binary_toml("s3", "bucket", &format!("dist_url = \"{}/v2/\"", s3.base))
        + &binary_toml("gcs", "bucket", &format!("dist_url = \"{}/v1\"", s3.base));
    let s = server(backend, &tail).await;
    let admin = s.add_admin("admin", PW).await;
    for category in ["s3", "gcs"] {
        let (task, log) = sync(&s, &admin, category).await;
        assert_eq!(task["state"], "success", "{log}");
        assert!(log.contains("lies.tgz: rejected, 5 bytes received, 500 advertised"), "{log}");
        assert!(log.contains("6 files fetched"), "{log}");
        let (_, root) = s.get(&format!("/-/binary/{category}/"), None).await;
        assert_eq!(names(&root), ["index.json", "v1.0.0/"], "v2.0.0/ is incomplete");
        let (_, v1) = s.get(&format!("/-/binary/{category}/v1.0.0/"), None).await;
        assert_eq!(names(&v1), ["a.tgz", "b.tgz", "c.tgz", "docs/"]);
        let a = entry(&v1, "a.tgz");
        assert_eq!((a["size"].as_u64(), a["date"].as_str()), (Some(big.len() as u64), Some(T1)));
        let (status, _, body) = bytes(&s, &format!("/-/binary/{category}/v1.0.0/a.tgz"), "*/*").await;
        assert_eq!((status, body == big), (StatusCode::OK, true));
        let (_, docs) = s.get(&format!("/-/binary/{category}/v1.0.0/docs/"), None).await;
        assert_eq!(names(&docs), ["readme.txt"]);
        let (_, v2) = s.get(&format!("/-/binary/{category}/v2.0.0/"), None).await;
        assert_eq!(names(&v2), ["x.tgz"]);
    }
    let requests = s3.requests();
    assert!(requests.iter().any(|r| r.starts_with("/v2/?") && r.contains("continuation-token=tok-2")), "{requests:#?}");
    assert!(requests.iter().any(|r| r.starts_with("/v1/?") && r.contains("marker=v1.0.0%2Fa.tgz")), "{requests:#?}");

    // A changed object (new date and size) is fetched again, the others not.
    put(&objects, "v1.0.0/b.tgz", b"bbbb", T2);
    objects.lock().unwrap().insert("v2.0.0/lies.tgz".into(), (b"short".to_vec(), T2.into(), None));
    s3.clear();
    let (task, log) = sync(&s, &admin, "s3").await;
    assert_eq!(task["state"], "success", "{log}");
    assert!(log.contains("2 files fetched"), "{log}");
    assert_eq!((s3.hits("/v2/v1.0.0/b.tgz"), s3.hits("/v2/v1.0.0/a.tgz"), s3.hits("/v2/v2.0.0/lies.tgz")), (1, 0, 1));
    let (_, root) = s.get("/-/binary/s3/", None).await;
    assert_eq!(names(&root), ["index.json", "v1.0.0/", "v2.0.0/"]);
    let (_, _, body) = bytes(&s, "/-/binary/s3/v1.0.0/b.tgz", "*/*").await;
    assert_eq!(body, b"bbbb");
}

// ------------------------------------------------------------------ fake GitHub

type Releases = Arc<Mutex<Vec<Value>>>;

fn release(base: &str, tag: &str, published: &str, assets: &[(&str, &str, usize)]) -> Value {
    let assets: Vec<Value> = assets
        .iter()
        .map(|(name, updated, size)| {
            json!({"name": name, "size": size, "updated_at": updated, "state": "uploaded",
                "browser_download_url": format!("{base}/dl/{tag}/{name}")})
        })
        .collect();
    json!({"tag_name": tag, "draft": false, "prerelease": false, "published_at": published, "created_at": published, "assets": assets})
}

fn asset_body(tag: &str, name: &str, size: usize) -> Vec<u8> {
    let seed = format!("{tag}/{name}");
    seed.bytes().cycle().take(size).collect()
}

/// `/api/repos/o/r/releases` two a page (with `Link`), `/releases/tags/T`,
/// and the assets at `/dl/T/NAME`.
async fn fake_github(releases: Releases) -> FakeHttp {
    FakeHttp::start(move |q: &Seen| {
        let all = releases.lock().unwrap().clone();
        if q.path == "/api/repos/o/r/releases" {
            assert_eq!(q.param("per_page").as_deref(), Some("100"));
            let page: usize = q.param("page").unwrap().parse().unwrap();
            let chunk: Vec<Value> = all.iter().skip((page - 1) * 2).take(2).cloned().collect();
            let mut reply = Reply::ok(serde_json::to_vec(&chunk).unwrap()).header("content-type", "application/json");
            if page * 2 < all.len() {
                let next = format!(
                    "<{}/api/repos/o/r/releases?per_page=100&page={}>; rel=\"next\", <{}/api/repos/o/r/releases?page=9>; rel=\"last\"",
                    q.base,
                    page + 1,
                    q.base
                );
                reply = reply.header("link", &next);
            }
            return reply;
        }
        if let Some(tag) = q.path.strip_prefix("/api/repos/o/r/releases/tags/") {
            return match all.iter().find(|r| r["tag_name"] == tag) {
                Some(r) => Reply::ok(serde_json::to_vec(r).unwrap()),
                None => Reply::status(404),
            };
        }
        if let Some((tag, name)) = q.path.strip_prefix("/dl/").and_then(|p| p.split_once('/')) {
            let size = all
                .iter()
                .find(|r| r["tag_name"] == tag)
                .and_then(|r| r["assets"].as_array().unwrap().iter().find(|a| a["name"] == name))
                .map(|a| a["size"].as_u64().unwrap() as usize);
            return size.map_or_else(|| Reply::status(404), |n| Reply::ok(asset_body(tag, name, n)));
        }
        Reply::status(404)
    })
    .await
}

/// Releases as directories, assets as files, pages followed; a new asset in
/// an old release is fetched on the next sync and nothing else is.
async fn github_source(backend: Backend) {
    let releases: Releases = Arc::default();
    let gh = fake_github(releases.clone()).await;
    {
        let mut r = releases.lock().unwrap();
        r.push(release(&gh.base, "v3.0.0", T2, &[("app-linux.tgz", T2, 70_000)]));
        r.push(release(&gh.base, "v2.0.0", T1, &[("app-linux.tgz", T1, 3000), ("app-mac.tgz", T1, 2000)]));
        r.push(release(&gh.base, "v1.0.0", T1, &[("app.tgz", T1, 100)]));
        let mut draft = release(&gh.base, "v4.0.0-draft", T2, &[("x.tgz", T2, 10)]);
        draft["draft"] = json!(true);
        r.push(draft);
    }
    let keys = format!("api_url = \"{}/api/\"\nrepo_url = \"https://example.com/o/r\"", gh.base);
    let s = server(backend, &binary_toml("app", "github", &keys)).await;
    let admin = s.add_admin("admin", PW).await;
    let (status, list) = s.get("/-/binary/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["distUrl"], format!("{}/api/repos/o/r/releases/", gh.base));
    let (task, log) = sync(&s, &admin, "app").await;
    assert_eq!(task["state"], "success", "{log}");
    assert!(log.contains("4 files fetched"), "{log}");
    assert_eq!(gh.hits("/api/repos/o/r/releases"), 2, "two pages: {:#?}", gh.requests());
    let (_, root) = s.get("/-/binary/app/", None).await;
    assert_eq!(names(&root), ["v1.0.0/", "v2.0.0/", "v3.0.0/"], "drafts are not mirrored");
    assert_eq!(entry(&root, "v3.0.0/")["date"], T2);
    let (_, v2) = s.get("/-/binary/app/v2.0.0/", None).await;
    assert_eq!(names(&v2), ["app-linux.tgz", "app-mac.tgz"]);
    assert_eq!((entry(&v2, "app-mac.tgz")["size"].as_u64(), entry(&v2, "app-mac.tgz")["date"].as_str()), (Some(2000), Some(T1)));
    let (status, _, body) = bytes(&s, "/-/binary/app/v3.0.0/app-linux.tgz", "*/*").await;
    assert_eq!((status, body == asset_body("v3.0.0", "app-linux.tgz", 70_000)), (StatusCode::OK, true));

    // A new asset in v1.0.0 (its newest date moves): only that one is fetched.
    let added = release(&gh.base, "v1.0.0", T1, &[("app.tgz", T1, 100), ("app-arm.tgz", T2, 500)]);
    releases.lock().unwrap()[2] = added;
    gh.clear();
    let (task, log) = sync(&s, &admin, "app").await;
    assert_eq!(task["state"], "success", "{log}");
    assert!(log.contains("1 files fetched"), "{log}");
    assert_eq!(
        (gh.hits("/dl/v1.0.0/app-arm.tgz"), gh.hits("/dl/v1.0.0/app.tgz"), gh.hits("/api/repos/o/r/releases/tags/v2.0.0")),
        (1, 0, 0)
    );
    let (_, v1) = s.get("/-/binary/app/v1.0.0/", None).await;
    assert_eq!(names(&v1), ["app-arm.tgz", "app.tgz"]);
}

/// Where the API gives an asset's `digest` (`sha256:<hex>`), the download is
/// checked against it: a mismatch is rejected (and its release left
/// incomplete), a match is mirrored.
async fn github_digests_are_verified(backend: Backend) {
    use sha2::Digest;
    let releases: Releases = Arc::default();
    let gh = fake_github(releases.clone()).await;
    let mut rel = release(&gh.base, "v1.0.0", T1, &[("good.tgz", T1, 300), ("bad.tgz", T1, 200)]);
    let good = hex::encode(sha2::Sha256::digest(asset_body("v1.0.0", "good.tgz", 300)));
    rel["assets"][0]["digest"] = json!(format!("sha256:{good}"));
    rel["assets"][1]["digest"] = json!(format!("sha256:{}", "0".repeat(64)));
    releases.lock().unwrap().push(rel);
    let keys = format!("api_url = \"{}/api\"\nrepo = \"o/r\"", gh.base);
    let s = server(backend, &binary_toml("app", "github", &keys)).await;
    let admin = s.add_admin("admin", PW).await;
    let (task, log) = sync(&s, &admin, "app").await;
    assert_eq!(task["state"], "success", "{log}");
    assert!(log.contains("v1.0.0/bad.tgz: rejected"), "{log}");
    assert!(log.contains("1 files fetched") && log.contains("1 rejected"), "{log}");
    let (status, _, body) = bytes(&s, "/-/binary/app/v1.0.0/good.tgz", "*/*").await;
    assert_eq!((status, body == asset_body("v1.0.0", "good.tgz", 300)), (StatusCode::OK, true));
    let (status, _, _) = bytes(&s, "/-/binary/app/v1.0.0/bad.tgz", "*/*").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, root) = s.get("/-/binary/app/", None).await;
    assert!(names(&root).is_empty(), "v1.0.0/ is incomplete: {root}");
}

// ------------------------------------------------------------------ HTML

/// `Accept: text/html` gets a page a person can click through; hostile names are escaped.
async fn html_browsing(backend: Backend) {
    let objects: Objects = Arc::default();
    put(&objects, "v1.0.0/a.tgz", b"aaa", T1);
    put(&objects, "v1.0.0/<script>alert(1)</script>.txt", b"evil", T1);
    put(&objects, "v1.0.0/\"onmouseover=\"alert(2).txt", b"evil", T1);
    let s3 = fake_s3(objects).await;
    let s = server(backend, &binary_toml("s3", "bucket", &format!("dist_url = \"{}/v2/\"", s3.base))).await;
    let admin = s.add_admin("admin", PW).await;
    let (task, log) = sync(&s, &admin, "s3").await;
    assert_eq!(task["state"], "success", "{log}");
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

    let (status, ct, body) = bytes(&s, "/-/binary/", browser).await;
    let page = String::from_utf8(body).unwrap();
    assert_eq!((status, ct.as_str()), (StatusCode::OK, "text/html; charset=utf-8"), "{page}");
    assert!(page.contains(&format!("<a href=\"{}/-/binary/s3/\">s3/</a>", s.base)), "{page}");

    let (status, ct, body) = bytes(&s, "/-/binary/s3/v1.0.0/", browser).await;
    let page = String::from_utf8(body).unwrap();
    assert_eq!((status, ct.as_str()), (StatusCode::OK, "text/html; charset=utf-8"), "{page}");
    assert!(page.contains(&format!("<a href=\"{}/-/binary/s3/\">../</a>", s.base)), "a parent link: {page}");
    assert!(page.contains(&format!("<a href=\"{}/-/binary/s3/v1.0.0/a.tgz\">a.tgz</a>", s.base)), "{page}");
    assert!(page.contains("<td>3</td>") && page.contains(T1), "size and date: {page}");
    // The hostile names: a directory `<script>alert(1)<` with `script>.txt` in it, and a quote.
    assert!(!page.contains("<script>") && !page.contains("\"onmouseover"), "unescaped: {page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/"), "{page}");
    assert!(page.contains("&quot;onmouseover=&quot;alert(2).txt</a>"), "{page}");
    assert!(page.contains("/-/binary/s3/v1.0.0/%22onmouseover%3D%22alert%282%29.txt\""), "{page}");
    let (status, _, body) = bytes(&s, "/-/binary/s3/v1.0.0/%3Cscript%3Ealert(1)%3C/", browser).await;
    let page = String::from_utf8(body).unwrap();
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("script&gt;.txt</a>") && !page.contains("<script>"), "{page}");
    assert!(page.contains(&format!("<a href=\"{}/-/binary/s3/v1.0.0/\">../</a>", s.base)), "{page}");

    // The same listing as JSON for JSON clients; files stay bytes; unknown paths stay 404s.
    for accept in ["application/json", "*/*", "text/html;q=0.5, application/json"] {
        let (status, ct, body) = bytes(&s, "/-/binary/s3/v1.0.0/", accept).await;
        assert_eq!((status, ct.as_str()), (StatusCode::OK, "application/json"), "{accept}");
        let list: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(names(&list).len(), 3, "{list}");
    }
    let (status, ct, body) = bytes(&s, "/-/binary/s3/v1.0.0/a.tgz", browser).await;
    assert_eq!((status, ct.as_str(), body.as_slice()), (StatusCode::OK, "application/octet-stream", b"aaa".as_slice()));
    let (status, _, _) = bytes(&s, "/-/binary/s3/v9/", browser).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

// ------------------------------------------------------------------ api with since

/// An autoindex page (name, date, size; no size: a directory).
fn autoindex(entries: &[(&str, &str, Option<usize>)]) -> Vec<u8> {
    let mut html = String::from("<html><body><pre><a href=\"../\">../</a>\n");
    for (name, date, size) in entries {
        let size = size.map_or("-".to_string(), |s| s.to_string());
        html.push_str(&format!("<a href=\"{name}\">{name}</a>                    {date}     {size}\n"));
    }
    html.push_str("</pre></body></html>\n");
    html.into_bytes()
}

type Site = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

async fn static_site(site: Site) -> FakeHttp {
    FakeHttp::start(move |q: &Seen| site.lock().unwrap().get(&q.path).map_or_else(|| Reply::status(404), |b| Reply::ok(b.clone()))).await
}

const D1: &str = "01-Jan-2024 10:00";
const D2: &str = "02-Feb-2024 11:00";

/// A dist tree: `/v1.0.0/` (`a.tgz`, `docs/r.txt`), `/v2.0.0/b.tgz`.
fn dist_tree(site: &Site, r: &[u8], b: &[u8], changed: bool) {
    let (dv1, db) = if changed { (D2, D2) } else { (D1, D1) };
    let mut s = site.lock().unwrap();
    s.insert("/dist/".into(), autoindex(&[("v1.0.0/", dv1, None), ("v2.0.0/", D1, None)]));
    s.insert("/dist/v1.0.0/".into(), autoindex(&[("a.tgz", D1, Some(4)), ("docs/", dv1, None)]));
    s.insert("/dist/v1.0.0/a.tgz".into(), b"aaaa".to_vec());
    s.insert("/dist/v1.0.0/docs/".into(), autoindex(&[("r.txt", dv1, Some(r.len()))]));
    s.insert("/dist/v1.0.0/docs/r.txt".into(), r.to_vec());
    s.insert("/dist/v2.0.0/".into(), autoindex(&[("b.tgz", db, Some(b.len()))]));
    s.insert("/dist/v2.0.0/b.tgz".into(), b.to_vec());
}

/// A proxy to `target` that records every request (and passes `Date` on).
async fn counting_proxy(target: String) -> FakeHttp {
    let client = reqwest::Client::new();
    FakeHttp::start_async(move |q: Seen| {
        let (client, url) = (client.clone(), format!("{target}{}{}{}", q.path, if q.query.is_empty() { "" } else { "?" }, q.query));
        async move {
            let resp = client.get(&url).send().await.unwrap();
            let mut reply = Reply { status: resp.status().as_u16(), headers: Vec::new(), body: Vec::new() };
            for name in ["date", "content-type"] {
                if let Some(v) = resp.headers().get(name) {
                    reply = reply.header(name, v.to_str().unwrap());
                }
            }
            reply.body = resp.bytes().await.unwrap().to_vec();
            reply
        }
    })
    .await
}

/// Cairn mirrors Cairn: after a full first sync, a resync asks the upstream
/// only `?since=` its last complete sync, and walks only what changed.
async fn api_resync_asks_since(backend: Backend) {
    let site: Site = Arc::default();
    dist_tree(&site, b"r1", b"b1", false);
    let dist = static_site(site.clone()).await;
    let up = server(backend, &binary_toml("node", "node", &format!("dist_url = \"{}/dist/\"", dist.base))).await;
    let up_admin = up.add_admin("admin", PW).await;
    assert_eq!(sync(&up, &up_admin, "node").await.0["state"], "success");
    // Past the resync's safety margin (5 s), so what the upstream wrote is older than it.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;

    let proxy = counting_proxy(up.base.clone()).await;
    let here = server(Backend::Sqlite, &binary_toml("node", "api", &format!("dist_url = \"{}/-/binary/node/\"", proxy.base))).await;
    let admin = here.add_admin("admin", PW).await;
    let (task, log) = sync(&here, &admin, "node").await;
    assert_eq!(task["state"], "success", "{log}");
    assert!(log.contains("3 files fetched"), "{log}");
    let first = proxy.requests();
    assert!(first.iter().all(|r| !r.contains("since=")), "a first sync walks everything: {first:#?}");

    proxy.clear();
    let (task, log) = sync(&here, &admin, "node").await;
    assert_eq!(task["state"], "success", "{log}");
    assert!(log.contains("0 files fetched") && log.contains("asking only for what changed since"), "{log}");
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1, "nothing changed: one question: {requests:#?}");
    assert!(requests[0].starts_with("/-/binary/node/?since=") && requests[0].contains("&limit=1000"), "{requests:#?}");

    // Upstream: r.txt changed (two levels down), b.tgz changed in the newest directory.
    dist_tree(&site, b"r2 changed", b"b2", true);
    let (task, log) = sync(&up, &up_admin, "node").await;
    assert_eq!(task["state"], "success", "{log}");
    assert!(log.contains("2 files fetched"), "{log}");
    proxy.clear();
    let (task, log) = sync(&here, &admin, "node").await;
    assert_eq!(task["state"], "success", "{log}");
    assert!(log.contains("2 files fetched"), "{log}");
    let mut listed: Vec<String> = proxy.requests().iter().map(|r| r.split('?').next().unwrap().to_string()).collect();
    listed.sort();
    assert_eq!(
        listed,
        ["/-/binary/node/", "/-/binary/node/v1.0.0/", "/-/binary/node/v1.0.0/docs/", "/-/binary/node/v2.0.0/"],
        "{:#?}",
        proxy.requests()
    );
    assert!(proxy.requests().iter().all(|r| r.contains("since=")), "{:#?}", proxy.requests());
    let resp = here.client.get(here.url("/-/binary/node/v1.0.0/docs/r.txt")).send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"r2 changed");
    let (_, v1) = here.get("/-/binary/node/v1.0.0/", None).await;
    assert_eq!(names(&v1), ["a.tgz", "docs/"]);
}

/// An upstream that ignores `since` (a static JSON listing): the resync
/// notices and walks the tree as a first sync would.
async fn api_resync_without_since(backend: Backend) {
    let site: Site = Arc::default();
    let fake = static_site(site.clone()).await;
    let listing = |date: &str, size: usize| {
        let file = json!([{"name": "f.bin", "type": "file", "size": size, "date": date, "url": format!("{}/files/f.bin", fake.base)}]);
        let root = json!([{"name": "v1/", "type": "dir", "date": date}, {"name": "v2/", "type": "dir", "date": D1}]);
        (serde_json::to_vec(&root).unwrap(), serde_json::to_vec(&file).unwrap())
    };
    let publish = |date: &str, body: &[u8]| {
        let (root, v1) = listing(date, body.len());
        let mut s = site.lock().unwrap();
        s.insert("/bin/".into(), root);
        s.insert("/bin/v1/".into(), v1);
        s.insert("/bin/v2/".into(), b"[]".to_vec());
        s.insert("/files/f.bin".into(), body.to_vec());
    };
    publish(D1, b"one");
    let here = server(backend, &binary_toml("bin", "api", &format!("dist_url = \"{}/bin/\"", fake.base))).await;
    let admin = here.add_admin("admin", PW).await;
    assert_eq!(sync(&here, &admin, "bin").await.0["state"], "success");
    publish(D2, b"two!");
    fake.clear();
    let (task, log) = sync(&here, &admin, "bin").await;
    assert_eq!(task["state"], "success", "{log}");
    assert!(log.contains("1 files fetched"), "{log}");
    assert!(fake.requests().iter().any(|r| r.starts_with("/bin/?since=")), "it asked: {:#?}", fake.requests());
    let resp = here.client.get(here.url("/-/binary/bin/v1/f.bin")).send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"two!");
}

// ------------------------------------------------------------------ two processes

mod two_processes_one_database {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::two_processes_one_database().await
    }
}

/// A site whose files (not pages) answer after `delay`.
async fn slow_site(site: Site, delay: std::time::Duration) -> FakeHttp {
    FakeHttp::start_async(move |q: Seen| {
        let body = site.lock().unwrap().get(&q.path).cloned();
        async move {
            if !q.path.ends_with('/') {
                tokio::time::sleep(delay).await;
            }
            body.map_or_else(|| Reply::status(404), Reply::ok)
        }
    })
    .await
}

/// Two processes on one PostgreSQL database (and one blob directory), both
/// asked to sync the same binary while a sync runs: the second task waits
/// for the first, every file is fetched once, both serve every file.
async fn two_processes_one_database() {
    let site: Site = Arc::default();
    dist_tree(&site, b"r1", b"b1", false);
    let dist = slow_site(site, std::time::Duration::from_millis(700)).await;
    let tail = binary_toml("node", "node", &format!("dist_url = \"{}/dist/\"", dist.base));
    let a = Server::start_with(ServerOptions::new(Backend::Postgres).tail(&tail)).await;
    let mut b = Server::start_with(ServerOptions::new(Backend::Postgres).database(&a.database_url).tail(&tail)).await;
    b.stop_with("TERM").await;
    let blobs = b.data_dir.path().join("blobs");
    let _ = std::fs::remove_dir_all(&blobs);
    std::fs::create_dir_all(a.data_dir.path().join("blobs")).unwrap();
    std::os::unix::fs::symlink(a.data_dir.path().join("blobs"), &blobs).unwrap();
    b.restart().await;
    let admin = a.add_admin("admin", PW).await;

    let (status, first) = a.call(Method::POST, "/-/binary/node/sync", Some(&admin), None).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let running = poll(30, || async {
        let (_, t) = a.get(&format!("/-/binary/node/syncs/{}", first["taskId"].as_str().unwrap()), None).await;
        (t["state"] == "processing").then_some(())
    })
    .await;
    assert!(running.is_some(), "the first sync did not start");
    let (status, second) = b.call(Method::POST, "/-/binary/node/sync", Some(&admin), None).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_ne!(first["taskId"], second["taskId"], "a running task is not merged into");
    for (s, t) in [(&a, &first), (&b, &second)] {
        let id = t["taskId"].as_str().unwrap();
        let done = poll(90, || async {
            let (_, t) = s.get(&format!("/-/binary/node/syncs/{id}"), None).await;
            matches!(t["state"].as_str(), Some("success" | "error")).then_some(t)
        })
        .await
        .unwrap_or_else(|| panic!("task {id} did not end:\nA:\n{}\nB:\n{}", a.log(), b.log()));
        assert_eq!(done["state"], "success", "{done}");
    }
    for file in ["/dist/v1.0.0/a.tgz", "/dist/v1.0.0/docs/r.txt", "/dist/v2.0.0/b.tgz"] {
        assert_eq!(dist.hits(file), 1, "{file} fetched more than once: {:#?}", dist.requests());
    }
    for s in [&a, &b] {
        for (path, body) in [("v1.0.0/a.tgz", b"aaaa".as_slice()), ("v1.0.0/docs/r.txt", b"r1"), ("v2.0.0/b.tgz", b"b1")] {
            let resp = s.client.get(s.url(&format!("/-/binary/node/{path}"))).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_eq!(resp.bytes().await.unwrap().as_ref(), body, "{path}");
        }
    }
}
