//! SRI integrity strings (`sha512-<base64>`, several separated by spaces,
//! each optionally followed by `?options`): one parser and one check, used
//! for publishes, syncs and proxied tarballs alike.
//!
//! Rules:
//! - Tokens are separated by ASCII whitespace; `?` and what follows are
//!   options, ignored (as the SRI spec says).
//! - Only `sha512` and `sha1` digests are checked. Tokens of other
//!   algorithms (`sha256`, `sha384`, ...) and tokens without `-` are skipped.
//! - A `sha512`/`sha1` digest must be padded standard base64 of the right
//!   length, or the string is malformed.
//! - Every checked digest must match (not just one), and there must be at
//!   least one.

use std::cell::OnceCell;

use base64::Engine as _;
use sha1::Digest as _;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The digest algorithms Cairn checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha512,
}

impl Algorithm {
    fn parse(name: &str) -> Option<Algorithm> {
        match name {
            "sha1" => Some(Algorithm::Sha1),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    fn len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha512 => 64,
        }
    }
}

/// One digest of an integrity string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hash {
    pub algorithm: Algorithm,
    pub digest: Vec<u8>,
}

/// Why an integrity string does not vouch for the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntegrityError {
    /// A sha512 or sha1 digest that is not base64 of the right length.
    Malformed(String),
    /// No sha512 or sha1 digest at all.
    NoDigest,
    /// A digest differs from the bytes'.
    Mismatch,
}

/// The sha512 and sha1 digests of `text`, in order (other algorithms skipped).
pub fn parse(text: &str) -> Result<Vec<Hash>, IntegrityError> {
    let mut hashes = Vec::new();
    for token in text.split_ascii_whitespace() {
        let Some((name, rest)) = token.split_once('-') else { continue };
        let Some(algorithm) = Algorithm::parse(name) else { continue };
        let encoded = rest.split_once('?').map_or(rest, |(digest, _options)| digest);
        let digest = B64.decode(encoded).map_err(|e| IntegrityError::Malformed(format!("{name} digest {encoded:?} is not base64: {e}")))?;
        if digest.len() != algorithm.len() {
            return Err(IntegrityError::Malformed(format!(
                "{name} digest {encoded:?} has {} bytes, not {}",
                digest.len(),
                algorithm.len()
            )));
        }
        hashes.push(Hash { algorithm, digest });
    }
    Ok(hashes)
}

/// The digests of some bytes, each computed once and only when asked for.
pub struct Digests<'a> {
    bytes: &'a [u8],
    sha512: OnceCell<Vec<u8>>,
    sha1: OnceCell<Vec<u8>>,
}

