//! The plugin contract's data as plain host types. The rest of Cairn speaks
//! these; the WIT-generated types (`bindings.rs`) never leave `plugins/`, and
//! are converted here, at its edge.

use super::bindings::types as wit;

/// What the caller is trying to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Publish,
    Unpublish,
    Deprecate,
    DistTag,
    Owner,
    Token,
    Sync,
    Block,
    RegistryAdmin,
    HookAdmin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRef {
    /// Full name, `@scope/name` or `name`.
    pub name: String,
    /// `@scope` for scoped packages.
    pub scope: Option<String>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// None for anonymous requests.
    pub user: Option<String>,
    pub admin: bool,
    pub token_readonly: bool,
    pub token_automation: bool,
    /// The client's IP address, as text.
    pub client_ip: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused, with a reason shown to the client.
    Deny(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path inside the tarball, e.g. `package/index.js`.
    pub path: String,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Publish,
    Sync,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub name: String,
    pub version: String,
    /// The version manifest as the publisher or the upstream sent it, as JSON.
    pub manifest_json: String,
    pub tarball_size: u64,
    pub files: Vec<FileEntry>,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Refused, with a reason shown to the client or written to the sync log.
    Block(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// e.g. `package:publish`, `package:unpublish`, `package:dist-tag`.
    pub kind: String,
    pub package: String,
    pub version: Option<String>,
    /// The user who caused the event.
    pub actor: Option<String>,
    /// ISO 8601 time of the event.
    pub time: String,
    /// Event details as JSON.
    pub payload_json: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub body: Vec<u8>,
    pub content_type: String,
    pub headers: Vec<Header>,
}

/// What a formatter built for `rich-formatter` (0.1.1) gets besides the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookContext {
    /// The delivery's id, the same on every retry (`x-cairn-delivery`).
    pub delivery_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub hook_id: String,
    /// The user who registered the hook.
    pub hook_owner: String,
    /// `package`, `scope` or `owner`.
    pub hook_type: String,
    pub hook_name: String,
    /// The registry's public URL, without a trailing `/`.
    pub registry_url: String,
    /// `<registry_url>/<name>`.
    pub package_url: String,
    /// The package document when the event was fanned out, as JSON.
    pub package_json: Option<String>,
}

/// One entry of a binary source's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryEntry {
    /// One path segment; a directory's ends with `/`.
    pub name: String,
    pub is_dir: bool,
    pub url: String,
    pub size: Option<u64>,
    pub date: Option<String>,
    /// `sha256:<hex>`, as the plugin gave it.
    pub checksum: Option<String>,
}

impl From<Action> for wit::Action {
    fn from(a: Action) -> Self {
        match a {
            Action::Read => wit::Action::Read,
            Action::Publish => wit::Action::Publish,
            Action::Unpublish => wit::Action::Unpublish,
            Action::Deprecate => wit::Action::Deprecate,
            Action::DistTag => wit::Action::DistTag,
            Action::Owner => wit::Action::Owner,
            Action::Token => wit::Action::Token,
            Action::Sync => wit::Action::Sync,
            Action::Block => wit::Action::Block,
            Action::RegistryAdmin => wit::Action::RegistryAdmin,
            Action::HookAdmin => wit::Action::HookAdmin,
        }
    }
}

impl From<PackageRef> for wit::PackageRef {
    fn from(p: PackageRef) -> Self {
        wit::PackageRef { name: p.name, scope: p.scope, version: p.version }
    }
}

impl From<Caller> for wit::Caller {
    fn from(c: Caller) -> Self {
        wit::Caller {
            user: c.user,
            admin: c.admin,
            token_readonly: c.token_readonly,
            token_automation: c.token_automation,
            client_ip: c.client_ip,
        }
    }
}

impl From<wit::Decision> for Decision {
    fn from(d: wit::Decision) -> Self {
        match d {
            wit::Decision::Allow => Decision::Allow,
            wit::Decision::Deny(reason) => Decision::Deny(reason),
        }
    }
}

impl From<Origin> for wit::Origin {
    fn from(o: Origin) -> Self {
        match o {
            Origin::Publish => wit::Origin::Publish,
            Origin::Sync => wit::Origin::Sync,
        }
    }
}

impl From<VersionInfo> for wit::VersionInfo {
    fn from(v: VersionInfo) -> Self {
        wit::VersionInfo {
            name: v.name,
            version: v.version,
            manifest_json: v.manifest_json,
            tarball_size: v.tarball_size,
            files: v.files.into_iter().map(|f| wit::FileEntry { path: f.path, size: f.size }).collect(),
            origin: v.origin.into(),
        }
    }
}

impl From<wit::Verdict> for Verdict {
    fn from(v: wit::Verdict) -> Self {
        match v {
            wit::Verdict::Accept => Verdict::Accept,
            wit::Verdict::Block(reason) => Verdict::Block(reason),
        }
    }
}

impl From<Event> for wit::Event {
    fn from(e: Event) -> Self {
        wit::Event { kind: e.kind, package: e.package, version: e.version, actor: e.actor, time: e.time, payload_json: e.payload_json }
    }
}

impl From<wit::Outbound> for Outbound {
    fn from(o: wit::Outbound) -> Self {
        Outbound {
            body: o.body,
            content_type: o.content_type,
            headers: o.headers.into_iter().map(|h| Header { name: h.name, value: h.value }).collect(),
        }
    }
}

impl From<HookContext> for wit::HookContext {
    fn from(c: HookContext) -> Self {
        wit::HookContext {
            delivery_id: c.delivery_id,
            attempt: c.attempt,
            hook_id: c.hook_id,
            hook_owner: c.hook_owner,
            hook_type: c.hook_type,
            hook_name: c.hook_name,
            registry_url: c.registry_url,
            package_url: c.package_url,
            package_json: c.package_json,
        }
    }
}

impl From<wit::BinaryEntry> for BinaryEntry {
    fn from(e: wit::BinaryEntry) -> Self {
        BinaryEntry { name: e.name, is_dir: e.is_dir, url: e.url, size: e.size, date: e.date, checksum: e.checksum }
    }
}
