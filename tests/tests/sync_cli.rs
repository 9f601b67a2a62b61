//! `cairn sync NAME...`: queues, works the queue, shows progress, fails with the log tail.

use cairn_e2e::publish::publish_with;
use cairn_e2e::{cairn_bin, Backend, Server, ServerOptions, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_syncs_and_reports_failures() {
    let upstream = Server::start(Backend::Sqlite).await;
    let alice = upstream.add_user("alice", "password123").await;
    for v in ["1.0.0", "1.1.0"] {
        let p = publish_with(&upstream, Some(&alice), "cli-pkg", v, json!({"dependencies": {"cli-dep": "^1.0.0"}}), None).await;
        assert_eq!(p.status, StatusCode::CREATED);
    }
    let p = publish_with(&upstream, Some(&alice), "cli-dep", "1.0.0", json!({}), None).await;
    assert_eq!(p.status, StatusCode::CREATED);

    // A downstream server with no workers of its own: the CLI does the work.
    let tail = format!("[[registries]]\nname = \"up\"\nhost = {:?}\ntype = \"cnpm\"\ndefault = true\n", upstream.base);
    let down = Server::start_with(ServerOptions::new(Backend::Sqlite).toml("sync_workers = 0").tail(&tail)).await;

    let out = tokio::task::spawn_blocking({
        let config = down.config_path.clone();
        move || {
            std::process::Command::new(cairn_bin()).args(["sync", "cli-pkg", "no-such-package", "--config"]).arg(config).output().unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "one of the syncs failed, so the command fails:\n{stderr}");
    assert!(
        stderr.contains("no-such-package") && stderr.contains("was not found upstream"),
        "the log tail of the failure is shown:\n{stderr}"
    );
    assert!(stderr.contains("1 of 2 syncs failed"), "{stderr}");

    // The server (same database) now serves what the CLI synced, tarballs included.
    let (status, doc) = down.get("/cli-pkg", None).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["versions"].as_object().unwrap().len(), 2);
    assert_eq!(doc["dist-tags"]["latest"], json!("1.1.0"));
    let resp = down.client.get(down.url("/cli-pkg/-/cli-pkg-1.1.0.tgz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Its dependency was queued; a second run with --nodeps on it finishes it.
    let out =
        std::process::Command::new(cairn_bin()).args(["sync", "cli-dep", "--nodeps", "--config"]).arg(&down.config_path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, _) = down.get("/cli-dep", None).await;
    assert_eq!(status, StatusCode::OK);
}
