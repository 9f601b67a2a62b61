//! Log setup: `tracing` to stderr, filtered by `RUST_LOG` or `log.level`.
//!
//! No secret in any log line: request paths are logged through [`redact_path`],
//! and every line written passes [`redact`] (credentials in URLs, tokens,
//! `Bearer`/`Basic` material) whatever put it there.

use std::io::Write;

use tracing_subscriber::EnvFilter;

use crate::domain::tokens::PREFIX;

pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(level)).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| RedactingWriter(std::io::stderr()))
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

/// Writes each formatted event (tracing's fmt layer writes one event per
/// `write_all`) with its secrets masked.
struct RedactingWriter<W: Write>(W);

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Masks secrets in free text: URL credentials, Cairn tokens, and what follows
/// `Bearer ` or `Basic `.
pub fn redact(text: &str) -> String {
    let mut out = crate::config::redact_url(text);
    for scheme in ["Bearer ", "bearer ", "Basic ", "basic "] {
        out = mask_after(&out, scheme, |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '='));
    }
    mask_after(&out, PREFIX, |c| c.is_ascii_alphanumeric())
}

/// Replaces the run of `keep`-characters after each `marker` by `***`.
fn mask_after(text: &str, marker: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        let (head, tail) = rest.split_at(i + marker.len());
        out.push_str(head);
        let end = tail.find(|c: char| !keep(c)).unwrap_or(tail.len());
        if end > 0 {
            out.push_str("***");
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A request path safe to log: the segment after `/-/user/token/` and
/// `/-/npm/v1/tokens/token/` (a raw token or a token key), and any segment that
/// looks like a token (even percent-encoded), become `***`.
pub fn redact_path(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        let after_token = i >= 1
            && segments[i - 1] == "token"
            && (segments[..i].ends_with(&["-", "user", "token"]) || segments[..i].ends_with(&["tokens", "token"]));
        let decoded = percent_encoding::percent_decode_str(seg).decode_utf8_lossy();
        let looks_like_token = decoded.contains(PREFIX);
        out.push(if (after_token && !seg.is_empty()) || looks_like_token { "***" } else { seg });
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lose_their_tokens() {
        let raw = format!("{PREFIX}{}", "ab12".repeat(16));
        assert_eq!(redact_path(&format!("/-/user/token/{raw}")), "/-/user/token/***");
        assert_eq!(redact_path("/-/npm/v1/tokens/token/0123abcd"), "/-/npm/v1/tokens/token/***");
        assert_eq!(redact_path(&format!("/x/{}", raw.replace('_', "%5F"))), "/x/***");
        assert_eq!(redact_path("/@scope%2fname/-/name-1.0.0.tgz"), "/@scope%2fname/-/name-1.0.0.tgz");
        assert_eq!(redact_path("/token/x"), "/token/x");
    }

    #[test]
    fn lines_lose_their_secrets() {
        let raw = format!("{PREFIX}{}", "ab12".repeat(16));
        let line = format!("GET http://u:pw@127.0.0.1:1/x authorization=Bearer {raw} basic Basic dTpw token={raw}.");
        let red = redact(&line);
        assert!(!red.contains("pw@") && !red.contains(&raw) && !red.contains("dTpw"), "{red}");
        assert!(red.contains("http://***@127.0.0.1:1/x") && red.ends_with("token=cairn_***."), "{red}");
    }

    #[test]
    fn the_writer_redacts() {
        let mut w = RedactingWriter(Vec::new());
        w.write_all(b"host=http://a:b@h/ ok\n").unwrap();
        assert_eq!(String::from_utf8(w.0).unwrap(), "host=http://***@h/ ok\n");
    }
}
