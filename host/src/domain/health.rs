//! Health for load balancers: whether this process is alive, and whether it
//! can serve (its database and blob store answer, and it is not shutting down).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{App, Error, Result};

/// How long each dependency may take to answer a readiness check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// `Ok` when this process can serve requests now; otherwise why not.
pub async fn ready(app: &App) -> Result<()> {
    if app.draining.load(Ordering::SeqCst) {
        return Err(Error::Unavailable("shutting down".into()));
    }
    match tokio::time::timeout(CHECK_TIMEOUT, app.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            return Err(Error::Unavailable("the database is unreachable".into()));
        }
        Err(_) => return Err(Error::Unavailable("the database did not answer in time".into())),
    }
    match tokio::time::timeout(CHECK_TIMEOUT, app.blobs.check()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the blob store cannot be used");
            Err(Error::Unavailable("the blob store is unreachable".into()))
        }
        Err(_) => Err(Error::Unavailable("the blob store did not answer in time".into())),
    }
}
