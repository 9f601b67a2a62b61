//! The blob store conformance suite: one set of checks of the [`BlobStore`]
//! contract, run on local files and on S3 (moto's server at `CAIRN_TEST_S3`,
//! a bucket per test; `tests/run.sh` starts it).
//!
//! Memory is measured per thread by the counting allocator below: each test
//! runs on a current-thread runtime, so the store's own tasks (multipart
//! uploads, HTTP connections) run on the thread that counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn::blob::{BlobError, BlobStore, ByteStream, LocalBlobStore, S3BlobStore};
use cairn::config::{BlobKind, BlobsConfig};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

// ------------------------------------------------------------------ memory

struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator; the thread-local
// counters are plain cells that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|live| {
            live.set(live.get() + layout.size() as i64);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
        });
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|live| live.set(live.get() - layout.size() as i64));
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Restarts the peak at the current level; returns that level.
fn reset_peak() -> i64 {
    let live = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(live));
    live
}

fn peak() -> i64 {
    PEAK.with(Cell::get)
}

// ------------------------------------------------------------------ fixtures

struct Fixture {
    store: Arc<dyn BlobStore>,
    _dir: tempfile::TempDir,
}

fn local() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalBlobStore::open(dir.path().join("blobs")).unwrap());
    Fixture { store, _dir: dir }
}

async fn s3() -> Fixture {
    let endpoint = cairn_e2e::s3::endpoint();
    let bucket = cairn_e2e::s3::create_bucket(&endpoint).await;
    let cfg = BlobsConfig {
        kind: BlobKind::S3,
        bucket: Some(bucket),
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        prefix: "conformance/".into(),
        access_key_id: Some("moto".into()),
        secret_access_key: Some("moto-secret".into()),
    };
    let store = Arc::new(S3BlobStore::open(&cfg).unwrap());
    store.check().await.unwrap();
    Fixture { store, _dir: tempfile::tempdir().unwrap() }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn local() {
                let f = super::local();
                super::$name(f.store.clone()).await;
            }
            #[tokio::test]
            async fn s3() {
                let f = super::s3().await;
                super::$name(f.store.clone()).await;
            }
        }
    )*};
}

conformance!(
    put_get_head_delete,
    ranges,
    streams_and_cache_writes,
    a_failed_stream_stores_nothing,
    an_upload_in_progress_is_invisible,
    lists_with_ages_and_sweeps_orphans,
    large_streams_in_bounded_memory,
);

// ------------------------------------------------------------------ helpers

async fn read(store: &dyn BlobStore, key: &str) -> Option<Vec<u8>> {
    let blob = store.get(key).await.unwrap()?;
    let size = blob.size;
    let mut out = Vec::new();
    let mut stream = blob.stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(out.len() as u64, size, "the announced size of {key}");
    Some(out)
}

async fn read_range(store: &dyn BlobStore, key: &str, start: u64, len: u64) -> Option<Vec<u8>> {
    let blob = store.get_range(key, start, len).await.unwrap()?;
    assert_eq!(blob.size, len);
    let chunks: Vec<_> = blob.stream.collect().await;
    Some(chunks.into_iter().flat_map(|c| c.unwrap().to_vec()).collect())
}

fn chunks(parts: Vec<std::io::Result<Bytes>>) -> ByteStream {
    futures_util::stream::iter(parts).boxed()
}

/// `total` bytes of a fixed pattern in 64 KiB chunks, made as they are read.
fn generated(total: usize) -> ByteStream {
    const CHUNK: usize = 64 * 1024;
    futures_util::stream::iter((0..total.div_ceil(CHUNK)).map(move |i| {
        let len = CHUNK.min(total - i * CHUNK);
        Ok(Bytes::from((0..len).map(|j| ((i * CHUNK + j) % 251) as u8).collect::<Vec<u8>>()))
    }))
    .boxed()
}

fn pattern(start: usize, len: usize) -> Vec<u8> {
    (start..start + len).map(|i| (i % 251) as u8).collect()
}

// ------------------------------------------------------------------ the contract

