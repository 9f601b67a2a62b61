//! Package names and versions: what may be published, how files are named.

use super::{Error, Result};

pub const MAX_NAME_LEN: usize = 214;
/// Names of packages synced or proxied from elsewhere may be longer than npm
/// allows for new ones; this bounds them.
pub const MAX_OLD_NAME_LEN: usize = 1024;

/// Node's core modules (`require('module').builtinModules` without the
/// `_`-prefixed and `/` ones, which are invalid names anyway): npm refuses them
/// as names of new packages.
const CORE_MODULES: &[&str] = &[
    "assert",
    "async_hooks",
    "buffer",
    "child_process",
    "cluster",
    "console",
    "constants",
    "crypto",
    "dgram",
    "diagnostics_channel",
    "dns",
    "domain",
    "events",
    "fs",
    "http",
    "http2",
    "https",
    "inspector",
    "module",
    "net",
    "os",
    "path",
    "perf_hooks",
    "process",
    "punycode",
    "querystring",
    "readline",
    "repl",
    "stream",
    "string_decoder",
    "sys",
    "timers",
    "tls",
    "trace_events",
    "tty",
    "url",
    "util",
    "v8",
    "vm",
    "wasi",
    "worker_threads",
    "zlib",
];

/// What `encodeURIComponent` leaves as it is.
fn url_safe(part: &str) -> bool {
    part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '!' | '~' | '*' | '\'' | '(' | ')'))
}

/// npm's `validForOldPackages` (validate-npm-package-name): what may be read,
/// synced or proxied. Stricter than npm in two ways, to keep URLs and storage
/// safe: at most [`MAX_OLD_NAME_LEN`] characters, and a scope may not start
/// with '.'.
pub fn validate(name: &str) -> Result<()> {
    let invalid = |why: &str| Err(Error::Invalid(format!("invalid package name {name:?}: {why}")));
    if name.is_empty() || name.len() > MAX_OLD_NAME_LEN {
        return invalid("must be 1-214 characters (1-1024 for packages from an upstream)");
    }
    // npm applies these to the whole name: `@s/_x` is fine, `_x` is not.
    if name.starts_with('.') || name.starts_with('_') {
        return invalid("may not start with '.' or '_'");
    }
    if name.trim() != name {
        return invalid("may not have leading or trailing spaces");
    }
    if matches!(name.to_ascii_lowercase().as_str(), "node_modules" | "favicon.ico") {
        return invalid("this name is reserved");
    }
    if url_safe(name) {
        return Ok(());
    }
    let Some((scope, base)) = name.strip_prefix('@').and_then(|rest| rest.split_once('/')) else {
        return invalid("may only contain URL-safe characters (a scoped name is @scope/name)");
    };
    if base.starts_with('.') || scope.starts_with('.') {
        return invalid("the scope and the name may not start with '.'");
    }
    if scope.is_empty() || base.is_empty() || !url_safe(scope) || !url_safe(base) {
        return invalid("may only contain URL-safe characters (a scoped name is @scope/name)");
    }
    Ok(())
}

/// npm's `validForNewPackages`: what may be published as a new package. On top
/// of [`validate`]: at most 214 characters, lowercase, no `~'!()*` in the part
/// after the scope, and not the name of a Node core module.
pub fn validate_new(name: &str) -> Result<()> {
    validate(name)?;
    let invalid = |why: &str| Err(Error::Invalid(format!("invalid name {name:?} for a new package: {why}")));
    if name.len() > MAX_NAME_LEN {
        return invalid("must be at most 214 characters");
    }
    if name.to_lowercase() != name {
        return invalid("may not contain capital letters");
    }
    if base_name(name).contains(['~', '\'', '!', '(', ')', '*']) {
        return invalid("may not contain the special characters ~'!()*");
    }
    if CORE_MODULES.contains(&name) {
        return invalid("this is the name of a Node.js core module");
    }
    Ok(())
}

