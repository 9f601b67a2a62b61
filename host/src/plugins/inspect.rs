//! What a component is: its kind and contract version, read from its
//! exports (at load and for `cairn plugin check`).

use anyhow::bail;
use wasmtime::component::Component;
use wasmtime::Engine;

use super::bindings::{WIT_PACKAGE, WIT_VERSION};
use crate::config::PluginKind;

/// What a component is, read from its exports.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub kind: PluginKind,
    pub wit_version: String,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
}

fn interface_kind(interface: &str) -> Option<PluginKind> {
    match interface {
        "policy" => Some(PluginKind::AuthPolicy),
        "rule" => Some(PluginKind::BlockRule),
        "adapter" => Some(PluginKind::UpstreamAdapter),
        "formatter" | "rich-formatter" => Some(PluginKind::HookFormatter),
        "binary-source" => Some(PluginKind::UpstreamAdapter),
        _ => None,
    }
}

impl Inspection {
    /// Whether the component exports the `cairn:plugin` interface `name` (any version).
    pub fn exports_interface(&self, name: &str) -> bool {
        let bare = format!("{WIT_PACKAGE}/{name}");
        self.exports.iter().any(|e| e == &bare || e.strip_prefix(&bare).is_some_and(|v| v.starts_with('@')))
    }

    /// The WIT world the component was built for (the one the host links it as).
    pub fn world(&self) -> &'static str {
        match self.kind {
            PluginKind::AuthPolicy => "auth-policy",
            PluginKind::BlockRule => "block-rule",
            PluginKind::UpstreamAdapter if self.exports_interface("binary-source") => "binary-source-adapter",
            PluginKind::UpstreamAdapter => "upstream-adapter",
            PluginKind::HookFormatter if self.exports_interface("rich-formatter") => "rich-hook-formatter",
            PluginKind::HookFormatter => "hook-formatter",
        }
    }
}

/// Reads kind and contract version from a component's exports.
pub fn inspect(engine: &Engine, component: &Component) -> anyhow::Result<Inspection> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_string()).collect();
    let imports: Vec<String> = ty.imports(engine).map(|(name, _)| name.to_string()).collect();
    let mut found = None;
    for e in &exports {
        let Some(rest) = e.strip_prefix(&format!("{WIT_PACKAGE}/")) else { continue };
        let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
        if let Some(kind) = interface_kind(interface) {
            found = Some((kind, version.to_string()));
        }
    }
    let Some((kind, wit_version)) = found else {
        bail!(
            "it exports no {WIT_PACKAGE} interface (policy, rule, adapter, formatter or rich-formatter); exports: {}",
            exports.join(", ")
        );
    };
    let (major_minor, host_major_minor) = (major_minor(&wit_version), major_minor(WIT_VERSION));
    if major_minor != host_major_minor {
        bail!("it was built against {WIT_PACKAGE}@{wit_version}; this Cairn supports {WIT_PACKAGE}@{}.x", host_major_minor);
    }
    if !exports.iter().any(|e| e == "init") {
        bail!("it does not export init");
    }
    Ok(Inspection { kind, wit_version, exports, imports })
}

fn major_minor(v: &str) -> String {
    let mut parts = v.split('.');
    format!("{}.{}", parts.next().unwrap_or(""), parts.next().unwrap_or(""))
}
