//! `scope_policy.wasm` (auth-policy): who may publish in a scope, and which
//! scopes anonymous callers may not read.
//!
//! ```toml
//! [plugins.config]
//! # Only these users may publish, unpublish, deprecate, change dist-tags or
//! # owners of packages in these scopes.
//! publishers = { "@acme" = ["alice", "bob"] }
//! # Anonymous callers may not read packages in these scopes.
//! private_scopes = ["@acme-internal"]
//! ```
//!
//! Everything else is allowed (Cairn's own permission checks still apply).
//! Scopes are compared case-insensitively, user names exactly. Admins get no
//! exemption: an admin who should publish in a listed scope must be listed.

use std::collections::BTreeMap;

use cairn_plugin_sdk::auth_policy::{Action, Caller, Decision, Guest, PackageRef, Policy};
use cairn_plugin_sdk::{log, Loaded};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    publishers: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    private_scopes: Vec<String>,
}

/// The configuration with scopes lower-cased.
struct Rules {
    publishers: BTreeMap<String, Vec<String>>,
    private_scopes: Vec<String>,
}

static RULES: Loaded<Rules> = Loaded::new();

fn load() -> Result<Rules, String> {
    let config: Config = cairn_plugin_sdk::config()?;
    let mut publishers = BTreeMap::new();
    for (scope, users) in config.publishers {
        let key = check_scope(&scope, "publishers")?;
        if publishers.insert(key, users).is_some() {
            return Err(format!("scope-policy: scope `{scope}` is listed twice in `publishers` (scopes are case-insensitive)"));
        }
    }
    let private_scopes = config.private_scopes.iter().map(|scope| check_scope(scope, "private_scopes")).collect::<Result<_, _>>()?;
    Ok(Rules { publishers, private_scopes })
}

/// A scope as written in the configuration: `@name`, nothing else.
fn check_scope(scope: &str, setting: &str) -> Result<String, String> {
    let name = scope
        .strip_prefix('@')
        .ok_or_else(|| format!("scope-policy: `{setting}`: scope `{scope}` must start with `@` (write `@{scope}`)"))?;
    if name.is_empty() || name.contains('/') {
        return Err(format!("scope-policy: `{setting}`: `{scope}` is not a scope (expected `@name`)"));
    }
    Ok(scope.to_ascii_lowercase())
}

/// The package's scope, lower-cased: the host's `scope`, or the `@scope` part
/// of the name when the host left it out.
fn scope_of(package: &PackageRef) -> Option<String> {
    let scope = match &package.scope {
        Some(scope) => scope.as_str(),
        None if package.name.starts_with('@') => package.name.split('/').next()?,
        None => return None,
    };
    let scope = scope.to_ascii_lowercase();
    Some(if scope.starts_with('@') { scope } else { format!("@{scope}") })
}

fn verb(action: Action) -> Option<&'static str> {
    Some(match action {
        Action::Publish => "publish",
        Action::Unpublish => "unpublish",
        Action::Deprecate => "deprecate",
        Action::DistTag => "change dist-tags",
        Action::Owner => "change owners",
        _ => return None,
    })
}

fn decide(rules: &Rules, action: Action, package: Option<&PackageRef>, caller: &Caller) -> Decision {
    let Some(package) = package else {
        return Decision::Allow;
    };
    let Some(scope) = scope_of(package) else {
        return Decision::Allow;
    };

    if action == Action::Read {
        if caller.user.is_none() && rules.private_scopes.contains(&scope) {
            return Decision::Deny(format!("scope {scope} is private: anonymous users may not read {}; log in first", package.name));
        }
        return Decision::Allow;
    }

    let Some(verb) = verb(action) else {
        return Decision::Allow;
    };
    let Some(allowed) = rules.publishers.get(&scope) else {
        return Decision::Allow;
    };
    match &caller.user {
        Some(user) if allowed.iter().any(|a| a == user) => Decision::Allow,
        Some(user) => Decision::Deny(format!("user {user} may not {verb} packages in scope {scope} (scope-policy publishers)")),
        None => Decision::Deny(format!("anonymous users may not {verb} packages in scope {scope} (scope-policy publishers)")),
    }
}

struct ScopePolicy;

impl Guest for ScopePolicy {
    fn init() -> Result<(), String> {
        let rules = RULES.get_or_load(load)?;
        log::info(format!("{} publisher scope(s), {} private scope(s)", rules.publishers.len(), rules.private_scopes.len()));
        Ok(())
    }
}

impl Policy for ScopePolicy {
    fn authorize(action: Action, package: Option<PackageRef>, caller: Caller) -> Decision {
        match RULES.get_or_load(load) {
            Ok(rules) => decide(rules, action, package.as_ref(), &caller),
            Err(e) => Decision::Deny(e),
        }
    }
}

cairn_plugin_sdk::export_auth_policy!(ScopePolicy);

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules { publishers: [("@acme".to_string(), vec!["alice".to_string()])].into(), private_scopes: vec!["@secret".to_string()] }
    }

    fn package(name: &str) -> PackageRef {
        PackageRef { name: name.into(), scope: None, version: None }
    }

    fn caller(user: Option<&str>) -> Caller {
        Caller { user: user.map(Into::into), admin: false, token_readonly: false, token_automation: false, client_ip: "127.0.0.1".into() }
    }

    #[test]
    fn publishers_and_private_scopes() {
        let rules = rules();
        let allow = |action, name: &str, user| matches!(decide(&rules, action, Some(&package(name)), &caller(user)), Decision::Allow);
        assert!(allow(Action::Publish, "@acme/a", Some("alice")));
        assert!(!allow(Action::Publish, "@acme/a", Some("bob")));
        assert!(!allow(Action::Publish, "@ACME/a", Some("bob")));
        assert!(!allow(Action::DistTag, "@acme/a", None));
        assert!(allow(Action::Publish, "@other/a", Some("bob")));
        assert!(allow(Action::Read, "@acme/a", None));
        assert!(!allow(Action::Read, "@secret/a", None));
        assert!(allow(Action::Read, "@secret/a", Some("bob")));
        match decide(&rules, Action::Unpublish, Some(&package("@acme/a")), &caller(Some("bob"))) {
            Decision::Deny(reason) => assert!(reason.contains("bob") && reason.contains("@acme"), "{reason}"),
            Decision::Allow => panic!("allowed"),
        }
    }

    #[test]
    fn scopes_need_the_at() {
        assert!(check_scope("acme", "publishers").unwrap_err().contains("`@acme`"));
        assert!(check_scope("@a/b", "publishers").is_err());
        assert_eq!(check_scope("@Acme", "publishers").unwrap(), "@acme");
    }
}
