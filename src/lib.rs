//! mailcanary: sends signed canary emails through every configured provider,
//! watches IMAP inboxes for their arrival, and exports what happened as
//! Prometheus metrics.

pub mod canary;
pub mod config;
pub mod ledger;
pub mod metrics;
pub mod provider;
mod random;
pub mod secret;
pub mod tls;
