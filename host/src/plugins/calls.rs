//! The calls into a plugin, one per export, with their results validated.
//! Public methods take and return the plain host types of `types.rs`; the
//! `*_wit` variants take the generated types, so a caller asking several
//! plugins converts its arguments once.

use std::time::{Duration, Instant};

use super::bindings::types as wit;
use super::plugin::{Fault, LoadedPlugin};
use super::pool::{Bound, Pre, Warm};
use super::types;

const MAX_REASON: usize = 1024;

impl LoadedPlugin {
    pub async fn authorize(
        &self,
        action: types::Action,
        package: Option<&types::PackageRef>,
        caller: &types::Caller,
    ) -> Result<types::Decision, Fault> {
        let package: Option<wit::PackageRef> = package.cloned().map(Into::into);
        let decision = self.authorize_wit(action.into(), package.as_ref(), &caller.clone().into()).await?;
        Ok(decision.into())
    }

    pub(super) async fn authorize_wit(
        &self,
        action: wit::Action,
        package: Option<&wit::PackageRef>,
        caller: &wit::Caller,
    ) -> Result<wit::Decision, Fault> {
        let started = Instant::now();
        let mut warm = self.take(started).await?;
        let outcome = match &warm.bound {
            Bound::Auth(b) => b.cairn_plugin_policy().call_authorize(&mut warm.store, action, package, caller).await,
            _ => Err(wasmtime::Error::msg("not an auth-policy plugin")),
        };
        self.settle(started, warm, outcome, |d| match d {
            wit::Decision::Deny(reason) => check_reason(reason),
            wit::Decision::Allow => Ok(()),
        })
    }

    pub async fn check(&self, info: &types::VersionInfo) -> Result<types::Verdict, Fault> {
        Ok(self.check_wit(&info.clone().into()).await?.into())
    }

    pub(super) async fn check_wit(&self, info: &wit::VersionInfo) -> Result<wit::Verdict, Fault> {
        let started = Instant::now();
        let mut warm = self.take(started).await?;
        let outcome = match &warm.bound {
            Bound::Block(b) => b.cairn_plugin_rule().call_check(&mut warm.store, info).await,
            _ => Err(wasmtime::Error::msg("not a block-rule plugin")),
        };
        self.settle(started, warm, outcome, |v| match v {
            wit::Verdict::Block(reason) => check_reason(reason),
            wit::Verdict::Accept => Ok(()),
        })
    }

    /// The upstream's packument of `name` (validated as a JSON object naming it), or None.
    pub async fn packument(&self, name: &str) -> Result<Option<serde_json::Value>, Fault> {
        let started = Instant::now();
        let mut warm = self.take(started).await?;
        let outcome = match &warm.bound {
            Bound::Upstream(b) => b.cairn_plugin_adapter().call_packument(&mut warm.store, name).await,
            Bound::BinarySource(_) => Err(wasmtime::Error::msg("a binary source (binary-source-adapter) serves no packages")),
            _ => Err(wasmtime::Error::msg("not an upstream-adapter plugin")),
        };
        let raw = self.settle(started, warm, outcome, |_| Ok(()))?;
        match raw {
            Err(message) => Err(self.reported(message)),
            Ok(None) => Ok(None),
            Ok(Some(json)) => {
                let value: serde_json::Value =
                    serde_json::from_str(&json).map_err(|e| Fault { message: format!("returned a malformed packument: {e}") })?;
                if value.get("name").and_then(|n| n.as_str()) != Some(name) || !value.get("versions").is_some_and(|v| v.is_object()) {
                    return Err(Fault { message: format!("returned a packument that is not an object with name {name:?} and versions") });
                }
                Ok(Some(value))
            }
        }
    }

    pub async fn tarball(&self, name: &str, version: &str, url: &str) -> Result<Vec<u8>, Fault> {
        let started = Instant::now();
        let mut warm = self.take(started).await?;
        let outcome = match &warm.bound {
            Bound::Upstream(b) => b.cairn_plugin_adapter().call_tarball(&mut warm.store, name, version, url).await,
            Bound::BinarySource(_) => Err(wasmtime::Error::msg("a binary source (binary-source-adapter) serves no packages")),
            _ => Err(wasmtime::Error::msg("not an upstream-adapter plugin")),
        };
        let raw = self.settle(started, warm, outcome, |_| Ok(()))?;
        raw.map_err(|message| self.reported(message))
    }

