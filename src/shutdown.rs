//! The stop signal, shared by every task that waits on something: a
//! `watch` channel that turns true, or whose sender is gone (which means
//! stop too). It belongs to no feature and imports nothing of the crate.

use tokio::sync::watch;

/// Resolves once `rx` says stop, or its sender is gone.
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
