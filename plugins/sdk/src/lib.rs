//! Write Cairn plugins in Rust.
//!
//! A Cairn plugin is a WebAssembly component built for `wasm32-wasip2` that
//! implements one world of the `cairn:plugin@0.1.1` WIT package
//! (`wit/plugin.wit`). This crate holds the generated bindings for each world
//! plus a few helpers, so that a plugin is a couple of trait impls and one
//! macro call:
//!
//! | world              | module               | traits to implement                              | export macro                 |
//! |--------------------|----------------------|--------------------------------------------------|------------------------------|
//! | `auth-policy`      | [`auth_policy`]      | `Guest` (`init`) + [`auth_policy::Policy`]       | [`export_auth_policy!`]      |
//! | `block-rule`       | [`block_rule`]       | `Guest` (`init`) + [`block_rule::Rule`]          | [`export_block_rule!`]       |
//! | `upstream-adapter` | [`upstream_adapter`] | `Guest` (`init`) + [`upstream_adapter::Adapter`] | [`export_upstream_adapter!`] |
//! | `hook-formatter`   | [`hook_formatter`]   | `Guest` (`init`) + [`hook_formatter::Formatter`] | [`export_hook_formatter!`]   |
//! | `rich-hook-formatter` (0.1.1) | [`rich_hook_formatter`] | `Guest` (`init`) + [`rich_hook_formatter::RichFormatter`] | [`export_rich_hook_formatter!`] |
//! | `binary-source-adapter` (0.1.1) | [`binary_source_adapter`] | `Guest` (`init`) + [`binary_source_adapter::BinarySource`] | [`export_binary_source_adapter!`] |
//!
//! The 0.1.1 worlds extend older ones: a rich formatter also gets the
//! delivery's [`types::HookContext`] (hook owner, package document, links); a
//! binary-source adapter (an upstream adapter of the binary mirror) lists
//! directories for Cairn to download from.
//! Cairn still loads plugins built with the 0.1.0 SDK.
//!
//! `Guest` holds the world's `init` (called once when the host loads the
//! plugin; an `Err` refuses the plugin with its message), the other trait the
//! world's one interface. The WIT record and variant types are shared by all
//! worlds and live in [`types`] (each world module re-exports the ones it
//! uses). Helpers: [`config()`](config::config) reads the plugin's
//! configuration into a serde type, [`log`] writes to Cairn's log, and
//! [`Loaded`] keeps the parsed configuration for the following calls.
//!
//! # Example
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "deny-user"
//! version = "0.1.0"
//! edition = "2021"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! cairn-plugin-sdk = { path = "../sdk" }
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! `src/lib.rs`:
//!
//! ```no_run
//! use cairn_plugin_sdk::auth_policy::{Action, Caller, Decision, Guest, PackageRef, Policy};
//! use cairn_plugin_sdk::{log, Loaded};
//!
//! /// The plugin's `[plugins.config]` table.
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     /// The user who may not publish anything.
//!     user: String,
//! }
//!
//! static CONFIG: Loaded<Config> = Loaded::new();
//!
//! fn load() -> Result<Config, String> {
//!     cairn_plugin_sdk::config::<Config>()
//! }
//!
//! struct DenyUser;
//!
//! impl Guest for DenyUser {
//!     fn init() -> Result<(), String> {
//!         let config = CONFIG.get_or_load(load)?;
//!         log::info(format!("refusing publishes by {}", config.user));
//!         Ok(())
//!     }
//! }
//!
//! impl Policy for DenyUser {
//!     fn authorize(action: Action, _package: Option<PackageRef>, caller: Caller) -> Decision {
//!         let config = match CONFIG.get_or_load(load) {
//!             Ok(config) => config,
//!             Err(e) => return Decision::Deny(e),
//!         };
//!         match (action, caller.user) {
//!             (Action::Publish, Some(user)) if user == config.user => {
//!                 Decision::Deny(format!("{user} may not publish"))
//!             }
//!             _ => Decision::Allow,
//!         }
//!     }
//! }
//!
//! cairn_plugin_sdk::export_auth_policy!(DenyUser);
//! # fn main() {}
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the output
//! `target/wasm32-wasip2/release/deny_user.wasm` is the component to list in
//! Cairn's `[[plugins]]` configuration.
//!
//! # Notes
//!
//! * Plugins run single-threaded in a sandbox: expect no files, sockets or
//!   environment variables. Upstream adapters reach the network only through
//!   [`upstream_adapter::fetch`], and only the hosts the operator allowed.
//! * The host may stop a call that runs too long or uses too much memory.
//! * Build with `panic = "abort"`: a panic prints its message to the plugin's
//!   stderr and traps, which the host reports as a failed call.

