//! Every HTTP request Cairn makes (upstream packuments, tarballs, search and
//! audit forwarding, the changes follower, plugins' `fetch`) goes through
//! here, under one policy:
//!
//! - one shared client (TLS roots loaded once, connections kept alive);
//! - a timeout per request, covering redirects and the whole body;
//! - bodies read in chunks and refused past a byte cap (never buffered
//!   unbounded);
//! - credentials ([`Credentials`]: a bearer token, or the user info of a
//!   registry's URL as basic auth) sent only to the origin (scheme, host,
//!   port) they belong to. User info is taken out of every request URL, so
//!   nothing is sent implicitly;
//! - redirects are followed here, not by the client (whose policy is
//!   `none`), a few hops at most: credentials go to a hop only when it is on
//!   their origin, and after a hop to another origin the caller's
//!   `Authorization`, `Cookie` and `Proxy-Authorization` headers are dropped.
//!   (reqwest 0.12's own policy strips those headers only when host or port
//!   change, not the scheme, and knows nothing of whose credentials they are.)
//! - typed errors ([`Error`]) that say whether a retry may help, and that
//!   name URLs without user info or query (no secret in an error or a log).
//!
//! [`Outbound::guarded`] is the variant for URLs that users choose (hook
//! endpoints): its own client, whose DNS resolution hands the connector only
//! addresses an [`AddressPolicy`] accepts (so the check is against the
//! address actually connected to, and DNS rebinding cannot get around it),
//! IP literals checked the same way before sending, no proxy from the
//! environment, and no redirect followed (a 3xx is the answer).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use url::Url;

/// Redirect hops followed at most.
const MAX_REDIRECTS: usize = 5;

/// The one client: no redirects (followed in [`Request::send`]), no timeout of
/// its own (each request has one).
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client")
    })
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL, a header or the method is not valid; nothing was sent.
    #[error("{what}: {why}")]
    Invalid { what: String, why: String },
    /// No complete answer within the request's timeout.
    #[error("{what} timed out")]
    Timeout { what: String },
    /// Connecting or sending failed.
    #[error("{what} failed: {why}")]
    Connect { what: String, why: String },
    /// The answer's status is not a success ([`Response::error_for_status`]).
    #[error("{what} answered {status}")]
    Status { what: String, status: u16 },
    /// The body is larger than the request's cap.
    #[error("{what}: the body is larger than {cap} ({limit} bytes)")]
    TooLarge { what: String, cap: &'static str, limit: u64 },
    /// The connection broke while the body was read.
    #[error("{what}: reading the body failed: {why}")]
    Body { what: String, why: String },
    /// The body is not what was expected (JSON).
    #[error("{what}: {why}")]
    Decode { what: String, why: String },
    /// Too many redirects, a redirect without a usable `Location`, or one to a
    /// URL the request's guard refuses.
    #[error("{what}: {why}")]
    Redirect { what: String, why: String },
    /// A guarded request's host resolves to an address its policy refuses.
    #[error("{what}: {why}")]
    Refused { what: String, why: String },
}

impl Error {
    /// Timeouts, connection failures, broken bodies, 5xx and 429: a later
    /// retry may succeed. Anything else will fail the same way again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout { .. } | Error::Connect { .. } | Error::Body { .. } => true,
            Error::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// The status, for [`Error::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Scheme, host and port of a URL (the port made explicit, the host
/// lowercased by URL parsing), without user info or path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    pub fn of(url: &Url) -> Option<Origin> {
        Some(Origin {
            scheme: url.scheme().to_ascii_lowercase(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }

    pub fn parse(url: &str) -> Option<Origin> {
        Origin::of(&Url::parse(url).ok()?)
    }
}

/// Whether two URLs have the same origin (false when either is not a URL).
pub fn same_origin(a: &str, b: &str) -> bool {
    matches!((Origin::parse(a), Origin::parse(b)), (Some(x), Some(y)) if x == y)
}

/// `url` as errors and logs may show it: no user info, no query.
pub fn shown(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

enum Auth {
    Bearer(String),
    Basic(String, Option<String>),
}

/// Credentials and the one origin they may be sent to.
pub struct Credentials {
    origin: Origin,
    auth: Auth,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}://{}:{}, ***)", self.origin.scheme, self.origin.host, self.origin.port)
    }
}

impl Credentials {
    /// A registry's credentials: its token as a bearer, otherwise the user
    /// info of its `host` URL as basic auth; for `host`'s origin only. None
    /// when it has neither (or `host` is not a URL).
    pub fn for_registry(host: &str, token: Option<&str>) -> Option<Credentials> {
        let url = Url::parse(host).ok()?;
        let origin = Origin::of(&url)?;
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            return Some(Credentials { origin, auth: Auth::Bearer(token.to_string()) });
        }
        if url.username().is_empty() {
            return None;
        }
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        Some(Credentials { origin, auth: Auth::Basic(decode(url.username()), url.password().map(decode)) })
    }

