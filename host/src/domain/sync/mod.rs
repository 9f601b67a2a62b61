//! Package sync: the task API (queueing, task states, logs). The queue
//! workers (claiming, heartbeats, retries, recovery) are in `worker`; what one
//! sync does is in `package` (the upstream packument and the versions to
//! store), `version` (one version: download, verify, store) and `change`
//! (tags, deprecations, maintainers and removals in one change).

mod change;
mod package;
mod version;
mod worker;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::config::SyncMode;
use crate::domain::App;
use crate::store::{now_ms, Task};
use crate::util::iso_ms;

use super::policy::{self, Action};
use super::{names, Error, Identity, Result};

pub(crate) use package::SyncError;
pub use worker::{run_task, start_workers};

pub const TASK_TYPE: &str = "package";

/// Where a task is in its life. Stored as text (`as_str`/`parse` at the
/// store edge); the JSON API shows the same strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Queued, to run at its `run_after` (also after a retryable failure).
    Waiting,
    /// Claimed by a worker, which sends heartbeats.
    Processing,
    Success,
    Error,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Waiting => "waiting",
            TaskState::Processing => "processing",
            TaskState::Success => "success",
            TaskState::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<TaskState> {
        Some(match s {
            "waiting" => TaskState::Waiting,
            "processing" => TaskState::Processing,
            "success" => TaskState::Success,
            "error" => TaskState::Error,
            _ => return None,
        })
    }

    /// `success` or `error`: the task will not run again.
    pub fn is_finished(self) -> bool {
        matches!(self, TaskState::Success | TaskState::Error)
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options of a sync task, stored as the task's JSON data.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct SyncOptions {
    pub skip_dependencies: bool,
    pub sync_download_data: bool,
    pub force_sync_history: bool,
    pub tips: Option<String>,
    pub registry_name: Option<String>,
    /// None: every version.
    pub specific_versions: Option<Vec<String>>,
}

/// A new task merged into a waiting one: the union of what both asked for.
pub fn merge(existing: &str, new: &str) -> String {
    let a: SyncOptions = serde_json::from_str(existing).unwrap_or_default();
    let b: SyncOptions = serde_json::from_str(new).unwrap_or_default();
    let specific_versions = match (a.specific_versions, b.specific_versions) {
        (Some(x), Some(y)) => Some(x.into_iter().chain(y).collect::<BTreeSet<_>>().into_iter().collect()),
        _ => None,
    };
    let merged = SyncOptions {
        skip_dependencies: a.skip_dependencies && b.skip_dependencies,
        sync_download_data: a.sync_download_data || b.sync_download_data,
        force_sync_history: a.force_sync_history || b.force_sync_history,
        tips: b.tips.or(a.tips),
        registry_name: b.registry_name.or(a.registry_name),
        specific_versions,
    };
    serde_json::to_string(&merged).expect("options serialize")
}

/// Who asked, and how.
pub struct SyncRequest {
    pub options: SyncOptions,
    pub force: bool,
}

/// Checks `sync_mode` and the caller's rights, then queues the sync.
pub async fn request(app: &App, caller: Option<&Identity>, client_ip: std::net::IpAddr, name: &str, req: SyncRequest) -> Result<Task> {
    match app.config.sync_mode {
        SyncMode::None => return Err(Error::Forbidden("syncing is disabled on this registry (sync_mode = none)".into())),
        SyncMode::Admin => {
            let c = super::auth::require(caller)?;
            if !c.is_admin {
                return Err(Error::Forbidden("only admins may sync on this registry (sync_mode = admin)".into()));
            }
        }
        SyncMode::All | SyncMode::Proxy => {
            super::auth::require(caller)?;
        }
    }
    let caller = super::auth::require(caller)?;
    if (req.force || req.options.force_sync_history) && !caller.is_admin {
        return Err(Error::Forbidden("force and forceSyncHistory are for admins".into()));
    }
    names::validate(name)?;
    if let Some(versions) = &req.options.specific_versions {
        for v in versions {
            names::validate_version(v)?;
        }
    }
    if let Some(r) = &req.options.registry_name {
        if app.store.registry(r).await?.is_none() {
            return Err(Error::Invalid(format!("registry {r} does not exist")));
        }
    }
    if let Some(pkg) = app.store.package(name).await? {
        if pkg.registry_id.is_none() {
            return Err(Error::Forbidden(format!("{name} is published on this registry; it cannot be synced")));
        }
    }
    policy::authorize(app, Action::Sync, Some((name, None)), Some(caller), client_ip).await?;
    enqueue(app, name, &req.options, req.force, Some(&caller.name)).await
}

/// Queues a sync without permission checks (dependencies, changes feed, CLI).
pub async fn enqueue(app: &App, name: &str, options: &SyncOptions, urgent: bool, author: Option<&str>) -> Result<Task> {
    let data = serde_json::to_string(options).expect("options serialize");
    let task = waiting_task(TASK_TYPE, name, if urgent { 10 } else { 0 }, data, author);
    let queued = app.store.enqueue_task(&task, &merge).await?;
    app.sync_wakeup.notify_waiters();
    Ok(queued)
}

