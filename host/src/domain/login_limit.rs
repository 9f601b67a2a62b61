//! Brute-force protection for password logins: failed attempts are counted per
//! account and per client address; past the limit, password logins are refused
//! (429 with `Retry-After`) until the lockout ends. Only password checks are
//! limited: requests with a token are never affected, so an attacker cannot lock
//! a user out of their token-based access.
//!
//! In memory, per process, and bounded: at most [`MAX_ENTRIES`] keys are tracked;
//! expired entries are purged first, then the stalest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Error, Result};

pub const MAX_ENTRIES: usize = 50_000;
/// A lockout lasts the window, doubled for each lockout in a row, at most this many times the window.
const MAX_BACKOFF: u32 = 16;

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
    /// Lockouts in a row; reset when the entry expires.
    lockouts: u32,
    last: Instant,
}

impl Entry {
    fn expired(&self, now: Instant, window: Duration) -> bool {
        let quiet = now.duration_since(self.last) >= window * self.lockouts.clamp(1, MAX_BACKOFF);
        quiet && self.blocked_until.is_none_or(|b| now >= b)
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Client(IpAddr),
}

pub struct LoginLimiter {
    per_account: u32,
    per_client: u32,
    window: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<Key, Entry>>,
}

/// IPv6 clients usually own a whole /64: count it as one address.
fn client_key(ip: IpAddr) -> Key {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Key::Client(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                Key::Client(IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
            }
        },
        v4 => Key::Client(v4),
    }
}

impl LoginLimiter {
    pub fn new(per_account: u32, per_client: u32, window: Duration) -> Self {
        Self::with_capacity(per_account, per_client, window, MAX_ENTRIES)
    }

    fn with_capacity(per_account: u32, per_client: u32, window: Duration, max_entries: usize) -> Self {
        LoginLimiter { per_account, per_client, window, max_entries, entries: Mutex::new(HashMap::new()) }
    }

    /// Refuses (429) while the account or the client address is locked out.
    pub fn check(&self, account: &str, ip: IpAddr) -> Result<()> {
        let now = Instant::now();
        let map = self.entries.lock().expect("login limiter lock");
        let blocked = |key: &Key| map.get(key).and_then(|e| e.blocked_until).filter(|b| *b > now);
        let (what, until) = match (blocked(&Key::Account(account.to_string())), blocked(&client_key(ip))) {
            (Some(a), Some(c)) => ("this account and this address", a.max(c)),
            (Some(a), None) => ("this account", a),
            (None, Some(c)) => ("this address", c),
            (None, None) => return Ok(()),
        };
        let secs = until.duration_since(now).as_secs_f64().ceil().max(1.0) as u64;
        Err(Error::TooManyRequests(format!("too many failed logins for {what}; try again in {secs} s (access tokens keep working)"), secs))
    }

    /// A wrong password for `account` from `ip`.
    pub fn failed(&self, account: &str, ip: IpAddr) {
        self.record(Key::Account(account.to_string()), self.per_account);
        self.failed_ip(ip);
    }

    /// A failed attempt that names no existing account.
    pub fn failed_ip(&self, ip: IpAddr) {
        self.record(client_key(ip), self.per_client);
    }

    /// A correct password: the account's count starts over (the address's does not).
    pub fn succeeded(&self, account: &str) {
        self.entries.lock().expect("login limiter lock").remove(&Key::Account(account.to_string()));
    }

    fn record(&self, key: Key, limit: u32) {
        if limit == 0 {
            return;
        }
        let now = Instant::now();
        let window = self.window;
        let mut map = self.entries.lock().expect("login limiter lock");
        if !map.contains_key(&key) && map.len() >= self.max_entries {
            map.retain(|_, e| !e.expired(now, window));
            if map.len() >= self.max_entries {
                if let Some(stalest) = map.iter().min_by_key(|(_, e)| e.last).map(|(k, _)| k.clone()) {
                    map.remove(&stalest);
                }
            }
        }
        let entry = map.entry(key).or_insert(Entry { failures: 0, window_start: now, blocked_until: None, lockouts: 0, last: now });
        if entry.expired(now, window) {
            *entry = Entry { failures: 0, window_start: now, blocked_until: None, lockouts: 0, last: now };
        }
        if now.duration_since(entry.window_start) >= window {
            entry.failures = 0;
            entry.window_start = now;
        }
        entry.failures += 1;
        entry.last = now;
        if entry.failures >= limit {
            entry.lockouts = (entry.lockouts + 1).min(MAX_BACKOFF);
            let factor = 1u32 << (entry.lockouts - 1).min(4);
            entry.blocked_until = Some(now + window * factor);
            entry.failures = 0;
            entry.window_start = now;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn locks_an_account_after_the_limit_and_says_how_long() {
        let l = LoginLimiter::new(3, 100, Duration::from_secs(60));
        for _ in 0..2 {
            l.failed("alice", ip("10.0.0.1"));
            l.check("alice", ip("10.0.0.1")).unwrap();
        }
        l.failed("alice", ip("10.0.0.2"));
        match l.check("alice", ip("10.0.0.3")) {
            Err(Error::TooManyRequests(reason, secs)) => assert!(secs > 0 && secs <= 60 && reason.contains("account"), "{reason} {secs}"),
            other => panic!("expected 429, got {other:?}"),
        }
        // Other accounts are not affected.
        l.check("bob", ip("10.0.0.3")).unwrap();
    }

    #[test]
    fn locks_an_address_across_accounts_and_groups_ipv6_by_64() {
        let l = LoginLimiter::new(100, 3, Duration::from_secs(60));
        l.failed("a", ip("2001:db8::1"));
        l.failed("b", ip("2001:db8::2"));
        l.failed_ip(ip("2001:db8::3"));
        assert!(l.check("c", ip("2001:db8::ffff")).is_err());
        l.check("c", ip("2001:db9::1")).unwrap();
    }

    #[test]
    fn repeated_lockouts_back_off() {
        let l = LoginLimiter::new(1, 100, Duration::from_secs(10));
        l.failed("a", ip("10.0.0.1"));
        let first = match l.check("a", ip("10.0.0.1")) {
            Err(Error::TooManyRequests(_, s)) => s,
            _ => panic!(),
        };
        l.failed("a", ip("10.0.0.1"));
        let second = match l.check("a", ip("10.0.0.1")) {
            Err(Error::TooManyRequests(_, s)) => s,
            _ => panic!(),
        };
        assert!(first <= 10 && second > 10, "{first} {second}");
    }

    #[test]
    fn stays_bounded() {
        let l = LoginLimiter::with_capacity(5, 5, Duration::from_secs(60), 100);
        for i in 0..1000 {
            l.failed(&format!("user{i}"), ip(&format!("10.0.{}.{}", i / 256, i % 256)));
        }
        assert!(l.len() <= 100, "{}", l.len());
    }

    #[test]
    fn zero_disables() {
        let l = LoginLimiter::new(0, 0, Duration::from_secs(60));
        for _ in 0..100 {
            l.failed("a", ip("10.0.0.1"));
        }
        l.check("a", ip("10.0.0.1")).unwrap();
    }
}
