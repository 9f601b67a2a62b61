//! `cairn sync NAME... [--binary CATEGORY...]`: queue syncs, work on the queue in this process (a
//! running server on the same database may claim tasks too), and show a
//! progress line per task until all of them finish.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::domain::sync::{self, SyncOptions, TaskState};
use crate::domain::App;
use crate::store::now_ms;

pub async fn run(app: Arc<App>, names: &[String], binaries: &[String], options: SyncOptions) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for category in binaries {
        let queued = match crate::domain::binaries::binary(&app, category) {
            Ok(_) => crate::domain::binaries::enqueue(&app, category, Some("cli")).await,
            Err(e) => Err(e),
        };
        let task = queued.map_err(|e| anyhow::anyhow!("cannot queue binary {category}: {e}"))?;
        tasks.push((format!("binary {category}"), task.id));
    }
    for name in names {
        let task = sync::enqueue(&app, name, &options, true, Some("cli")).await.map_err(|e| anyhow::anyhow!("cannot queue {name}: {e}"))?;
        tasks.push((name.clone(), task.id));
    }

    // Work on the queue here until our tasks are done.
    let worker = work_until_done(app.clone(), tasks.iter().map(|(_, id)| id.clone()).collect());

    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{spinner} {prefix:.bold} [{elapsed_precise}] {wide_msg}")
        .expect("a valid template")
        .tick_strings(&["-", "\\", "|", "/", "+"]);
    let bars: Vec<ProgressBar> = tasks
        .iter()
        .map(|(name, _)| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(style.clone());
            bar.set_prefix(name.clone());
            bar.set_message("waiting");
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        })
        .collect();
    let mut failures = Vec::new();
    let mut done = vec![false; tasks.len()];
    while done.iter().any(|d| !d) {
        for (i, (name, id)) in tasks.iter().enumerate() {
            if done[i] {
                continue;
            }
            let Some(task) = app.store.task(id).await? else { continue };
            let log = sync::read_log(&app, id).await.unwrap_or_default();
            let last = log.lines().last().map(|l| l.split_once("] ").map_or(l, |(_, m)| m).to_string()).unwrap_or_default();
            match TaskState::parse(&task.state) {
                Some(TaskState::Success) => {
                    bars[i].finish_with_message(format!("done: {last}"));
                    done[i] = true;
                }
                Some(TaskState::Error) => {
                    bars[i].abandon_with_message(format!("FAILED: {}", task.error.clone().unwrap_or_default()));
                    let tail: Vec<&str> = log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
                    failures.push(format!("{name} (task {id}):\n  {}", tail.join("\n  ")));
                    done[i] = true;
                }
                _ => bars[i].set_message(format!("{} (attempt {}): {last}", task.state, task.attempts)),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the worker finish the task it is on (it stops claiming once ours are done).
    let _ = worker.await;
    if failures.is_empty() {
        Ok(())
    } else {
        for f in &failures {
            eprintln!("\n{f}");
        }
        Err(anyhow::anyhow!("{} of {} syncs failed", failures.len(), tasks.len()))
    }
}

/// Claims and runs tasks in this process until the tasks `ids` are finished.
fn work_until_done(app: Arc<App>, ids: Vec<String>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let me = format!("cli-{}", crate::server::worker_id());
        loop {
            let mut pending = false;
            for id in &ids {
                if let Ok(Some(t)) = app.store.task(id).await {
                    pending |= !TaskState::parse(&t.state).is_some_and(TaskState::is_finished);
                }
            }
            if !pending {
                return;
            }
            match app.store.claim_task(&me, now_ms()).await {
                Ok(Some(task)) => sync::run_task(app.clone(), &me, task).await,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })
}
