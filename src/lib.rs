//! mailcanary: sends signed canary emails through every configured provider,
//! watches IMAP inboxes for their arrival, and exports what happened as
//! Prometheus metrics.

pub mod config;
pub mod secret;
