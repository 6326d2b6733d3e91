//! `global.status_page`: the page for everyone who is not an SRE
//! (docs/status-page.md).

use super::duration;
use serde::Deserialize;
use std::time::Duration;

/// `global.status_page`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusPageConfig {
    /// The page's heading and the feed's title.
    #[serde(default = "default_title")]
    pub title: String,
    /// The page on `listen` faces customers: no reasons, and no inbox names
    /// unless `hide_inboxes: false`. `global.listen` keeps the internal page.
    #[serde(default)]
    pub public: bool,
    /// Whether inbox names (and so route names, which contain them) are
    /// left out, on both pages; defaults to hidden on the public page only.
    #[serde(default)]
    pub hide_inboxes: Option<bool>,
    /// A listener of its own serving only the page, its JSON, feed and
    /// badges, for a reverse proxy to expose; `/metrics` and the internal
    /// APIs stay on `global.listen` only. Required with `public: true`.
    #[serde(default)]
    pub listen: Option<String>,
    /// How long the page's data is reused before the ledger is read again,
    /// and how often the page reloads itself.
    #[serde(default = "default_refresh", deserialize_with = "duration::deserialize")]
    pub refresh: Duration,
    /// A delivery slower than this counts as delayed (and a canary in flight
    /// longer, overdue), here and as `report`'s default for `--slow`.
    #[serde(default = "default_slow", deserialize_with = "duration::deserialize")]
    pub slow: Duration,
}

impl Default for StatusPageConfig {
    fn default() -> Self {
        StatusPageConfig {
            title: default_title(),
            public: false,
            hide_inboxes: None,
            listen: None,
            refresh: default_refresh(),
            slow: default_slow(),
        }
    }
}

fn default_title() -> String {
    "Email delivery status".into()
}
fn default_refresh() -> Duration {
    Duration::from_secs(30)
}
fn default_slow() -> Duration {
    Duration::from_secs(90)
}
