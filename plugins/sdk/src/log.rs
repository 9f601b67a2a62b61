//! Writing to Cairn's log. The host tags each line with the plugin's name and
//! may drop levels below its configured one.
//!
//! ```ignore
//! cairn_plugin_sdk::log::info("ready");
//! cairn_plugin_sdk::log::warn(format!("{name}: upstream answered {status}"));
//! ```
//!
//! Text written to stderr (`eprintln!`, panic messages) goes to the host too,
//! as the plugin's raw output; prefer these functions for anything routine.

use crate::auth_policy::cairn::plugin::host;

pub use host::Level;

/// Logs `message` at `level`.
pub fn log(level: Level, message: impl AsRef<str>) {
    host::log(level, message.as_ref());
}

/// Logs at debug level.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message);
}

/// Logs at info level.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message);
}

/// Logs at warn level.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message);
}

/// Logs at error level.
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message);
}
