//! Cairn: an npm registry with WebAssembly policy plugins.
//!
//! Layers, outermost first (see ARCHITECTURE.md):
//! `cli` → `server` / `http` → `domain` (whose `App` is the shared state) →
//! `store`, `blob`, `plugins`, `outbound`, `config`: arrows only point down.
//! Only `http` knows about status codes and wire shapes; only `store` knows SQL.

// Long functions hide what they do; clippy.toml sets the limit (100 lines).
#![warn(clippy::too_many_lines)]
// Proving a request's future `Send` walks through every boxed handler down to
// wasmtime's types, deeper than the default limit of 128.
#![recursion_limit = "256"]

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
