//! `hostile_hook.wasm` (hook-formatter, `rich-hook-formatter`): a formatter
//! that misbehaves on purpose, for the host's webhook tests. Config `mode`
//! picks what `format` does:
//!
//! | mode      | behaviour                                                          |
//! |-----------|--------------------------------------------------------------------|
//! | `trap`    | `panic!("hostile-hook trap")`                                      |
//! | `loop`    | spins forever                                                      |
//! | `garbage` | returns a content type and a header name full of control characters |
//! | `error`   | returns `Err("hostile-hook says no")`                              |
//! | `ok`      | a JSON body naming the event, the package and the hook owner        |
//!
//! `only` (optional) limits the misbehaviour to events of that package; the
//! others get the `ok` answer. Each call first writes `hostile-hook: <mode>`
//! to stderr. Not for production.

use std::hint::black_box;

use cairn_plugin_sdk::rich_hook_formatter::{Event, Guest, Header, HookContext, Outbound, RichFormatter};
use serde::Deserialize;

const MODES: &[&str] = &["trap", "loop", "garbage", "error", "ok"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    mode: String,
    #[serde(default)]
    only: Option<String>,
}

fn config() -> Result<Config, String> {
    let config: Config = cairn_plugin_sdk::config()?;
    if !MODES.contains(&config.mode.as_str()) {
        return Err(format!("hostile-hook: unknown mode `{}` (one of {})", config.mode, MODES.join(", ")));
    }
    Ok(config)
}

fn ok(event: &Event, context: &HookContext) -> Outbound {
    let body = serde_json::json!({"hostile": "ok", "event": event.kind, "name": event.package, "hookOwner": context.hook_owner});
    Outbound { body: body.to_string().into_bytes(), content_type: "application/json".into(), headers: Vec::new() }
}

struct HostileHook;

impl Guest for HostileHook {
    fn init() -> Result<(), String> {
        config().map(|_| ())
    }
}

impl RichFormatter for HostileHook {
    fn format(event: Event, context: HookContext) -> Result<Outbound, String> {
        let config = config()?;
        if config.only.as_deref().is_some_and(|only| only != event.package) {
            return Ok(ok(&event, &context));
        }
        eprintln!("hostile-hook: {}", config.mode);
        match config.mode.as_str() {
            "trap" => panic!("hostile-hook trap"),
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "garbage" => Ok(Outbound {
                body: vec![0xff; 16],
                content_type: "text/\u{0}\r\nplain".into(),
                headers: vec![Header { name: "x-\u{7}bad\r\n".into(), value: "\u{1b}[2J".into() }],
            }),
            "error" => Err("hostile-hook says no".into()),
            _ => Ok(ok(&event, &context)),
        }
    }
}

cairn_plugin_sdk::export_rich_hook_formatter!(HostileHook);
