//! Registry rules, free of HTTP: who may do what, what is valid, what is stored.
//!
//! Handlers in `http/` translate requests into calls here and [`Error`] into
//! status codes; nothing in this module knows a status code or a header.

mod app;
pub mod auth;
pub mod binaries;
pub mod changes;
pub mod cluster;
pub mod downloads;
pub mod health;
pub mod hooks;
pub mod hot_tarballs;
pub mod integrity;
pub mod login_limit;
pub mod names;
pub mod packages;
pub mod packument;
pub mod password;
pub mod policy;
pub mod proxy;
pub mod reads;
pub mod registries;
pub mod scopes;
pub mod search;
pub mod sessions;
pub mod sync;
pub mod tokens;
pub mod upstream;
pub mod users;
pub mod web_login;
pub mod web_pages;

pub use app::App;

use crate::blob::BlobError;
use crate::store::StoreError;

/// What went wrong, by meaning. `http::error` maps each kind to a status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is syntactically broken (malformed JSON, wrong encoding).
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but semantically invalid input.
    #[error("{0}")]
    Invalid(String),
    /// No credentials, or credentials that do not identify anyone.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but not allowed.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// Not here, and the upstream that might have it cannot be asked now: a
    /// miss that a person should be told about (unlike a plain `NotFound`).
    #[error("{0}")]
    NotFoundUpstreamDown(String),
    #[error("{0}")]
    Conflict(String),
    /// A dependency (a plugin, an upstream) failed and the request cannot be decided.
    #[error("{0}")]
    Unavailable(String),
    /// The package is blocked by an admin.
    #[error("{0}")]
    Blocked(String),
    /// Too many attempts (failed logins); retry after this many seconds.
    #[error("{0}")]
    TooManyRequests(String, u64),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Error::Conflict(format!("{what} already exists")),
            StoreError::Invalid(reason) => Error::Invalid(reason),
            StoreError::Contended(reason) => Error::Conflict(reason),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<BlobError> for Error {
    fn from(e: BlobError) -> Self {
        match e {
            // The detail names the storage service: logged, not answered.
            BlobError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "the blob store is unavailable");
                Error::Unavailable("the blob store is unavailable; try again later".into())
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: String,
    pub name: String,
    pub email: Option<String>,
    pub is_admin: bool,
    /// Key of the token the request came with.
    pub token_key: String,
    pub readonly: bool,
    pub automation: bool,
    /// Address the request came from.
    pub client_ip: std::net::IpAddr,
}
