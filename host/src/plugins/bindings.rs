//! The one place host bindings are generated from `wit/` (async: guests run
//! on the request's task, host imports such as `fetch` await) (one module per
//! world; the shared `types`, `host` and `fetch` interfaces are generated once
//! and reused by the others).
//!
//! Plugins built against an older 0.1.x link too: wasmtime matches their
//! `cairn:plugin/...@0.1.0` imports and exports to these definitions by
//! semver. A world added later (`rich-hook-formatter`,
//! `binary-source-adapter`) is used only for components that export its
//! interface (`load.rs` looks), so older ones bind through the world they
//! were built for.

pub mod auth {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "auth-policy",
        imports: { default: async },
        exports: { default: async },
    });
}

pub mod block {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "block-rule",
        imports: { default: async },
        exports: { default: async },
        with: {
            "cairn:plugin/types": super::auth::cairn::plugin::types,
            "cairn:plugin/host": super::auth::cairn::plugin::host,
        },
    });
}

pub mod upstream {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "upstream-adapter",
        imports: { default: async },
        exports: { default: async },
        with: {
            "cairn:plugin/types": super::auth::cairn::plugin::types,
            "cairn:plugin/host": super::auth::cairn::plugin::host,
        },
    });
}

pub mod binsrc {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "binary-source-adapter",
        imports: { default: async },
        exports: { default: async },
        with: {
            "cairn:plugin/types": super::auth::cairn::plugin::types,
            "cairn:plugin/host": super::auth::cairn::plugin::host,
            "cairn:plugin/fetch": super::upstream::cairn::plugin::fetch,
        },
    });
}

pub mod hook {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "hook-formatter",
        imports: { default: async },
        exports: { default: async },
        with: {
            "cairn:plugin/types": super::auth::cairn::plugin::types,
            "cairn:plugin/host": super::auth::cairn::plugin::host,
        },
    });
}

pub mod rich_hook {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "rich-hook-formatter",
        imports: { default: async },
        exports: { default: async },
        with: {
            "cairn:plugin/types": super::auth::cairn::plugin::types,
            "cairn:plugin/host": super::auth::cairn::plugin::host,
        },
    });
}

pub use auth::cairn::plugin::host::Level;
pub use auth::cairn::plugin::types;

/// The package version of the WIT contract this host implements.
pub const WIT_PACKAGE: &str = "cairn:plugin";
pub const WIT_VERSION: &str = "0.1.1";
