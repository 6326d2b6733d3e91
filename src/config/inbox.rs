//! `inboxes:`: the mailboxes watched, how to reach them over IMAP, which
//! folders count as inbox or spam, and what becomes of a canary once seen.

use super::duration;
use super::{OAuth2Config, TlsMode};
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// One watched mailbox.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxConfig {
    /// The `inbox` label.
    pub name: String,
    /// Where canaries are sent.
    pub address: String,
    pub imap: ImapConfig,
    #[serde(default)]
    pub folders: Folders,
    #[serde(default)]
    pub cleanup: Cleanup,
}

/// `inboxes[].imap`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    pub host: String,
    /// Defaults to 993 for `tls`, 143 otherwise.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: Option<TlsMode>,
    pub username: String,
    /// LOGIN with a password, or (instead) `oauth2`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// AUTHENTICATE with an OAuth2 access token, refreshed as needed.
    #[serde(default)]
    pub oauth2: Option<OAuth2Config>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Limit for every single IMAP command.
    #[serde(default = "default_imap_timeout", deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    /// How often every folder is checked even when IDLE reports nothing.
    #[serde(default = "default_poll_interval", deserialize_with = "duration::deserialize")]
    pub poll_interval: Duration,
}

impl ImapConfig {
    /// The TLS mode, implicit TLS unless said otherwise.
    pub fn tls_mode(&self) -> TlsMode {
        self.tls.unwrap_or(TlsMode::Tls)
    }

    /// The port, from the TLS mode unless given.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls_mode() {
            TlsMode::Tls => 993,
            _ => 143,
        })
    }
}

/// `inboxes[].folders`: where a canary counts as `inbox` or `spam`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Folders {
    #[serde(default = "default_inbox_folder")]
    pub inbox: String,
    #[serde(default)]
    pub spam: Vec<String>,
}

impl Default for Folders {
    fn default() -> Self {
        Folders { inbox: default_inbox_folder(), spam: Vec::new() }
    }
}

/// What happens to a verified canary of this instance once it is seen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cleanup {
    #[default]
    Delete,
    Keep,
    Move(String),
}

impl<'de> Deserialize<'de> for Cleanup {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Word(String),
            Move {
                #[serde(rename = "move")]
                folder: String,
            },
        }
        match Repr::deserialize(d)
            .map_err(|_| serde::de::Error::custom("cleanup must be delete, keep or { move: FOLDER }"))?
        {
            Repr::Word(w) if w == "delete" => Ok(Cleanup::Delete),
            Repr::Word(w) if w == "keep" => Ok(Cleanup::Keep),
            Repr::Word(w) => {
                Err(serde::de::Error::custom(format!("unknown cleanup {w:?}: use delete, keep or {{ move: FOLDER }}")))
            }
            Repr::Move { folder } => Ok(Cleanup::Move(folder)),
        }
    }
}

fn default_imap_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_inbox_folder() -> String {
    "INBOX".into()
}
