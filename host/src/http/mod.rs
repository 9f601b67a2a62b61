//! HTTP: the only layer that knows status codes and headers. `router` is the
//! URL tree and the rules that hold before it, `request` the request toolkit
//! (`Req`, body reading, query and segment decoding), `response` the response
//! shapes, `error` the error body; one file per API area besides. This file
//! only declares the modules and re-exports what handlers and the server use.

mod admin;
mod binaries;
mod binaries_html;
mod downloads;
pub mod error;
mod health;
mod hooks;
mod meta;
mod package_admin;
mod packages;
mod registries;
mod request;
mod response;
mod router;
mod search;
mod sync;
mod tokens;
mod users;
pub mod web;

pub use error::ApiError;
pub use request::Req;
pub use response::{full, json_response, ok_json, ApiResult, Body, Response};
pub use router::handle;