/// A new task of `kind` for `target`, waiting to run now (every queue user
/// builds its tasks here, so a new field is set in one place).
pub fn waiting_task(kind: &str, target: &str, priority: i64, data: String, author: Option<&str>) -> Task {
    let now = now_ms();
    Task {
        id: uuid::Uuid::new_v4().simple().to_string(),
        kind: kind.into(),
        target: target.to_string(),
        state: TaskState::Waiting.as_str().into(),
        priority,
        data,
        attempts: 0,
        error: None,
        author: author.map(str::to_string),
        claimed_by: None,
        run_after: now,
        heartbeat_at: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
    }
}

pub fn log_key(task_id: &str) -> String {
    format!("logs/sync/{task_id}.log")
}

pub async fn read_log(app: &App, task_id: &str) -> Result<String> {
    match app.blobs.get(&log_key(task_id)).await? {
        None => Ok(String::new()),
        Some(blob) => {
            use futures_util::TryStreamExt;
            let chunks: Vec<bytes::Bytes> = blob.stream.try_collect().await.map_err(|e| Error::Internal(e.to_string()))?;
            Ok(String::from_utf8_lossy(&chunks.concat()).into_owned())
        }
    }
}

pub async fn find_task(app: &App, name: &str, id: &str) -> Result<Task> {
    match app.store.task(id).await? {
        Some(t) if t.target == name => Ok(t),
        _ => Err(Error::NotFound(format!("sync task {id} of {name} not found"))),
    }
}

/// A task's log, kept in memory and written to the blob store at most every
/// `LOG_WRITE_EVERY` while lines come in (a background writer catches the
/// last line before a long step) and at the end: readable while the task
/// runs, without rewriting a growing file on every line.
pub(crate) struct TaskLog {
    shared: Arc<Mutex<LogText>>,
    writer: tokio::task::JoinHandle<()>,
    app: Arc<App>,
    key: String,
}

#[derive(Default)]
struct LogText {
    text: String,
    /// Lines added since the last write.
    dirty: bool,
    /// When the log was last written.
    written: Option<std::time::Instant>,
}

const LOG_WRITE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl TaskLog {
    async fn new(app: Arc<App>, task_id: &str) -> TaskLog {
        let key = log_key(task_id);
        // A retried task continues its log.
        let text = read_log(&app, task_id).await.unwrap_or_default();
        let shared = Arc::new(Mutex::new(LogText { text, dirty: false, written: None }));
        let writer = {
            let (app, key, shared) = (app.clone(), key.clone(), shared.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LOG_WRITE_EVERY).await;
                    write_log(&app, &key, &shared).await;
                }
            })
        };
        TaskLog { shared, writer, app, key }
    }

    pub(crate) async fn line(&mut self, message: impl AsRef<str>) {
        // Task logs are readable over HTTP: upstream URLs lose their credentials.
        let line = format!("[{}] {}\n", iso_ms(now_ms()), crate::config::redact_url(message.as_ref()));
        let due = {
            let mut log = self.shared.lock().expect("log lock");
            log.text.push_str(&line);
            log.dirty = true;
            log.written.is_none_or(|at| at.elapsed() >= LOG_WRITE_EVERY)
        };
        // The first line, and lines after a quiet spell, are written at once.
        if due {
            write_log(&self.app, &self.key, &self.shared).await;
        }
    }

    /// Writes what is not written yet and stops the background writer.
    pub(crate) async fn finish(self) {
        self.writer.abort();
        write_log(&self.app, &self.key, &self.shared).await;
    }
}

impl Drop for TaskLog {
    /// A task aborted mid-run (shutdown) stops its writer too.
    fn drop(&mut self) {
        self.writer.abort();
    }
}

async fn write_log(app: &App, key: &str, shared: &Mutex<LogText>) {
    let text = {
        let mut log = shared.lock().expect("log lock");
        if !log.dirty {
            return;
        }
        log.dirty = false;
        log.written = Some(std::time::Instant::now());
        bytes::Bytes::from(log.text.clone())
    };
    if let Err(e) = app.blobs.put_cache(key, text).await {
        tracing::warn!(error = %e, key, "writing a sync log failed");
        shared.lock().expect("log lock").dirty = true;
    }
}

#[cfg(test)]
mod tests {
    use super::TaskState;

    #[test]
    fn task_states_keep_their_stored_strings() {
        for (state, text) in [
            (TaskState::Waiting, "waiting"),
            (TaskState::Processing, "processing"),
            (TaskState::Success, "success"),
            (TaskState::Error, "error"),
        ] {
            assert_eq!(state.as_str(), text);
            assert_eq!(TaskState::parse(text), Some(state));
            assert_eq!(state.to_string(), text);
        }
        assert_eq!(TaskState::parse("done"), None);
        assert!(TaskState::Success.is_finished() && TaskState::Error.is_finished());
        assert!(!TaskState::Waiting.is_finished() && !TaskState::Processing.is_finished());
    }
}
