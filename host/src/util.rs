//! Small helpers shared by several layers.

use sha2::{Digest, Sha512};

/// `n` random bytes from the operating system.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf).expect("the OS random source is available");
    buf
}

pub fn sha512_hex(data: &[u8]) -> String {
    hex::encode(Sha512::digest(data))
}

/// Milliseconds since the epoch as the ISO 8601 form npm uses (`2024-01-01T12:00:00.000Z`).
pub fn iso_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The CouchDB-style revision after `current`: `N-<16 hex>` with N one higher.
pub fn next_rev(current: Option<&str>) -> String {
    let seq = current.and_then(|r| r.split('-').next()?.parse::<u64>().ok()).unwrap_or(0) + 1;
    format!("{seq}-{}", hex::encode(random_bytes(8)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revs() {
        assert!(next_rev(None).starts_with("1-"));
        assert!(next_rev(Some("41-abc")).starts_with("42-"));
        assert_eq!(next_rev(Some("7-x")).len(), "8-".len() + 16);
    }

    #[test]
    fn iso_format() {
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_ms(1_704_110_400_123), "2024-01-01T12:00:00.123Z");
    }
}
