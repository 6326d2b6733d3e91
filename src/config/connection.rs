//! How a connection to a mail server is secured and signed in to: the TLS
//! mode and the OAuth2 settings that SMTP providers and IMAP inboxes share.

use crate::secret::Secret;
use serde::Deserialize;

/// How a connection is secured. `none` is never a default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (SMTPS 465, IMAPS 993).
    Tls,
    /// Plain connection upgraded with STARTTLS, which is required.
    Starttls,
    /// No encryption at all; must be written out.
    None,
}

/// `oauth2:` of an inbox's IMAP (or an SMTP provider): access tokens from a
/// token endpoint (RFC 6749 refresh-token grant), used with SASL XOAUTH2 or
/// OAUTHBEARER (RFC 7628).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// Such as `https://oauth2.googleapis.com/token` or
    /// `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`.
    pub token_url: String,
    pub client_id: String,
    /// Public clients have none.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    pub refresh_token: Secret,
    /// Scopes to ask for, space-separated; the grant's own when not given.
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub mechanism: SaslMechanism,
}

/// The SASL mechanism that carries the access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaslMechanism {
    /// Google's and Microsoft's `XOAUTH2`.
    #[default]
    Xoauth2,
    /// The standard one, RFC 7628.
    Oauthbearer,
}