async fn put_get_head_delete(s: Arc<dyn BlobStore>) {
    assert!(s.get("tarballs/a/a-1.0.0.tgz").await.unwrap().is_none());
    assert_eq!(s.head("tarballs/a/a-1.0.0.tgz").await.unwrap(), None);
    s.put("tarballs/a/a-1.0.0.tgz", Bytes::from_static(b"hello")).await.unwrap();
    assert_eq!(s.head("tarballs/a/a-1.0.0.tgz").await.unwrap(), Some(5));
    assert_eq!(read(s.as_ref(), "tarballs/a/a-1.0.0.tgz").await.unwrap(), b"hello");
    s.put("tarballs/a/a-1.0.0.tgz", Bytes::from_static(b"replaced")).await.unwrap();
    assert_eq!(read(s.as_ref(), "tarballs/a/a-1.0.0.tgz").await.unwrap(), b"replaced");
    // Keys with characters S3 tools escape come back as they went in.
    let odd = "tarballs/@scope/n~x/n-1.0.0+build%41 a.tgz";
    s.put(odd, Bytes::from_static(b"odd")).await.unwrap();
    assert_eq!(read(s.as_ref(), odd).await.unwrap(), b"odd");
    let listed: Vec<String> = s.list("tarballs/@scope/").await.unwrap().into_iter().map(|e| e.key).collect();
    assert_eq!(listed, [odd]);
    s.put("empty/file", Bytes::new()).await.unwrap();
    assert_eq!(read(s.as_ref(), "empty/file").await.unwrap(), b"");
    assert!(s.delete("tarballs/a/a-1.0.0.tgz").await.unwrap());
    assert!(!s.delete("tarballs/a/a-1.0.0.tgz").await.unwrap(), "a second delete finds nothing");
    assert!(s.get("tarballs/a/a-1.0.0.tgz").await.unwrap().is_none());
    for key in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a\\b"] {
        assert!(matches!(s.put(key, Bytes::new()).await, Err(BlobError::InvalidKey(_))), "{key:?}");
        assert!(matches!(s.get(key).await, Err(BlobError::InvalidKey(_))), "{key:?}");
    }
    s.check().await.unwrap();
}

async fn ranges(s: Arc<dyn BlobStore>) {
    s.put("binaries/node/f.bin", Bytes::from(pattern(0, 1000))).await.unwrap();
    assert_eq!(read_range(s.as_ref(), "binaries/node/f.bin", 10, 100).await.unwrap(), pattern(10, 100));
    assert_eq!(read_range(s.as_ref(), "binaries/node/f.bin", 0, 1000).await.unwrap(), pattern(0, 1000));
    assert_eq!(read_range(s.as_ref(), "binaries/node/f.bin", 990, 10).await.unwrap(), pattern(990, 10));
    assert_eq!(read_range(s.as_ref(), "binaries/node/f.bin", 999, 1).await.unwrap(), pattern(999, 1));
    assert_eq!(read_range(s.as_ref(), "binaries/node/f.bin", 5, 0).await.unwrap(), b"");
    assert!(s.get_range("binaries/node/missing", 0, 10).await.unwrap().is_none());
}

async fn streams_and_cache_writes(s: Arc<dyn BlobStore>) {
    let parts = vec![Ok(Bytes::from_static(b"one ")), Ok(Bytes::new()), Ok(Bytes::from_static(b"two ")), Ok(Bytes::from_static(b"three"))];
    assert_eq!(s.put_stream("logs/x", chunks(parts)).await.unwrap(), 13);
    assert_eq!(read(s.as_ref(), "logs/x").await.unwrap(), b"one two three");
    assert_eq!(s.put_stream("logs/empty", chunks(vec![])).await.unwrap(), 0);
    assert_eq!(s.head("logs/empty").await.unwrap(), Some(0));
    s.put_cache("proxy/p/p-1.0.0.tgz", Bytes::from_static(b"cached")).await.unwrap();
    assert_eq!(read(s.as_ref(), "proxy/p/p-1.0.0.tgz").await.unwrap(), b"cached");
}

async fn a_failed_stream_stores_nothing(s: Arc<dyn BlobStore>) {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "checksum mismatch");
    // A short stream, and one long enough to have started a multipart upload.
    for (len, key) in [(10usize, "binaries/n/short"), (cairn::blob::S3_PART_SIZE + 300_000, "binaries/n/long")] {
        let stream = generated(len).chain(futures_util::stream::iter([Err(bad())])).boxed();
        match s.put_stream(key, stream).await {
            Err(BlobError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "the stream's own error comes back"),
            other => panic!("a failed stream must fail the write: {other:?}"),
        }
        assert_eq!(s.head(key).await.unwrap(), None, "{key}");
    }
    assert!(s.list("binaries/").await.unwrap().is_empty(), "nothing listed either");
    // A failed overwrite leaves the old blob whole.
    s.put("binaries/n/kept", Bytes::from_static(b"old")).await.unwrap();
    let stream = chunks(vec![Ok(Bytes::from_static(b"new, partial")), Err(bad())]);
    assert!(s.put_stream("binaries/n/kept", stream).await.is_err());
    assert_eq!(read(s.as_ref(), "binaries/n/kept").await.unwrap(), b"old");
}

