//! Cairn: an npm registry with WebAssembly policy plugins.
//!
//! Layers, outermost first (see ARCHITECTURE.md):
//! `cli` → `server` / `http` → `domain` → `store` and `blob`.
//! Only `http` knows about status codes and wire shapes; only `store` knows SQL.

pub mod app;
pub mod blob;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod outbound;
pub mod plugins;
pub mod server;
pub mod store;
pub mod sync_cli;
pub mod telemetry;
pub mod util;
