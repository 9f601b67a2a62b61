//! The queue workers: claiming tasks, heartbeats while one runs, retries with
//! backoff, ending a task, and queueing again the tasks of stopped workers.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::App;
use crate::store::{now_ms, StoreResult, Task};

use super::package::{sync_package, SyncError};
use super::{SyncOptions, TaskLog, TaskState};

/// Starts `sync_workers` workers, the binary sync schedules, the stale-task recovery loop and the changes followers.
pub fn start_workers(app: Arc<App>, worker_prefix: &str) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    for i in 0..app.config.sync_workers {
        let app = app.clone();
        let worker = format!("{worker_prefix}-{i}");
        handles.push(tokio::spawn(async move { worker_loop(app, worker).await }));
    }
    handles.extend(crate::domain::binaries::sync::start_schedules(&app));
    handles.push(tokio::spawn(recovery_loop(app)));
    handles
}

/// Queues again the tasks whose heartbeats stopped (their worker died).
async fn recovery_loop(app: Arc<App>) {
    let timeout = app.config.sync_task_timeout_secs.max(1) as i64 * 1000;
    loop {
        tokio::time::sleep(Duration::from_millis((timeout / 4).clamp(250, 10_000) as u64)).await;
        let now = now_ms();
        match app.store.recover_stale_tasks(now - timeout, now).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(tasks = n, "sync tasks of stopped workers queued again");
                app.sync_wakeup.notify_waiters();
            }
            Err(e) => tracing::warn!(error = %e, "recovering stale sync tasks failed"),
        }
    }
}

async fn worker_loop(app: Arc<App>, worker: String) {
    loop {
        let claimed = app.store.claim_task(&worker, now_ms()).await;
        match claimed {
            Ok(Some(task)) => run_task(app.clone(), &worker, task).await,
            Ok(None) => {
                let notified = app.sync_wakeup.notified();
                let _ = tokio::time::timeout(Duration::from_millis(500), notified).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, worker, "claiming a sync task failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Sends the task's heartbeats until aborted.
fn heartbeats(app: &Arc<App>, task_id: &str, worker: &str) -> tokio::task::JoinHandle<()> {
    let (app, id, worker) = (app.clone(), task_id.to_string(), worker.to_string());
    let every = Duration::from_millis((app.config.sync_task_timeout_secs.max(1) * 1000 / 4).max(100));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let _ = app.store.heartbeat_task(&id, &worker, now_ms()).await;
        }
    })
}

/// Runs one claimed task to its end state, with heartbeats while it runs.
pub async fn run_task(app: Arc<App>, worker: &str, task: Task) {
    let beat = heartbeats(&app, &task.id, worker);
    let mut log = TaskLog::new(app.clone(), &task.id).await;
    let options: SyncOptions = serde_json::from_str(&task.data).unwrap_or_default();
    log.line(format!(
        "sync {} (attempt {}, worker {worker}){}",
        task.target,
        task.attempts,
        options.tips.as_deref().map(|t| format!(": {t}")).unwrap_or_default()
    ))
    .await;
    let result = if task.kind == crate::domain::binaries::TASK_TYPE {
        crate::domain::binaries::sync::run(&app, &task.target, &mut log).await
    } else {
        sync_package(&app, &task.target, &options, &mut log).await
    };
    beat.abort();
    if let Err(e) = settle(&app, &task, result, log).await {
        tracing::error!(error = %e, task = task.id, "recording a sync task's end failed");
    }
    app.sync_done.notify_waiters();
}

/// Records the end of a run: success, back in the queue with exponential
/// backoff (retryable failures, while attempts remain), or error.
/// The log is complete before the task's end state is: a reader that sees
/// the task finished reads its whole log.
async fn settle(app: &App, task: &Task, result: Result<String, SyncError>, mut log: TaskLog) -> StoreResult<()> {
    let now = now_ms();
    match result {
        Ok(summary) => {
            log.line(format!("done: {summary}")).await;
            log.finish().await;
            app.store.finish_task(&task.id, TaskState::Success.as_str(), None, now).await
        }
        Err(SyncError::Retry(message)) if (task.attempts as u32) < app.config.sync_max_attempts => {
            let backoff = (1000i64 << task.attempts.clamp(0, 8)).min(300_000);
            log.line(format!("upstream problem: {message}; retrying in {} s", backoff / 1000)).await;
            log.finish().await;
            app.store.retry_task(&task.id, now + backoff, &message, now).await
        }
        Err(SyncError::Retry(message)) | Err(SyncError::Fail(message)) => {
            log.line(format!("failed: {message}")).await;
            log.finish().await;
            app.store.finish_task(&task.id, TaskState::Error.as_str(), Some(&message), now).await
        }
    }
}
