//! `TestApp`: an `App` on a temporary data dir and SQLite database, plus the
//! few helpers the domain tests share (users, identities, publishes).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use cairn::config::Config;
use cairn::domain::{packages, App, Identity, Result};
use cairn::store::{now_ms, User};
use cairn_e2e::publish::{publish_body, tarball};

pub struct TestApp {
    pub app: Arc<App>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// The default configuration (no plugins, unscoped packages allowed, no
    /// other scope open), with its data dir and database in a temp dir.
    pub async fn new() -> TestApp {
        TestApp::with_toml("").await
    }

    /// Like `new`, with the configuration `toml` (its data dir replaced).
    pub async fn with_toml(toml: &str) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config::from_toml(toml).expect("test configuration");
        let config = Config { data_dir: dir.path().to_path_buf(), ..config };
        let app = cairn::server::build_app(config).await.expect("build_app");
        TestApp { app, _dir: dir }
    }

    /// A user row (with a placeholder hash: these tests never log in) and the
    /// identity of a read-write token of theirs.
    pub async fn user(&self, name: &str) -> Identity {
        let now = now_ms();
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            email: Some(format!("{name}@example.test")),
            password_hash: "unused".into(),
            rev: "1-test".into(),
            created_at: now,
            updated_at: now,
            is_admin: false,
        };
        self.app.store.create_user(&user).await.expect("create user");
        Identity {
            user_id: user.id,
            name: user.name,
            email: user.email,
            is_admin: false,
            token_key: format!("test-token-of-{name}"),
            readonly: false,
            automation: false,
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// Publishes `name@version` as `npm publish` would, tagged `latest`.
    pub async fn publish(&self, caller: &Identity, name: &str, version: &str) -> Result<packages::Published> {
        self.publish_doc(caller, name, version, None).await
    }

    /// Publishes `name@version` with `--tag tag` (so `latest` does not move).
    pub async fn publish_tagged(&self, caller: &Identity, name: &str, version: &str, tag: &str) -> Result<packages::Published> {
        self.publish_doc(caller, name, version, Some(tag)).await
    }

    async fn publish_doc(&self, caller: &Identity, name: &str, version: &str, tag: Option<&str>) -> Result<packages::Published> {
        let tgz = tarball(name, version, serde_json::json!({}));
        let body = publish_body(name, version, &tgz, tag, "http://127.0.0.1:1");
        packages::publish(&self.app, caller, name, &body).await
    }

    /// The versions of a package, in publish order.
    pub async fn versions(&self, name: &str) -> Vec<String> {
        let record = self.app.store.package(name).await.expect("read package").expect("package exists");
        record.versions.into_iter().map(|v| v.version).collect()
    }

    pub async fn tag(&self, name: &str, tag: &str) -> Option<String> {
        let tags = packages::dist_tags(&self.app, name).await.expect("dist-tags");
        tags.into_iter().find(|(t, _)| t == tag).map(|(_, v)| v)
    }
}
