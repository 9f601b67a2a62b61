//! Who may create a new package under which scope. Like npm, the scope
//! `@<username>` belongs to that user; other scopes are open only when listed in
//! `[publish] allowed_scopes` (`"*"` opens every scope that is not another
//! user's name). Admins may create packages anywhere. New versions of existing
//! packages only need maintainership (checked by the publish itself); the
//! auth-policy plugins (e.g. the scope-policy sample) can refuse more.

use crate::config::PublishConfig;
use crate::domain::App;

use super::{names, Error, Identity, Result};

/// What the configuration alone says about a scope for this caller.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Allowed,
    /// Open unless the scope is another user's name (`"*"`).
    UnlessAUser,
    Refused,
}

fn verdict(config: &PublishConfig, caller: &Identity, scope: Option<&str>) -> Verdict {
    match scope {
        _ if caller.is_admin => Verdict::Allowed,
        None if config.allow_unscoped => Verdict::Allowed,
        None => Verdict::Refused,
        Some(scope) if scope.strip_prefix('@') == Some(caller.name.as_str()) => Verdict::Allowed,
        Some(scope) if config.allowed_scopes.iter().any(|s| s == scope) => Verdict::Allowed,
        Some(_) if config.allowed_scopes.iter().any(|s| s == "*") => Verdict::UnlessAUser,
        Some(_) => Verdict::Refused,
    }
}

/// `@s/n` → `@s`.
fn scope_of(name: &str) -> Option<&str> {
    name.starts_with('@').then(|| name.split_once('/').map(|(s, _)| s)).flatten()
}

/// May `caller` create the package `name`, which does not exist yet? Checks
/// npm's rules for new names, then the scope.
pub async fn check_new_package(app: &App, caller: &Identity, name: &str) -> Result<()> {
    names::validate_new(name)?;
    let scope = scope_of(name);
    let refused = || {
        match scope {
        None => Error::Forbidden(format!("cannot create {name}: unscoped packages are not allowed here ([publish] allow_unscoped = false); publish under @{}", caller.name)),
        Some(scope) => Error::Forbidden(format!(
            "cannot create {name}: the scope {scope} is not yours; publish under @{} or ask an admin to open {scope} ([publish] allowed_scopes)",
            caller.name
        )),
    }
    };
    match verdict(&app.config.publish, caller, scope) {
        Verdict::Allowed => Ok(()),
        Verdict::Refused => Err(refused()),
        Verdict::UnlessAUser => {
            let owner = scope.and_then(|s| s.strip_prefix('@')).unwrap_or_default();
            match app.store.user_by_name(owner).await? {
                Some(_) => Err(refused()),
                None => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(name: &str, is_admin: bool) -> Identity {
        Identity {
            user_id: format!("id-{name}"),
            name: name.into(),
            email: None,
            is_admin,
            token_key: String::new(),
            readonly: false,
            automation: false,
            client_ip: "127.0.0.1".parse().unwrap(),
        }
    }

    fn config(scopes: &[&str], unscoped: bool) -> PublishConfig {
        PublishConfig { allowed_scopes: scopes.iter().map(|s| s.to_string()).collect(), allow_unscoped: unscoped }
    }

    #[test]
    fn own_scope_listed_scopes_and_admins() {
        let bob = caller("bob", false);
        let c = config(&["@acme"], true);
        assert_eq!(verdict(&c, &bob, Some("@bob")), Verdict::Allowed);
        assert_eq!(verdict(&c, &bob, Some("@acme")), Verdict::Allowed);
        assert_eq!(verdict(&c, &bob, Some("@alice")), Verdict::Refused);
        assert_eq!(verdict(&c, &bob, Some("@other")), Verdict::Refused);
        assert_eq!(verdict(&c, &bob, None), Verdict::Allowed);
        assert_eq!(verdict(&config(&[], false), &bob, None), Verdict::Refused);
        assert_eq!(verdict(&config(&[], false), &caller("root", true), Some("@alice")), Verdict::Allowed);
        assert_eq!(verdict(&config(&["*"], true), &bob, Some("@alice")), Verdict::UnlessAUser);
    }

    #[test]
    fn scopes_of_names() {
        assert_eq!(scope_of("@s/n"), Some("@s"));
        assert_eq!(scope_of("n"), None);
    }
}