    /// Whether these credentials belong to the origin of `url`.
    pub fn belong_to(&self, url: &Url) -> bool {
        Origin::of(url).as_ref() == Some(&self.origin)
    }
}

/// The policy's numbers for a kind of request: a timeout and a body cap.
/// Cheap to clone; every `Outbound` shares the one client.
#[derive(Clone)]
pub struct Outbound {
    timeout: Duration,
    max_body_bytes: u64,
    guarded: Option<Arc<Guarded>>,
}

/// Which addresses a guarded client may connect to.
pub trait AddressPolicy: Send + Sync + 'static {
    /// Ok when every address `host` resolved to may be connected to; the
    /// reason otherwise.
    fn check(&self, host: &str, addrs: &[SocketAddr]) -> Result<(), String>;
}

struct Guarded {
    client: reqwest::Client,
    policy: Arc<dyn AddressPolicy>,
}

/// The refusal a [`PolicyResolver`] hands back through reqwest's error chain.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RefusedAddress(String);

/// DNS for a guarded client: every address a name resolves to is checked,
/// and only checked addresses reach the connector.
struct PolicyResolver(Arc<dyn AddressPolicy>);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            // A lookup failure stays a connection error (a later try may resolve).
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            policy.check(&host, &addrs).map_err(|why| Box::new(RefusedAddress(why)) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Outbound {
    pub fn new(timeout: Duration, max_body_bytes: u64) -> Outbound {
        Outbound { timeout, max_body_bytes, guarded: None }
    }

    /// For URLs users choose: connects only to addresses `policy` accepts,
    /// follows no redirect, uses no proxy (see the module comment).
    pub fn guarded(timeout: Duration, max_body_bytes: u64, policy: Arc<dyn AddressPolicy>) -> Outbound {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(PolicyResolver(policy.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(timeout)
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client");
        Outbound { timeout, max_body_bytes, guarded: Some(Arc::new(Guarded { client, policy })) }
    }

    pub fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes
    }

    pub fn get(&self, url: &str) -> Request<'_> {
        self.request(Method::GET, url)
    }

    pub fn post(&self, url: &str) -> Request<'_> {
        self.request(Method::POST, url)
    }

    pub fn request(&self, method: Method, url: &str) -> Request<'_> {
        let url = Url::parse(url)
            .map_err(|e| Error::Invalid { what: format!("{method} {}", crate::config::redact_url(url)), why: format!("not a URL: {e}") });
        Request {
            method,
            url,
            headers: Vec::new(),
            body: None,
            credentials: None,
            timeout: self.timeout,
            max_bytes: self.max_body_bytes,
            cap: "max_body_bytes",
            what: None,
            guard: None,
            guarded: self.guarded.as_deref(),
        }
    }
}

/// Checks each URL a request goes to (the first and every redirect hop).
pub type Guard<'a> = &'a (dyn Fn(&Url) -> Result<(), String> + Send + Sync);

/// A request being built; [`Request::send`] sends it.
pub struct Request<'a> {
    method: Method,
    url: Result<Url, Error>,
    headers: Vec<(String, String)>,
    body: Option<Bytes>,
    credentials: Option<&'a Credentials>,
    timeout: Duration,
    max_bytes: u64,
    cap: &'static str,
    what: Option<String>,
    guard: Option<Guard<'a>>,
    guarded: Option<&'a Guarded>,
}