    /// An error the plugin returned itself: counted, and logged like a fault.
    fn reported(&self, message: String) -> Fault {
        self.stats.count_error();
        let message: String = message.chars().take(2000).collect();
        tracing::warn!(plugin = %self.meta.name, error = %message, "plugin reported an error");
        Fault { message: format!("reported an error: {message}") }
    }
    /// The request a hook formatter makes of `event`. A formatter built for
    /// `rich-formatter` (0.1.1) also gets `context`; one built for 0.1.0's
    /// `formatter` gets the event alone.
    pub async fn format(&self, event: &types::Event, context: &types::HookContext) -> Result<types::Outbound, Fault> {
        let event: wit::Event = event.clone().into();
        let started = Instant::now();
        let mut warm = self.take(started).await?;
        let outcome = match &warm.bound {
            Bound::Hook(b) => b.cairn_plugin_formatter().call_format(&mut warm.store, &event).await,
            Bound::RichHook(b) => b.cairn_plugin_rich_formatter().call_format(&mut warm.store, &event, &context.clone().into()).await,
            _ => Err(wasmtime::Error::msg("not a hook-formatter plugin")),
        };
        let raw = self.settle(started, warm, outcome, |r| match r {
            Ok(out) => {
                http::HeaderValue::from_str(&out.content_type).map_err(|_| format!("invalid content type {:?}", out.content_type))?;
                for h in &out.headers {
                    http::HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| format!("invalid header name {:?}", h.name))?;
                    http::HeaderValue::from_str(&h.value).map_err(|_| format!("invalid value for header {}", h.name))?;
                }
                Ok(())
            }
            Err(_) => Ok(()),
        })?;
        raw.map(Into::into).map_err(|message| self.reported(message))
    }

    /// Whether this upstream adapter is a binary source (`binary-source-adapter`, 0.1.1).
    pub fn is_binary_source(&self) -> bool {
        matches!(self.pre, Pre::BinarySource(_))
    }

    /// The entries of the binary source's directory `path` (`/` or `/a/b/`),
    /// or None when the upstream has none. Entries are checked: one path
    /// segment each (a directory's ending with `/`), unique, and an http(s)
    /// `url` for files.
    pub async fn binary_list(&self, path: &str) -> Result<Option<Vec<types::BinaryEntry>>, Fault> {
        let started = Instant::now();
        let mut warm = self.take(started).await?;
        let outcome = match &warm.bound {
            Bound::BinarySource(b) => b.cairn_plugin_binary_source().call_list(&mut warm.store, path).await,
            _ => Err(wasmtime::Error::msg("not a binary-source plugin")),
        };
        let raw = self.settle(started, warm, outcome, |r| match r {
            Ok(Some(entries)) => check_entries(entries),
            _ => Ok(()),
        })?;
        match raw {
            Ok(entries) => Ok(entries.map(|e| e.into_iter().map(Into::into).collect())),
            Err(message) => Err(self.reported(message)),
        }
    }
}

impl LoadedPlugin {
    /// Average cost of an auth-policy decision: on a fresh instance each time
    /// (instantiate + init + call) and on one reused instance.
    pub async fn bench_authorize(&self, calls: u32) -> Result<(Duration, Duration), Fault> {
        let package = wit::PackageRef { name: "@acme/bench".into(), scope: Some("@acme".into()), version: Some("1.0.0".into()) };
        let caller = wit::Caller {
            user: Some("alice".into()),
            admin: false,
            token_readonly: false,
            token_automation: false,
            client_ip: "127.0.0.1".into(),
        };
        let started = Instant::now();
        for _ in 0..calls {
            let mut warm = self.instantiate().await?;
            self.bench_call(&mut warm, &package, &caller).await?;
        }
        let fresh = started.elapsed() / calls.max(1);
        let mut warm = self.instantiate().await?;
        self.bench_call(&mut warm, &package, &caller).await?;
        let started = Instant::now();
        for _ in 0..calls {
            self.bench_call(&mut warm, &package, &caller).await?;
        }
        let reused = started.elapsed() / calls.max(1);
        Ok((fresh, reused))
    }

    async fn bench_call(&self, warm: &mut Warm, package: &wit::PackageRef, caller: &wit::Caller) -> Result<(), Fault> {
        self.arm(&mut warm.store, self.meta.timeout);
        match &warm.bound {
            Bound::Auth(b) => b
                .cairn_plugin_policy()
                .call_authorize(&mut warm.store, wit::Action::Publish, Some(package), caller)
                .await
                .map(|_| ())
                .map_err(|e| self.fault(&warm.store, &e)),
            _ => Err(Fault { message: "not an auth-policy plugin".into() }),
        }
    }
}

fn check_reason(reason: &str) -> Result<(), String> {
    if reason.is_empty() || reason.len() > MAX_REASON {
        return Err(format!("a reason must be 1-{MAX_REASON} bytes, got {}", reason.len()));
    }
    if reason.chars().any(|c| c.is_control()) {
        return Err("a reason may not contain control characters".into());
    }
    Ok(())
}

/// A binary source's listing: names of one segment (`/`-terminated for
/// directories, never `.` or `..`), each once, files with an http(s) `url`,
/// checksums as `sha256:<64 hex>`.
fn check_entries(entries: &[wit::BinaryEntry]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for e in entries {
        let bare = e.name.strip_suffix('/').unwrap_or(&e.name);
        let segment = !bare.is_empty() && bare != "." && bare != ".." && !bare.contains(['/', '\\']) && !bare.chars().any(char::is_control);
        if !segment || e.name.len() > 255 || e.is_dir != e.name.ends_with('/') {
            return Err(format!("entry {:?} is not one path segment (a directory's ending with /)", e.name));
        }
        if !seen.insert(e.name.as_str()) {
            return Err(format!("entry {:?} is listed twice", e.name));
        }
        let http = e.url.starts_with("http://") || e.url.starts_with("https://");
        if !e.is_dir && !http {
            return Err(format!("entry {:?} has no http(s) url", e.name));
        }
        if let Some(sum) = &e.checksum {
            let hex = sum.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("entry {:?}: checksum {sum:?} is not sha256:<64 hex digits>", e.name));
            }
        }
    }
    Ok(())
}
