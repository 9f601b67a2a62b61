//! S3-compatible storage for tests: moto's server.
//!
//! `tests/run.sh` starts one `moto_server` and exports its URL as
//! `CAIRN_TEST_S3`; each test makes a bucket of its own there
//! ([`create_bucket`]). Tests that stop and restart the server start one of
//! their own with [`Moto::start`]. moto keeps its data in memory and accepts
//! any credentials.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared S3 server: `$CAIRN_TEST_S3`.
pub fn endpoint() -> String {
    std::env::var("CAIRN_TEST_S3").unwrap_or_else(|_| {
        panic!("CAIRN_TEST_S3 is not set: run tests/run.sh (it starts moto_server), or start `moto_server -H 127.0.0.1 -p PORT` and set CAIRN_TEST_S3=http://127.0.0.1:PORT")
    })
}

/// A fresh bucket with a unique name on the server at `endpoint`.
pub async fn create_bucket(endpoint: &str) -> String {
    let bucket = format!("cairn-test-{}", uuid::Uuid::new_v4().simple());
    put_bucket(endpoint, &bucket).await;
    bucket
}

/// `PUT /<bucket>` (moto accepts unsigned requests for this).
pub async fn put_bucket(endpoint: &str, bucket: &str) {
    let resp = reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.expect("create bucket");
    assert!(resp.status().is_success(), "creating bucket {bucket}: {}", resp.status());
}

/// The `[blobs]` table for `bucket` on `endpoint` (credentials as moto takes them).
pub fn blobs_toml(endpoint: &str, bucket: &str) -> String {
    format!(
        "[blobs]\nkind = \"s3\"\nbucket = {bucket:?}\nendpoint = {endpoint:?}\nregion = \"us-east-1\"\nprefix = \"cairn/\"\naccess_key_id = \"moto\"\nsecret_access_key = \"moto-secret\"\n"
    )
}

/// A `moto_server` of a test's own, on a free loopback port; killed on drop.
pub struct Moto {
    pub port: u16,
    child: Option<Child>,
}

impl Moto {
    pub async fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut moto = Moto { port, child: None };
        moto.restart().await;
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server (its data is lost: moto keeps it in memory).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same port and waits until it answers.
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (pip install 'moto[server]'; tests/run.sh does)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = reqwest::Client::new();
        loop {
            if client.get(self.endpoint()).send().await.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "moto_server did not answer on port {} within 60 s", self.port);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
