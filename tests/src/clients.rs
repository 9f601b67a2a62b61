//! Running client programs (npm, pnpm, yarn) in tests: what a run did, and
//! how to show it when an assertion fails.

use std::path::Path;

use serde_json::Value;

/// What one client run did.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for messages.
    pub what: String,
    /// The last lines of the server log when the run finished (may be empty).
    pub server_log: String,
}

impl Run {
    pub fn from_output(what: String, out: std::process::Output, server_log: String) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            what,
            server_log,
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The run, after asserting it exited 0.
    #[track_caller]
    pub fn assert_ok(self) -> Run {
        assert!(self.success(), "{}", self.describe());
        self
    }

    /// The run, after asserting it failed.
    #[track_caller]
    pub fn assert_failed(self) -> Run {
        assert!(!self.success(), "expected failure: {}", self.describe());
        self
    }

    /// stdout and stderr together (npm prints notices such as PONG on stderr).
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub fn describe(&self) -> String {
        let mut s =
            format!("`{}` exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.what, self.code, self.stdout, self.stderr);
        if !self.server_log.is_empty() {
            s.push_str(&format!("\n--- server log (tail) ---\n{}", self.server_log));
        }
        s
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.describe()))
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A command for npm, pnpm or yarn that sees none of the machine's client
/// settings: `npm_config_*`, `yarn_*`, `pnpm_*` and `CI` are removed from its
/// environment, its config and cache files are the test's own, and it prints no
/// audit, fund or update notices, progress or colours. No stdin; killed with the test.
pub fn isolated_command(
    program: impl AsRef<std::ffi::OsStr>,
    userconfig: &Path,
    globalconfig: &Path,
    cache: &Path,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    for (k, _) in std::env::vars_os() {
        let k_lower = k.to_string_lossy().to_ascii_lowercase();
        if k_lower.starts_with("npm_config_") || k_lower.starts_with("yarn_") || k_lower.starts_with("pnpm_") || k_lower == "ci" {
            cmd.env_remove(k);
        }
    }
    cmd.env("npm_config_userconfig", userconfig)
        .env("npm_config_globalconfig", globalconfig)
        .env("npm_config_cache", cache)
        .env("npm_config_audit", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_update_notifier", "false")
        .env("npm_config_progress", "false")
        .env("npm_config_color", "false")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}