/// The part after the scope: `@s/n` → `n`.
pub fn base_name(name: &str) -> &str {
    name.rsplit_once('/').map_or(name, |(_, b)| b)
}

/// `n-1.0.0.tgz` for `@s/n` at `1.0.0`.
pub fn tarball_file(name: &str, version: &str) -> String {
    format!("{}-{version}.tgz", base_name(name))
}

/// A version as npm accepts it for publishing: valid semver, written in its canonical form.
pub fn validate_version(version: &str) -> Result<nodejs_semver::Version> {
    let parsed = nodejs_semver::Version::parse(version).map_err(|_| Error::Invalid(format!("version {version:?} is not valid semver")))?;
    if parsed.to_string() != version {
        return Err(Error::Invalid(format!("version {version:?} is not in canonical semver form ({parsed})")));
    }
    Ok(parsed)
}

/// A dist-tag: non-empty, URL-safe, and not something npm would read as a version or range.
pub fn validate_tag(tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
        && nodejs_semver::Range::parse(tag).is_err();
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("invalid dist-tag {tag:?}: tags are URL-safe words that are not versions or ranges")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, valid for new packages, valid for old packages), from
    /// validate-npm-package-name's documented behaviour.
    #[test]
    fn names_follow_validate_npm_package_name() {
        let long = "a".repeat(215);
        let max = "a".repeat(214);
        let cases: &[(&str, bool, bool)] = &[
            ("some-package", true, true),
            ("example.com", true, true),
            ("under_score", true, true),
            ("123numeric", true, true),
            ("-dash", true, true),
            ("@npm/thingy", true, true),
            ("@jane/foo.js", true, true),
            ("@s-1/n.x", true, true),
            ("@scope/_name", true, true),
            ("@scope/n~x", false, true),
            ("@sc~ope/name", true, true),
            (max.as_str(), true, true),
            (long.as_str(), false, true),
            ("crazy!", false, true),
            ("has~tilde", false, true),
            ("it's", false, true),
            ("star*", false, true),
            ("(paren)", false, true),
            ("CAPITAL-LETTERS", false, true),
            ("@Scope/x", false, true),
            ("fs", false, true),
            ("http", false, true),
            ("child_process", false, true),
            ("@scope/fs", true, true),
            ("fs-extra", true, true),
            ("", false, false),
            (".start-with-period", false, false),
            ("_start-with-underscore", false, false),
            (" leading-space", false, false),
            ("trailing-space ", false, false),
            ("contain:colons", false, false),
            ("s/l/a/s/h/e/s", false, false),
            ("a/b", false, false),
            ("a b", false, false),
            ("caf\u{e9}", false, false),
            ("node_modules", false, false),
            ("NODE_MODULES", false, false),
            ("favicon.ico", false, false),
            ("@scope/.hidden", false, false),
            ("@.scope/x", false, false),
            ("@scope", false, false),
            ("@/x", false, false),
            ("@s/", false, false),
            ("@s/n/x", false, false),
            ("a@b", false, false),
            ("..", false, false),
            ("foo/../bar", false, false),
            ("@scope%2fname", false, false),
        ];
        for (name, new, old) in cases {
            assert_eq!(validate_new(name).is_ok(), *new, "{name:?} valid for new packages");
            assert_eq!(validate(name).is_ok(), *old, "{name:?} valid for old packages");
        }
    }

    #[test]
    fn files_and_versions() {
        assert_eq!(tarball_file("@s/n", "1.0.0"), "n-1.0.0.tgz");
        assert_eq!(tarball_file("foo", "1.0.0-beta.1"), "foo-1.0.0-beta.1.tgz");
        validate_version("1.2.3-rc.1+build.5").unwrap();
        for bad in ["1.2", "v1.2.3", "01.2.3", "latest", ""] {
            assert!(validate_version(bad).is_err(), "{bad}");
        }
        validate_tag("latest").unwrap();
        validate_tag("next-2").unwrap();
        for bad in ["", "1.0.0", "^1", "*", "a b", "a/b"] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
    }
}