impl<'a> Request<'a> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sent only to URLs on the credentials' origin.
    pub fn credentials(mut self, credentials: Option<&'a Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Caps the body at `limit` bytes; `cap` names the limit in the error.
    pub fn max_bytes(mut self, limit: u64, cap: &'static str) -> Self {
        self.max_bytes = limit;
        self.cap = cap;
        self
    }

    /// How errors name this request (default: method and URL, shown safely).
    pub fn describe(mut self, what: String) -> Self {
        self.what = Some(what);
        self
    }

    /// Refuses URLs (first or redirected) `guard` says no to.
    pub fn guard(mut self, guard: Guard<'a>) -> Self {
        self.guard = Some(guard);
        self
    }

    /// Sends the request, following redirects (see the module comment).
    pub async fn send(self) -> Result<Response, Error> {
        let mut url = self.url?;
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let what = self.what.unwrap_or_else(|| format!("{} {}", self.method, shown(&url)));
        let headers = header_map(&self.headers).map_err(|why| Error::Invalid { what: what.clone(), why })?;
        let deadline = Instant::now() + self.timeout;
        let (mut method, mut body, mut crossed) = (self.method, self.body, false);
        let first = Origin::of(&url);
        let (client, max_redirects) = match self.guarded {
            Some(g) => {
                check_literal(g, &url).map_err(|why| Error::Refused { what: what.clone(), why })?;
                (&g.client, 0)
            }
            None => (client(), MAX_REDIRECTS),
        };
        for hop in 0..=max_redirects {
            if let Some(guard) = self.guard {
                guard(&url).map_err(|why| Error::Redirect { what: what.clone(), why })?;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::Timeout { what });
            }
            let mut req = client.request(method.clone(), url.clone()).timeout(remaining);
            for (name, value) in &headers {
                if !(crossed && is_sensitive(name)) {
                    req = req.header(name, value);
                }
            }
            match self.credentials {
                Some(c) if c.belong_to(&url) => req = apply(req, &c.auth),
                _ => {}
            }
            if let Some(b) = &body {
                req = req.body(b.clone());
            }
            let resp = req.send().await.map_err(|e| transport_error(&what, &e))?;
            let status = resp.status().as_u16();
            let Some(location) =
                resp.headers().get(http::header::LOCATION).filter(|_| max_redirects > 0 && matches!(status, 301 | 302 | 303 | 307 | 308))
            else {
                return Ok(Response { inner: resp, what, max_bytes: self.max_bytes, cap: self.cap });
            };
            if hop == max_redirects {
                break;
            }
            let next = location.to_str().ok().and_then(|l| url.join(l).ok()).filter(|u| matches!(u.scheme(), "http" | "https"));
            let Some(mut next) = next else {
                return Err(Error::Redirect { what, why: format!("answered {status} with an unusable Location") });
            };
            let _ = next.set_username("");
            let _ = next.set_password(None);
            if status == 303 || (matches!(status, 301 | 302) && method == Method::POST) {
                method = Method::GET;
                body = None;
            }
            crossed |= Origin::of(&next) != first;
            tracing::debug!(request = what, to = shown(&next), "following a redirect");
            url = next;
        }
        Err(Error::Redirect { what, why: format!("more than {MAX_REDIRECTS} redirects") })
    }
}

/// IP literals skip the resolver: a guarded request checks them itself.
fn check_literal(g: &Guarded, url: &Url) -> Result<(), String> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    let port = url.port_or_known_default().unwrap_or(0);
    g.policy.check(url.host_str().unwrap_or_default(), &[SocketAddr::new(ip, port)])
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name {name:?}"))?;
        let v = HeaderValue::from_str(value).map_err(|_| format!("invalid value of header {name}"))?;
        map.append(n, v);
    }
    Ok(map)
}

fn is_sensitive(name: &HeaderName) -> bool {
    [http::header::AUTHORIZATION, http::header::COOKIE, http::header::PROXY_AUTHORIZATION].contains(name)
}

fn apply(req: reqwest::RequestBuilder, auth: &Auth) -> reqwest::RequestBuilder {
    match auth {
        Auth::Bearer(token) => req.bearer_auth(token),
        Auth::Basic(user, password) => req.basic_auth(user, password.as_ref()),
    }
}

