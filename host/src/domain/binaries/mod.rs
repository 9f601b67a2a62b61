//! The binary mirror: the API rules (which binaries exist, which paths are
//! valid, what a path names, who may sync), the sources that read an
//! upstream tree (`node`: the autoindex HTML of a Node.js-style dist site;
//! `bucket`: S3/GCS ListObjects XML; `github`: a repository's releases;
//! `api`: another Cairn's `/-/binary/<category>/` JSON; `plugin`: an
//! upstream-adapter plugin exporting `binary-source`) and the sync that
//! walks one (`sync`).

pub mod api;
pub mod bucket;
pub mod github;
pub mod node;
pub mod plugin;
pub mod sync;

use crate::config::BinaryConfig;
use crate::domain::App;
use crate::store::{BinaryEntry, Task};

use super::{Error, Identity, Result};

/// The task kind of a binary sync in the shared task queue; the target is the category.
pub const TASK_TYPE: &str = "binary";

/// Longest accepted subpath, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;

/// Most entries a listing answers.
pub const MAX_LIMIT: i64 = 1000;
/// Entries a plain directory listing answers at most (a bound on memory,
/// far above any real dist directory).
pub const MAX_DIR_ENTRIES: i64 = 100_000;

pub fn binary<'a>(app: &'a App, category: &str) -> Result<&'a BinaryConfig> {
    app.config.binaries.iter().find(|b| b.category == category).ok_or_else(|| Error::NotFound(format!("binary {category:?} not found")))
}

/// What a path under `/-/binary/<category>/` names.
pub enum Lookup {
    /// A directory (`/` or `/a/b/`) and its entries.
    Dir {
        parent: String,
        entries: Vec<BinaryEntry>,
    },
    File(BinaryEntry),
}

/// Refuses `..`, control characters and paths over [`MAX_PATH_BYTES`].
pub fn check_path(segments: &[&str]) -> Result<()> {
    let len: usize = segments.iter().map(|s| s.len() + 1).sum();
    if len > MAX_PATH_BYTES {
        return Err(Error::BadRequest(format!("a binary path may not exceed {MAX_PATH_BYTES} bytes")));
    }
    if segments.iter().any(|s| *s == "." || *s == ".." || s.contains('/') || s.contains('\\') || s.chars().any(char::is_control)) {
        return Err(Error::BadRequest("a binary path may not contain '.', '..', control characters or encoded slashes".into()));
    }
    Ok(())
}

/// The directory path of `segments` (`/` or `/a/b/`).
fn dir_path(segments: &[&str]) -> String {
    segments.iter().fold(String::from("/"), |acc, s| format!("{acc}{s}/"))
}

/// Finds what `segments` names: a mirrored file, or a directory (the root,
/// or one with entries or a row). `since` (ms) and `limit` filter listings.
pub async fn lookup(app: &App, category: &str, segments: &[&str], since: Option<i64>, limit: Option<i64>) -> Result<Lookup> {
    binary(app, category)?;
    check_path(segments)?;
    // A plain listing is the whole directory (as a dist site's index is);
    // `since` listings page, at most MAX_LIMIT at a time.
    let limit = match (since, limit) {
        (None, None) => MAX_DIR_ENTRIES,
        (_, limit) => limit.unwrap_or(MAX_LIMIT).clamp(1, MAX_LIMIT),
    };
    if let Some((last, parents)) = segments.split_last() {
        let parent = dir_path(parents);
        if let Some(file) = app.store.binary_entry(category, &parent, last).await?.filter(|e| !e.is_dir) {
            return Ok(Lookup::File(file));
        }
        let dir = app.store.binary_entry(category, &parent, &format!("{last}/")).await?;
        let parent = dir_path(segments);
        let entries = app.store.binary_entries(category, &parent, since, limit).await?;
        let exists = || async { Ok::<_, Error>(dir.is_some() || !app.store.binary_entries(category, &parent, None, 1).await?.is_empty()) };
        if entries.is_empty() && !exists().await? {
            return Err(Error::NotFound(format!("binary {category:?} has no {}", parent.trim_end_matches('/'))));
        }
        return Ok(Lookup::Dir { parent, entries });
    }
    let entries = app.store.binary_entries(category, "/", since, limit).await?;
    Ok(Lookup::Dir { parent: "/".into(), entries })
}

/// Queues a sync of `category` (admins only).
pub async fn request_sync(app: &App, caller: Option<&Identity>, category: &str) -> Result<Task> {
    let caller = super::auth::require(caller)?;
    if !caller.is_admin {
        return Err(Error::Forbidden("only admins may sync binaries".into()));
    }
    binary(app, category)?;
    enqueue(app, category, Some(&caller.name)).await
}

/// Queues a sync without permission checks (CLI, schedules). A waiting task
/// of the same binary absorbs it.
pub async fn enqueue(app: &App, category: &str, author: Option<&str>) -> Result<Task> {
    let task = super::sync::waiting_task(TASK_TYPE, category, 0, "{}".into(), author);
    let queued = app.store.enqueue_task(&task, &|existing, _| existing.to_string()).await?;
    app.sync_wakeup.notify_waiters();
    Ok(queued)
}

/// A binary sync task of `category`.
pub async fn find_task(app: &App, category: &str, id: &str) -> Result<Task> {
    binary(app, category)?;
    match app.store.task(id).await? {
        Some(t) if t.target == category && t.kind == TASK_TYPE => Ok(t),
        _ => Err(Error::NotFound(format!("sync task {id} of binary {category} not found"))),
    }
}

/// `*` (any run) and `?` (any one character) glob match.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_paths() {
        assert!(glob_match("*.pdb", "node.pdb"));
        assert!(glob_match("v0.?.*", "v0.1.100"));
        assert!(!glob_match("*.pdb", "node.exe"));
        assert!(glob_match("docs", "docs") && !glob_match("docs", "docs2"));
        assert!(check_path(&["v1.0.0", "node.tar.gz"]).is_ok());
        assert!(check_path(&["..", "x"]).is_err());
        assert!(check_path(&["a\u{1}"]).is_err());
        assert!(check_path(&[&"a".repeat(1100)]).is_err());
        assert_eq!(dir_path(&[]), "/");
        assert_eq!(dir_path(&["a", "b"]), "/a/b/");
    }
}