async fn an_upload_in_progress_is_invisible(s: Arc<dyn BlobStore>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }).boxed();
    let writer = {
        let s = s.clone();
        tokio::spawn(async move { s.put_stream("binaries/n/growing", stream).await })
    };
    // More than a part: on S3 the multipart upload is under way.
    for i in 0..2 {
        tx.send(Ok(Bytes::from(pattern(i * 4_000_000, 4_000_000)))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.head("binaries/n/growing").await.unwrap(), None, "nothing visible before the stream ends");
    assert!(s.get("binaries/n/growing").await.unwrap().is_none());
    tx.send(Ok(Bytes::from(pattern(8_000_000, 1_000)))).await.unwrap();
    drop(tx);
    assert_eq!(writer.await.unwrap().unwrap(), 8_001_000);
    assert_eq!(read(s.as_ref(), "binaries/n/growing").await.unwrap(), pattern(0, 8_001_000));
}

async fn lists_with_ages_and_sweeps_orphans(s: Arc<dyn BlobStore>) {
    for key in ["tarballs/@s/n/n-1.0.0-ab.tgz", "tarballs/foo/foo-1.0.0-cd.tgz", "proxy/up/up-1.0.0-ab.tgz", "logs/sync/t.log"] {
        s.put(key, Bytes::from_static(b"x")).await.unwrap();
    }
    let mut keys: Vec<String> = s.list("tarballs/").await.unwrap().into_iter().map(|e| e.key).collect();
    keys.sort();
    assert_eq!(keys, ["tarballs/@s/n/n-1.0.0-ab.tgz", "tarballs/foo/foo-1.0.0-cd.tgz"]);
    assert_eq!(s.list("tarballs/f").await.unwrap().len(), 1, "a prefix that ends inside a segment");
    assert_eq!(s.list("").await.unwrap().len(), 4);
    assert!(s.list("nothing/").await.unwrap().is_empty());
    for e in s.list("").await.unwrap() {
        let age = e.modified.elapsed().unwrap_or_default();
        assert!(age < Duration::from_secs(120), "{} is {age:?} old", e.key);
    }
    // The sweep, on this store and a database where one blob is referenced.
    let dir = tempfile::tempdir().unwrap();
    let db = cairn::store::open(&format!("sqlite://{}", dir.path().join("c.db").display()), 2).await.unwrap();
    let proxied = cairn::store::ProxyTarball {
        name: "up".into(),
        file: "up-1.0.0.tgz".into(),
        version: "1.0.0".into(),
        blob_key: "proxy/up/up-1.0.0-ab.tgz".into(),
        size: 1,
        integrity: "sha512-x".into(),
        created_at: 1,
    };
    assert!(db.put_proxy_tarball(&proxied).await.unwrap());
    // Too young to sweep.
    assert_eq!(cairn::blob::sweep::sweep(db.as_ref(), s.as_ref(), Duration::from_secs(3600)).await.unwrap(), 0);
    // Wait until the blobs are older than a second (S3 times have whole seconds).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(cairn::blob::sweep::sweep(db.as_ref(), s.as_ref(), Duration::from_secs(1)).await.unwrap(), 2);
    let mut left: Vec<String> = s.list("").await.unwrap().into_iter().map(|e| e.key).collect();
    left.sort();
    assert_eq!(left, ["logs/sync/t.log", "proxy/up/up-1.0.0-ab.tgz"]);
    db.close().await;
}

async fn large_streams_in_bounded_memory(s: Arc<dyn BlobStore>) {
    const SIZE: usize = 48 * 1024 * 1024;
    // Two parts uploading and one filling on S3: about 15 MiB.
    const BOUND: i64 = 20 * 1024 * 1024;
    let expected = {
        let mut h = Sha256::new();
        let mut g = generated(SIZE);
        while let Some(c) = g.next().await {
            h.update(c.unwrap());
        }
        h.finalize()
    };
    let base = reset_peak();
    assert_eq!(s.put_stream("binaries/big/file", generated(SIZE)).await.unwrap(), SIZE as u64);
    let write_peak = peak() - base;
    assert_eq!(s.head("binaries/big/file").await.unwrap(), Some(SIZE as u64));
    let base = reset_peak();
    let blob = s.get("binaries/big/file").await.unwrap().unwrap();
    assert_eq!(blob.size, SIZE as u64);
    let (mut h, mut n, mut stream) = (Sha256::new(), 0usize, blob.stream);
    while let Some(c) = stream.next().await {
        let c = c.unwrap();
        n += c.len();
        h.update(&c);
    }
    let read_peak = peak() - base;
    assert_eq!((n, h.finalize()), (SIZE, expected), "the object reads back whole");
    assert!(write_peak < BOUND, "writing {SIZE} bytes held {write_peak} bytes at once");
    assert!(read_peak < BOUND, "reading {SIZE} bytes held {read_peak} bytes at once");
    // A range across a part boundary.
    let start = cairn::blob::S3_PART_SIZE - 1000;
    assert_eq!(read_range(s.as_ref(), "binaries/big/file", start as u64, 5000).await.unwrap(), pattern(start, 5000));
}
