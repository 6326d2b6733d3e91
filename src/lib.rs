//! mailcanary: sends signed canary emails through every configured provider,
//! watches IMAP inboxes for their arrival, and exports what happened as
//! Prometheus metrics.

pub mod bounce;
pub mod canary;
pub mod check;
pub mod clock;
pub mod config;
pub mod duration;
pub mod health;
pub mod health_keeper;
mod http;
pub mod inbox;
pub mod incident;
pub mod insight;
pub mod ledger;
pub mod listener;
pub mod matcher;
pub mod metrics;
pub mod oauth2;
pub mod outcome;
pub mod probe;
pub mod provider;
pub mod quote;
mod random;
pub mod redact;
pub mod report;
pub mod report_command;
pub mod route_labels;
pub mod runtime;
pub mod scheduler;
pub mod secret;
pub mod server;
pub mod service;
pub mod settled;
pub mod shutdown;
pub mod socketmap;
pub mod status_page;
pub mod steer;
pub mod supervise;
mod ticker;
pub mod tls;
pub mod traffic;
pub mod traffic_event;
pub mod trigger;
pub mod valid;
pub mod words;
