//! `cairn migrate` and `cairn user create`.

use std::io::Write;
use std::process::{Command, Stdio};

use cairn_e2e::{assert_error, both_backends, cairn_bin, Backend, Server, ServerOptions, StatusCode};

both_backends!(user_create_makes_the_first_admin);

fn cairn(args: &[&str], config: &std::path::Path, stdin: &str) -> std::process::Output {
    let mut child = Command::new(cairn_bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

async fn user_create_makes_the_first_admin(backend: Backend) {
    let s = Server::start_with(ServerOptions::new(backend).auth("allow_public_registration = false")).await;
    let out = cairn(&["migrate"], &s.config_path, "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cairn(
        &["user", "create", "admin", "--admin", "--email", "root@example.com", "--password-stdin"],
        &s.config_path,
        "s3cret-admin-pw\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created admin admin"));
    // The same name again fails, naming the reason.
    let out = cairn(&["user", "create", "admin", "--password-stdin"], &s.config_path, "s3cret-admin-pw\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    // Bad passwords are refused.
    let out = cairn(&["user", "create", "shorty", "--password-stdin"], &s.config_path, "short\n");
    assert!(!out.status.success());
    // A non-admin created by the operator may log in even with registration closed.
    let out = cairn(&["user", "create", "ops", "--email", "ops@example.com", "--password-stdin"], &s.config_path, "ops-password-1\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created user ops"));

    let (status, body) = s.login("admin", "s3cret-admin-pw", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // `--admin` is what makes an admin (the database flag), not the name.
    let (status, plugins) = s.get("/-/admin/plugins", Some(body["token"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK, "{plugins}");
    let (status, body) = s.login("ops", "ops-password-1", None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, plugins) = s.get("/-/admin/plugins", Some(body["token"].as_str().unwrap())).await;
    assert_error(status, &plugins, 403);
    let (status, body) = s.login("newbie", "password123", Some("n@example.com")).await;
    assert_error(status, &body, 403);
}