impl<'a> Digests<'a> {
    pub fn new(bytes: &'a [u8]) -> Digests<'a> {
        Digests { bytes, sha512: OnceCell::new(), sha1: OnceCell::new() }
    }

    pub fn get(&self, algorithm: Algorithm) -> &[u8] {
        match algorithm {
            Algorithm::Sha512 => self.sha512.get_or_init(|| sha2::Sha512::digest(self.bytes).to_vec()),
            Algorithm::Sha1 => self.sha1.get_or_init(|| sha1::Sha1::digest(self.bytes).to_vec()),
        }
    }

    /// `sha512-<base64>`: the integrity Cairn stores and serves.
    pub fn sri(&self) -> String {
        format!("sha512-{}", B64.encode(self.get(Algorithm::Sha512)))
    }

    /// The sha1 in hex: npm's `shasum`.
    pub fn sha1_hex(&self) -> String {
        hex::encode(self.get(Algorithm::Sha1))
    }
}

/// Whether `text` vouches for the bytes of `digests`: it names at least one
/// sha512 or sha1 digest and every one of them matches.
pub fn check(text: &str, digests: &Digests<'_>) -> Result<(), IntegrityError> {
    let hashes = parse(text)?;
    if hashes.is_empty() {
        return Err(IntegrityError::NoDigest);
    }
    if hashes.iter().any(|h| h.digest != digests.get(h.algorithm)) {
        return Err(IntegrityError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &[u8] = b"a tarball";

    fn sri(algorithm: &str, digest: &[u8]) -> String {
        format!("{algorithm}-{}", B64.encode(digest))
    }
    fn sha512() -> String {
        sri("sha512", &sha2::Sha512::digest(DATA))
    }
    fn sha1() -> String {
        sri("sha1", &sha1::Sha1::digest(DATA))
    }
    fn sha256() -> String {
        sri("sha256", &sha2::Sha256::digest(DATA))
    }
    fn check_data(text: &str) -> Result<(), IntegrityError> {
        check(text, &Digests::new(DATA))
    }

    #[test]
    fn sha512_and_sha1_are_checked() {
        assert_eq!(check_data(&sha512()), Ok(()));
        assert_eq!(check_data(&sha1()), Ok(()));
        assert_eq!(check_data(&sri("sha512", &sha2::Sha512::digest(b"other"))), Err(IntegrityError::Mismatch));
        assert_eq!(check_data(&sri("sha1", &sha1::Sha1::digest(b"other"))), Err(IntegrityError::Mismatch));
        assert_eq!(Digests::new(DATA).sri(), sha512());
        assert_eq!(Digests::new(DATA).sha1_hex(), hex::encode(sha1::Sha1::digest(DATA)));
    }

    #[test]
    fn other_algorithms_are_skipped() {
        assert_eq!(parse(&sha256()), Ok(vec![]));
        assert_eq!(check_data(&sha256()), Err(IntegrityError::NoDigest));
        assert_eq!(check_data(&format!("{} {}", sha256(), sha512())), Ok(()));
        // Not checked, so a wrong or malformed sha256 does not matter.
        assert_eq!(check_data(&format!("sha256-!!! {}", sha512())), Ok(()));
        assert_eq!(check_data(""), Err(IntegrityError::NoDigest));
        assert_eq!(check_data("   "), Err(IntegrityError::NoDigest));
        assert_eq!(check_data("nodash"), Err(IntegrityError::NoDigest));
        assert_eq!(check_data(&format!("md5-abc {}", sha1())), Ok(()));
    }

    #[test]
    fn several_hashes_all_must_match() {
        assert_eq!(check_data(&format!("{} {}", sha512(), sha1())), Ok(()));
        assert_eq!(check_data(&format!("{}\t\n {}", sha1(), sha512())), Ok(()));
        assert_eq!(
            parse(&format!("{} {}", sha512(), sha1())).unwrap().iter().map(|h| h.algorithm).collect::<Vec<_>>(),
            vec![Algorithm::Sha512, Algorithm::Sha1]
        );
        let wrong = sri("sha512", &sha2::Sha512::digest(b"other"));
        assert_eq!(check_data(&format!("{} {wrong}", sha512())), Err(IntegrityError::Mismatch));
        assert_eq!(check_data(&format!("{wrong} {}", sha1())), Err(IntegrityError::Mismatch));
    }

    #[test]
    fn options_are_ignored() {
        assert_eq!(check_data(&format!("{}?foo", sha512())), Ok(()));
        assert_eq!(check_data(&format!("{}?foo?bar {}?x", sha512(), sha1())), Ok(()));
        assert_eq!(parse(&format!("{}?foo", sha1())).unwrap()[0].digest, sha1::Sha1::digest(DATA).to_vec());
    }

    #[test]
    fn bad_base64_is_malformed() {
        let unpadded = sha512().trim_end_matches('=').to_string();
        // Base64 only in the URL-safe alphabet (`-_v7...`, standard would be `+/v7...`).
        let url_safe = format!("sha1-{}", base64::engine::general_purpose::URL_SAFE.encode([0xfb; 20]));
        for text in ["sha512-not*base64", "sha512-", "sha1-AAAA", "sha512-QUJD", &unpadded, &url_safe, &format!("{} sha1-%%%", sha512())] {
            assert!(matches!(check_data(text), Err(IntegrityError::Malformed(_))), "{text}: {:?}", check_data(text));
        }
    }
}