#![warn(missing_docs)]

pub mod config;
pub mod log;

mod loaded;

pub use config::{config, config_get};
pub use loaded::Loaded;

pub use auth_policy::export_auth_policy;
pub use binary_source_adapter::export_binary_source_adapter;
pub use block_rule::export_block_rule;
pub use hook_formatter::export_hook_formatter;
pub use rich_hook_formatter::export_rich_hook_formatter;
pub use upstream_adapter::export_upstream_adapter;

/// The WIT `cairn:plugin/types` interface: records and variants shared by
/// every world (generated once, in [`auth_policy`], and reused by the other
/// worlds so one Rust type stands for each WIT type).
pub mod types {
    pub use crate::auth_policy::cairn::plugin::types::*;
}

#[allow(missing_docs)]
pub mod auth_policy {
    //! Bindings for the `auth-policy` world: decides whether a caller may do an
    //! action on a package.
    //!
    //! Implement [`Guest`] (`init`) and [`Policy`] (`authorize`) for one type and
    //! pass it to [`export_auth_policy!`](crate::export_auth_policy).

    wit_bindgen::generate!({
        path: "../../wit",
        world: "auth-policy",
        pub_export_macro: true,
        export_macro_name: "export_auth_policy",
        // `types` is shared by every world: generate all of it here.
        generate_unused_types: true,
        default_bindings_module: "cairn_plugin_sdk::auth_policy",
    });

    pub use self::cairn::plugin::host::Level;
    pub use self::cairn::plugin::types::{Action, Caller, Decision, PackageRef};
    /// The `policy` interface: `authorize`.
    pub use self::exports::cairn::plugin::policy::Guest as Policy;
}

#[allow(missing_docs)]
pub mod block_rule {
    //! Bindings for the `block-rule` world: accepts or blocks a package version
    //! being published or synced.
    //!
    //! Implement [`Guest`] (`init`) and [`Rule`] (`check`) for one type and pass it
    //! to [`export_block_rule!`](crate::export_block_rule).

    wit_bindgen::generate!({
        path: "../../wit",
        world: "block-rule",
        pub_export_macro: true,
        export_macro_name: "export_block_rule",
        default_bindings_module: "cairn_plugin_sdk::block_rule",
        with: {
            "cairn:plugin/types@0.1.1": crate::auth_policy::cairn::plugin::types,
            "cairn:plugin/host@0.1.1": crate::auth_policy::cairn::plugin::host,
        },
    });

    /// The `rule` interface: `check`.
    pub use self::exports::cairn::plugin::rule::Guest as Rule;
    pub use crate::types::{FileEntry, Origin, Verdict, VersionInfo};
}

#[allow(missing_docs)]
pub mod upstream_adapter {
    //! Bindings for the `upstream-adapter` world: serves packuments and tarballs
    //! from somewhere other than an npm registry Cairn speaks to natively.
    //!
    //! Implement [`Guest`] (`init`) and [`Adapter`] (`packument`, `tarball`) for one
    //! type and pass it to [`export_upstream_adapter!`](crate::export_upstream_adapter).
    //! HTTP goes through [`fetch`] (or the [`get`] shorthand).

    wit_bindgen::generate!({
        path: "../../wit",
        world: "upstream-adapter",
        pub_export_macro: true,
        export_macro_name: "export_upstream_adapter",
        default_bindings_module: "cairn_plugin_sdk::upstream_adapter",
        with: {
            "cairn:plugin/types@0.1.1": crate::auth_policy::cairn::plugin::types,
            "cairn:plugin/host@0.1.1": crate::auth_policy::cairn::plugin::host,
        },
    });

    pub use self::cairn::plugin::fetch::fetch;
    /// The `adapter` interface: `packument` and `tarball`.
    pub use self::exports::cairn::plugin::adapter::Guest as Adapter;
    pub use crate::types::{Header, HttpRequest, HttpResponse};

