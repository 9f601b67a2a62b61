//! `hostile.wasm` (auth-policy): misbehaves on purpose, for the host's
//! sandbox tests. Config `mode` picks what `authorize` does:
//!
//! | mode        | behaviour                                                           |
//! |-------------|---------------------------------------------------------------------|
//! | `loop`      | spins forever                                                       |
//! | `slow`      | spins for `spin_ms` (default 300) of wall time, then allows        |
//! | `alloc`     | allocates and touches 1 GiB in 1 MiB steps; allows if it got there  |
//! | `trap`      | `panic!("hostile trap")`                                            |
//! | `garbage`   | denies with a 2 MiB reason full of control characters               |
//! | `file`      | reads `/etc/passwd`: allows if it could, panics with the error if not |
//! | `socket`    | connects to 127.0.0.1:5432: allows if it could, panics with the error if not |
//! | `ok`        | allows                                                              |
//! | `deny`      | denies with "hostile says no"                                       |
//! | `init-fail` | `init` fails with "init refused by config"                          |
//!
//! Each mode first writes `hostile: <mode>` to stderr. Not for production.

use std::hint::black_box;
use std::io::Read;

use cairn_plugin_sdk::auth_policy::{Action, Caller, Decision, Guest, PackageRef, Policy};

const MODES: &[&str] = &["loop", "slow", "alloc", "trap", "garbage", "file", "socket", "ok", "deny", "init-fail"];

fn mode() -> Result<String, String> {
    let mode =
        cairn_plugin_sdk::config_get::<String>("mode")?.ok_or_else(|| format!("hostile: set `mode` to one of {}", MODES.join(", ")))?;
    if !MODES.contains(&mode.as_str()) {
        return Err(format!("hostile: unknown mode `{mode}` (one of {})", MODES.join(", ")));
    }
    Ok(mode)
}

struct Hostile;

impl Guest for Hostile {
    fn init() -> Result<(), String> {
        let mode = mode()?;
        if mode == "init-fail" {
            eprintln!("hostile: init-fail");
            return Err("init refused by config".to_string());
        }
        Ok(())
    }
}

impl Policy for Hostile {
    fn authorize(_action: Action, _package: Option<PackageRef>, _caller: Caller) -> Decision {
        let mode = match mode() {
            Ok(mode) => mode,
            Err(e) => return Decision::Deny(e),
        };
        eprintln!("hostile: {mode}");
        match mode.as_str() {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "slow" => {
                let spin = std::time::Duration::from_millis(cairn_plugin_sdk::config_get::<u64>("spin_ms").ok().flatten().unwrap_or(300));
                let started = std::time::Instant::now();
                while started.elapsed() < spin {
                    black_box(started);
                }
                Decision::Allow
            }
            "alloc" => {
                const MIB: usize = 1 << 20;
                let mut kept: Vec<Vec<u8>> = Vec::new();
                for i in 0..1024 {
                    let mut chunk = Vec::<u8>::with_capacity(MIB);
                    chunk.resize(MIB, i as u8 | 1);
                    kept.push(black_box(chunk));
                }
                eprintln!("hostile: allocated {} MiB", kept.len());
                Decision::Allow
            }
            "trap" => panic!("hostile trap"),
            "garbage" => {
                let piece = "\u{0}\u{7}\u{8}\u{1b}[2J\r\n\u{7f}garbage\u{202e}";
                let reason = piece.repeat((2 << 20) / piece.len() + 1);
                Decision::Deny(reason)
            }
            "file" => {
                let mut text = String::new();
                match std::fs::File::open("/etc/passwd").and_then(|mut f| f.read_to_string(&mut text)) {
                    Ok(n) => {
                        eprintln!("hostile: read {n} bytes of /etc/passwd");
                        Decision::Allow
                    }
                    Err(e) => panic!("hostile: cannot read /etc/passwd: {e}"),
                }
            }
            "socket" => match std::net::TcpStream::connect("127.0.0.1:5432") {
                Ok(_) => {
                    eprintln!("hostile: connected to 127.0.0.1:5432");
                    Decision::Allow
                }
                Err(e) => panic!("hostile: cannot connect to 127.0.0.1:5432: {e}"),
            },
            "deny" => Decision::Deny("hostile says no".to_string()),
            // "ok", and "init-fail" if the host called anyway.
            _ => Decision::Allow,
        }
    }
}

cairn_plugin_sdk::export_auth_policy!(Hostile);
