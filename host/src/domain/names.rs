//! Package names and versions: what may be published, how files are named.

use super::{Error, Result};

pub const MAX_NAME_LEN: usize = 214;

fn valid_part(part: &str, first_may_be_dot: bool) -> bool {
    let mut chars = part.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '~' || (first_may_be_dot && c == '.') => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_' | '~'))
}

/// The spec's name regex, `^(@[a-z0-9-~][a-z0-9-._~]*\/)?[a-z0-9-~][a-z0-9-._~]*$`,
/// plus npm's rules: at most 214 characters, not `node_modules`/`favicon.ico`,
/// and no `.`/`..` parts.
pub fn validate(name: &str) -> Result<()> {
    let invalid = |why: &str| Err(Error::Invalid(format!("invalid package name {name:?}: {why}")));
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return invalid("must be 1-214 characters");
    }
    let (scope, base) = match name.strip_prefix('@') {
        Some(rest) => match rest.split_once('/') {
            Some((scope, base)) => (Some(scope), base),
            None => return invalid("a scoped name is @scope/name"),
        },
        None => (None, name),
    };
    if let Some(scope) = scope {
        if !valid_part(scope, false) {
            return invalid("the scope may only contain a-z, 0-9, '-', '.', '_', '~' and may not start with '.' or '_'");
        }
    }
    if base.starts_with('.') || base.starts_with('_') {
        return invalid("may not start with '.' or '_'");
    }
    if !valid_part(base, false) {
        return invalid("may only contain lowercase a-z, 0-9, '-', '.', '_' and '~'");
    }
    if scope.is_none() && matches!(base, "node_modules" | "favicon.ico") {
        return invalid("this name is reserved");
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
    let parsed = nodejs_semver::Version::parse(version)
        .map_err(|_| Error::Invalid(format!("version {version:?} is not valid semver")))?;
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

    #[test]
    fn names() {
        for ok in ["a", "foo-bar", "foo.bar_baz~", "@scope/name", "@s-1/n.x", "-dash", "1abc"] {
            validate(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let long = "a".repeat(215);
        for bad in ["", "Foo", ".hidden", "_under", "a b", "..", "@scope", "@/x", "@s/", "@s/.x", "a/b", "node_modules", "favicon.ico", long.as_str(), "caf\u{e9}", "foo/../bar", "@s/n/x"] {
            assert!(validate(bad).is_err(), "{bad:?} should be invalid");
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