    /// `GET url` through the host's [`fetch`], with the given headers.
    ///
    /// Any status comes back as `Ok`; `Err` means the host refused the request
    /// (host not allowed, connection failed, ...).
    pub fn get(url: &str, headers: &[(&str, &str)]) -> Result<HttpResponse, String> {
        fetch(&HttpRequest {
            method: "GET".to_string(),
            url: url.to_string(),
            headers: headers.iter().map(|(name, value)| Header { name: name.to_string(), value: value.to_string() }).collect(),
            body: None,
        })
    }
}

#[allow(missing_docs)]
pub mod hook_formatter {
    //! Bindings for the `hook-formatter` world: turns a registry event into the
    //! body of a webhook request.
    //!
    //! Implement [`Guest`] (`init`) and [`Formatter`] (`format`) for one type and
    //! pass it to [`export_hook_formatter!`](crate::export_hook_formatter).

    wit_bindgen::generate!({
        path: "../../wit",
        world: "hook-formatter",
        pub_export_macro: true,
        export_macro_name: "export_hook_formatter",
        default_bindings_module: "cairn_plugin_sdk::hook_formatter",
        with: {
            "cairn:plugin/types@0.1.1": crate::auth_policy::cairn::plugin::types,
            "cairn:plugin/host@0.1.1": crate::auth_policy::cairn::plugin::host,
        },
    });

    /// The `formatter` interface: `format`.
    pub use self::exports::cairn::plugin::formatter::Guest as Formatter;
    pub use crate::types::{Event, Header, Outbound};
}

#[allow(missing_docs)]
pub mod rich_hook_formatter {
    //! Bindings for the `rich-hook-formatter` world (0.1.1): turns a registry
    //! event into the body of a webhook request, knowing the delivery's
    //! [`HookContext`] (its id, the hook and its owner, the package document,
    //! the registry's and the package's URLs).
    //!
    //! Implement [`Guest`] (`init`) and [`RichFormatter`] (`format`) for one
    //! type and pass it to
    //! [`export_rich_hook_formatter!`](crate::export_rich_hook_formatter).

    wit_bindgen::generate!({
        path: "../../wit",
        world: "rich-hook-formatter",
        pub_export_macro: true,
        export_macro_name: "export_rich_hook_formatter",
        default_bindings_module: "cairn_plugin_sdk::rich_hook_formatter",
        with: {
            "cairn:plugin/types@0.1.1": crate::auth_policy::cairn::plugin::types,
            "cairn:plugin/host@0.1.1": crate::auth_policy::cairn::plugin::host,
        },
    });

    /// The `rich-formatter` interface: `format(event, context)`.
    pub use self::exports::cairn::plugin::rich_formatter::Guest as RichFormatter;
    pub use crate::types::{Event, Header, HookContext, Outbound};
}

#[allow(missing_docs)]
pub mod binary_source_adapter {
    //! Bindings for the `binary-source-adapter` world (0.1.1): an upstream
    //! adapter (`kind = "upstream-adapter"`) that is a source for Cairn's
    //! binary mirror. It lists directories ([`BinarySource::list`]); Cairn
    //! downloads the files from the entries' URLs itself (through the
    //! plugin's `allowed_hosts`), so their bytes never pass through the plugin.
    //!
    //! Implement [`Guest`] (`init`) and [`BinarySource`] (`list`) for one type
    //! and pass it to [`export_binary_source_adapter!`](crate::export_binary_source_adapter).
    //! HTTP goes through [`fetch`] (or the [`get`] shorthand).

    wit_bindgen::generate!({
        path: "../../wit",
        world: "binary-source-adapter",
        pub_export_macro: true,
        export_macro_name: "export_binary_source_adapter",
        default_bindings_module: "cairn_plugin_sdk::binary_source_adapter",
        with: {
            "cairn:plugin/types@0.1.1": crate::auth_policy::cairn::plugin::types,
            "cairn:plugin/host@0.1.1": crate::auth_policy::cairn::plugin::host,
            "cairn:plugin/fetch@0.1.1": crate::upstream_adapter::cairn::plugin::fetch,
        },
    });

    /// The `binary-source` interface: `list`.
    pub use self::exports::cairn::plugin::binary_source::Guest as BinarySource;
    pub use crate::types::{BinaryEntry, Header, HttpRequest, HttpResponse};
    pub use crate::upstream_adapter::{fetch, get};
}
