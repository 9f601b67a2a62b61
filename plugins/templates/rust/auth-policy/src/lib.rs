//! {{name}} (auth-policy): only the users listed for a scope may publish in it.
//! Everything else is allowed (Cairn's own permission checks still apply).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use cairn::plugin::host::{log, Level};
use cairn::plugin::types::{Action, Caller, Decision, PackageRef};
use exports::cairn::plugin::policy::Guest as Policy;

wit_bindgen::generate!({ path: "wit", world: "auth-policy" });

/// `[plugins.config] publishers = { "@acme" = ["alice"] }`
static PUBLISHERS: OnceLock<BTreeMap<String, Vec<String>>> = OnceLock::new();

fn load() -> Result<BTreeMap<String, Vec<String>>, String> {
    let config: serde_json::Value = serde_json::from_str(&cairn::plugin::host::config()).map_err(|e| e.to_string())?;
    let publishers = config.get("publishers").cloned().unwrap_or_else(|| serde_json::json!({}));
    serde_json::from_value(publishers).map_err(|e| format!("`publishers` must map scopes to lists of users: {e}"))
}

struct Plugin;

impl Guest for Plugin {
    fn init() -> Result<(), String> {
        let publishers = load()?;
        log(Level::Info, &format!("{} scope(s) restricted", publishers.len()));
        let _ = PUBLISHERS.set(publishers);
        Ok(())
    }
}

impl Policy for Plugin {
    fn authorize(action: Action, package: Option<PackageRef>, caller: Caller) -> Decision {
        let Some(scope) = package.and_then(|p| p.scope) else { return Decision::Allow };
        let Some(users) = PUBLISHERS.get().and_then(|p| p.get(&scope)) else { return Decision::Allow };
        if action != Action::Publish || caller.user.is_some_and(|u| users.contains(&u)) {
            return Decision::Allow;
        }
        Decision::Deny(format!("only {} may publish in {scope}", users.join(", ")))
    }
}

export!(Plugin);
