//! Blobs as files under a root directory. Writes go to `<root>/.tmp/<uuid>`,
//! are fsynced, then renamed into place and the directory fsynced, so a crash
//! never leaves a half-written file under a real key.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{validate_key, Blob, BlobEntry, BlobError, BlobStore};

pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let root = root.into();
        std::fs::create_dir_all(root.join(".tmp"))?;
        // Leftovers of writes interrupted by a crash.
        for entry in std::fs::read_dir(root.join(".tmp"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(LocalBlobStore { root })
    }

    fn path(&self, key: &str) -> Result<PathBuf, BlobError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

/// Every file under `dir` (recursively) as a blob entry keyed relative to `root`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<BlobEntry>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() {
            let Ok(relative) = path.strip_prefix(root) else { continue };
            let key: Vec<&str> = relative.components().filter_map(|c| c.as_os_str().to_str()).collect();
            let modified = match entry.metadata() {
                Ok(m) => m.modified()?,
                // Removed since it was listed.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            out.push(BlobEntry { key: key.join("/"), modified });
        }
    }
    Ok(())
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all()).await.map_err(std::io::Error::other)?
}

impl LocalBlobStore {
    /// The one way a blob is written: into a temp file, then renamed over the
    /// key, so a reader sees the whole blob or none; `durable` adds the fsyncs
    /// of the file and of its directory. Returns the bytes written.
    async fn write(&self, key: &str, mut stream: super::ByteStream, durable: bool) -> Result<u64, BlobError> {
        let dest = self.path(key)?;
        let parent = dest.parent().expect("a key has a parent under root").to_path_buf();
        tokio::fs::create_dir_all(&parent).await?;
        let tmp = self.root.join(".tmp").join(uuid::Uuid::new_v4().to_string());
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                file.write_all(&chunk).await?;
            }
            if durable {
                file.sync_all().await?;
            }
            drop(file);
            tokio::fs::rename(&tmp, &dest).await?;
            if durable {
                sync_dir(&parent).await?;
            }
            Ok::<u64, std::io::Error>(size)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        Ok(result?)
    }
}

fn one_chunk(data: Bytes) -> super::ByteStream {
    futures_util::stream::once(async move { Ok(data) }).boxed()
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), BlobError> {
        self.write(key, one_chunk(data), true).await.map(drop)
    }

    async fn put_cache(&self, key: &str, data: Bytes) -> Result<(), BlobError> {
        self.write(key, one_chunk(data), false).await.map(drop)
    }

    async fn put_stream(&self, key: &str, stream: super::ByteStream) -> Result<u64, BlobError> {
        self.write(key, stream, true).await
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Option<Blob>, BlobError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let mut file = match tokio::fs::File::open(self.path(key)?).await {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        file.seek(std::io::SeekFrom::Start(start)).await?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 64 * 1024).boxed();
        Ok(Some(Blob { size: len, stream }))
    }

    async fn get(&self, key: &str) -> Result<Option<Blob>, BlobError> {
        let path = self.path(key)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let size = file.metadata().await?.len();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024).boxed();
        Ok(Some(Blob { size, stream }))
    }

    async fn head(&self, key: &str) -> Result<Option<u64>, BlobError> {
        match tokio::fs::metadata(self.path(key)?).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool, BlobError> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobEntry>, BlobError> {
        // Walk the deepest directory the prefix names, then filter by the whole prefix.
        let dir_part = prefix.rsplit_once('/').map_or("", |(d, _)| d);
        let start = if dir_part.is_empty() { self.root.clone() } else { self.path(dir_part)? };
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let entries = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            walk(&root, &start, &mut out)?;
            Ok::<_, std::io::Error>(out)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(entries.into_iter().filter(|e| e.key.starts_with(&prefix) && !e.key.starts_with(".tmp/")).collect())
    }

    async fn check(&self) -> Result<(), BlobError> {
        // Every write goes through the temp directory: without it nothing can be stored.
        let meta = tokio::fs::metadata(self.root.join(".tmp")).await?;
        if meta.is_dir() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("{} is not a directory", self.root.join(".tmp").display())).into())
        }
    }

    fn describe(&self) -> String {
        format!("local {}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_atomic_layout() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        assert!(store.get("a/b.tgz").await.unwrap().is_none());
        store.put("a/b.tgz", Bytes::from_static(b"hello")).await.unwrap();
        assert_eq!(store.head("a/b.tgz").await.unwrap(), Some(5));
        let blob = store.get("a/b.tgz").await.unwrap().unwrap();
        let chunks: Vec<_> = blob.stream.collect().await;
        let body: Vec<u8> = chunks.into_iter().flat_map(|c| c.unwrap().to_vec()).collect();
        assert_eq!(body, b"hello");
        assert_eq!(std::fs::read_dir(dir.path().join(".tmp")).unwrap().count(), 0);
        assert!(store.delete("a/b.tgz").await.unwrap());
        assert!(!store.delete("a/b.tgz").await.unwrap());
    }

    #[tokio::test]
    async fn lists_keys_under_a_prefix_with_their_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        store.put("tarballs/@s/n/n-1.0.0-ab.tgz", Bytes::from_static(b"x")).await.unwrap();
        store.put("tarballs/foo/foo-1.0.0-cd.tgz", Bytes::from_static(b"y")).await.unwrap();
        store.put("logs/sync/t.log", Bytes::from_static(b"z")).await.unwrap();
        std::fs::write(dir.path().join(".tmp/partial"), b"p").unwrap();
        let mut keys: Vec<String> = store.list("tarballs/").await.unwrap().into_iter().map(|e| e.key).collect();
        keys.sort();
        assert_eq!(keys, ["tarballs/@s/n/n-1.0.0-ab.tgz", "tarballs/foo/foo-1.0.0-cd.tgz"]);
        assert_eq!(store.list("").await.unwrap().len(), 3, "the temp dir is not listed");
        assert!(store.list("proxy/").await.unwrap().is_empty());
        let age = store.list("logs/").await.unwrap()[0].modified.elapsed().unwrap_or_default();
        assert!(age < std::time::Duration::from_secs(60));
    }

    #[tokio::test]
    async fn rejects_escaping_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        for key in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a\\b"] {
            assert!(matches!(store.put(key, Bytes::new()).await, Err(BlobError::InvalidKey(_))), "{key}");
        }
    }
}