fn transport_error(what: &str, e: &reqwest::Error) -> Error {
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(r) = inner.downcast_ref::<RefusedAddress>() {
            return Error::Refused { what: what.to_string(), why: r.0.clone() };
        }
        source = inner.source();
    }
    if e.is_timeout() {
        Error::Timeout { what: what.to_string() }
    } else if e.is_builder() {
        Error::Invalid { what: what.to_string(), why: without_url(e) }
    } else {
        Error::Connect { what: what.to_string(), why: without_url(e) }
    }
}

/// reqwest errors embed the URL; ours already name it (safely).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(&format!(" ({url})"), "").replace(url.as_str(), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    s
}

/// An answer whose body has not been read yet.
pub struct Response {
    inner: reqwest::Response,
    what: String,
    max_bytes: u64,
    cap: &'static str,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.inner.status().as_u16()
    }

    /// A header's value, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// Every header whose value is text, as received.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
    }

    pub fn content_length(&self) -> Option<u64> {
        self.inner.content_length()
    }

    /// This response, or [`Error::Status`] when its status is not 2xx.
    pub fn error_for_status(self) -> Result<Response, Error> {
        if self.inner.status().is_success() {
            Ok(self)
        } else {
            Err(Error::Status { status: self.status(), what: self.what })
        }
    }

    /// The body, read chunk by chunk and refused as soon as it passes the cap.
    pub async fn bytes(mut self) -> Result<Bytes, Error> {
        let (max, cap) = (self.max_bytes, self.cap);
        let too_big = |what: String| Error::TooLarge { what, cap, limit: max };
        if self.inner.content_length().is_some_and(|n| n > max) {
            return Err(too_big(self.what));
        }
        let mut buf = BytesMut::with_capacity(self.inner.content_length().unwrap_or(0) as usize);
        loop {
            let chunk = match self.inner.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return Ok(buf.freeze()),
                Err(e) if e.is_timeout() => return Err(Error::Timeout { what: self.what }),
                Err(e) => return Err(Error::Body { why: without_url(&e), what: self.what }),
            };
            if (buf.len() + chunk.len()) as u64 > max {
                return Err(too_big(self.what));
            }
            buf.extend_from_slice(&chunk);
        }
    }

    /// The body as a stream of chunks, never held whole; the stream ends in
    /// [`Error::TooLarge`] as soon as the bytes pass the cap.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Result<Bytes, Error>> + Send {
        let (max, cap) = (self.max_bytes, self.cap);
        let early = self.inner.content_length().is_some_and(|n| n > max);
        futures_util::stream::unfold(Some((self, 0u64, early)), move |state| async move {
            let (mut resp, read, early) = state?;
            let too_big = |what: String| Error::TooLarge { what, cap, limit: max };
            if early {
                return Some((Err(too_big(resp.what)), None));
            }
            match resp.inner.chunk().await {
                Ok(Some(chunk)) if read + chunk.len() as u64 > max => Some((Err(too_big(resp.what)), None)),
                Ok(Some(chunk)) => {
                    let read = read + chunk.len() as u64;
                    Some((Ok(chunk), Some((resp, read, false))))
                }
                Ok(None) => None,
                Err(e) if e.is_timeout() => Some((Err(Error::Timeout { what: resp.what }), None)),
                Err(e) => Some((Err(Error::Body { why: without_url(&e), what: resp.what }), None)),
            }
        })
    }

    /// The body (capped) as JSON.
    pub async fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Error> {
        let what = self.what.clone();
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode { what, why: format!("the body is not the JSON expected: {e}") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        // Default ports are explicit.
        assert!(same_origin("http://example.test/a", "http://example.test:80/b"));
        assert!(same_origin("https://example.test", "https://example.test:443/x?y=1"));
        // Host case does not matter; scheme case neither.
        assert!(same_origin("HTTP://Example.TEST/a", "http://example.test/"));
        // User info is not part of the origin.
        assert!(same_origin("https://user:secret@example.test/r", "https://example.test/"));
        // Scheme, host or port differ.
        assert!(!same_origin("http://example.test", "https://example.test"));
        assert!(!same_origin("https://example.test:8443", "http://example.test:8443"));
        assert!(!same_origin("http://example.test:8080", "http://example.test"));
        assert!(!same_origin("http://127.0.0.1:1", "http://127.0.0.1:2"));
        assert!(!same_origin("http://a.example.test", "http://b.example.test"));
        assert!(!same_origin("http://example.test.evil.test", "http://example.test"));
        // Not URLs: never the same.
        assert!(!same_origin("not a url", "not a url"));
    }

    #[test]
    fn credentials_belong_to_their_registry_only() {
        let c = Credentials::for_registry("https://Registry.test/npm", Some("tok")).unwrap();
        assert!(c.belong_to(&Url::parse("https://registry.test:443/pkg").unwrap()));
        assert!(!c.belong_to(&Url::parse("https://cdn.test/pkg.tgz").unwrap()));
        assert!(!c.belong_to(&Url::parse("http://registry.test/pkg").unwrap()));
        let basic = Credentials::for_registry("https://u:p%40ss@registry.test", None).unwrap();
        assert!(matches!(&basic.auth, Auth::Basic(u, Some(p)) if u == "u" && p == "p@ss"));
        assert!(Credentials::for_registry("https://registry.test", None).is_none());
        assert!(!format!("{c:?} {basic:?}").contains("tok") && !format!("{basic:?}").contains("p%40ss"));
    }

    #[test]
    fn shown_urls_carry_no_secret() {
        let u = Url::parse("https://user:secret@registry.test/_changes?since=1&token=abc").unwrap();
        assert_eq!(shown(&u), "https://registry.test/_changes");
    }

    struct RefuseLoopback;
    impl AddressPolicy for RefuseLoopback {
        fn check(&self, host: &str, addrs: &[SocketAddr]) -> Result<(), String> {
            match addrs.iter().find(|a| a.ip().is_loopback()) {
                Some(a) => Err(format!("{host} is {}", a.ip())),
                None => Ok(()),
            }
        }
    }

    #[tokio::test]
    async fn guarded_requests_check_the_addresses_connected_to() {
        let out = Outbound::guarded(Duration::from_secs(5), 1024, Arc::new(RefuseLoopback));
        // An IP literal (which no resolver sees) and a name that resolves to loopback.
        for url in ["http://127.0.0.1:9/x", "http://[::1]:9/x", "http://localhost:9/x"] {
            match out.post(url).send().await {
                Err(Error::Refused { why, .. }) => assert!(why.contains("is 127.0.0.1") || why.contains("is ::1"), "{url}: {why}"),
                other => panic!("{url}: {:?}", other.map(|r| r.status())),
            }
        }
    }

    struct AllowAll;
    impl AddressPolicy for AllowAll {
        fn check(&self, _: &str, _: &[SocketAddr]) -> Result<(), String> {
            Ok(())
        }
    }

    /// A loopback server answering every request with `answer`; counts requests.
    async fn answering(answer: &'static str) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        (url, hits)
    }

    #[tokio::test]
    async fn guarded_requests_follow_no_redirect() {
        let (target, target_hits) = answering("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        let redirect: &'static str = Box::leak(
            format!("HTTP/1.1 302 Found\r\nlocation: {target}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").into_boxed_str(),
        );
        let (url, hits) = answering(redirect).await;
        let guarded = Outbound::guarded(Duration::from_secs(5), 1024, Arc::new(AllowAll));
        let resp = guarded.post(&url).body("x").send().await.unwrap();
        assert_eq!(resp.status(), 302);
        assert_eq!((hits.load(std::sync::atomic::Ordering::SeqCst), target_hits.load(std::sync::atomic::Ordering::SeqCst)), (1, 0));
        // The shared client follows it (the difference is the guarded variant's).
        let resp = Outbound::new(Duration::from_secs(5), 1024).get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(target_hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn retryable_errors() {
        let what = String::new;
        assert!(Error::Timeout { what: what() }.is_retryable());
        assert!(Error::Status { what: what(), status: 503 }.is_retryable());
        assert!(Error::Status { what: what(), status: 429 }.is_retryable());
        assert!(!Error::Status { what: what(), status: 404 }.is_retryable());
        assert!(!Error::TooLarge { what: what(), cap: "max_body_bytes", limit: 1 }.is_retryable());
    }
}
