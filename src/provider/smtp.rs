//! `type: smtp`: submit the canary to a relay with lettre, one connection per
//! canary (so connect, TLS and AUTH are measured every time), and keep the
//! server's queue id.

use super::common::provider_config;
use super::{Accepted, Provider, SendError, SendReason};
use crate::canary::Canary;
use crate::oauth2::{OAuth2Config, SaslMechanism, TokenErrorKind, TokenSource};
use crate::secret::Secret;
use crate::tls::TlsMode;
use crate::valid;
use lettre::address::Envelope;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::response::{Category, Severity};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::path::PathBuf;
use std::time::Duration;

provider_config! {
    /// `type: smtp`: a relay or submission server.
    SmtpConfig {
        host: String,
        /// Defaults to 465 for `tls`, 587 for `starttls`, 25 for `none`.
        #[serde(default)]
        port: Option<u16>,
        #[serde(default)]
        tls: Option<TlsMode>,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<Secret>,
        /// AUTH XOAUTH2 with an access token instead of a password.
        #[serde(default)]
        oauth2: Option<OAuth2Config>,
    }
    after failover {
        #[serde(default)]
        ca_file: Option<PathBuf>,
        #[serde(default)]
        insecure_skip_verify: bool,
    }
}

impl SmtpConfig {
    /// The TLS mode, STARTTLS unless said otherwise.
    pub fn tls_mode(&self) -> TlsMode {
        self.tls.unwrap_or(TlsMode::Starttls)
    }

    /// The port, from the TLS mode unless given.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls_mode() {
            TlsMode::Tls => 465,
            TlsMode::Starttls => 587,
            TlsMode::None => 25,
        })
    }

    /// What is wrong with the keys only SMTP has; "" is the provider as a whole.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut push = |key: &str, message: &str| out.push((key.to_string(), message.to_string()));
        if self.host.trim().is_empty() {
            push("host", "host must not be empty");
        }
        if self.port == Some(0) {
            push("port", "port must be 1-65535");
        }
        match (&self.password, &self.oauth2) {
            (Some(_), Some(_)) => push("oauth2", "set password or oauth2, not both"),
            (None, Some(oauth2)) => {
                if self.username.is_none() {
                    push("", "oauth2 needs the username it logs in as");
                }
                if oauth2.mechanism != SaslMechanism::Xoauth2 {
                    push("oauth2.mechanism", "SMTP logs in with xoauth2 only");
                }
                out.extend(valid::under("oauth2", oauth2.problems()));
            }
            _ if self.username.is_some() != self.password.is_some() => {
                push("", "username and password go together: set both or neither");
            }
            _ => {}
        }
        if self.insecure_skip_verify && self.tls_mode() == TlsMode::None {
            out.push(("insecure_skip_verify".to_string(), "has no effect with tls: none".to_string()));
        }
        if let Some(file) = &self.ca_file {
            out.extend(valid::ca_file(file).map(|m| ("ca_file".to_string(), m)));
        }
        out
    }
}

pub struct SmtpProvider {
    name: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    timeout: Duration,
    /// With `oauth2`: the transport without credentials, the login name,
    /// and the access tokens to log in with.
    oauth2: Option<Box<(AsyncSmtpTransportBuilder, String, TokenSource)>>,
}

impl SmtpProvider {
    pub fn new(config: &SmtpConfig) -> Result<Self, String> {
        let tls = || -> Result<TlsParameters, String> {
            let mut params = TlsParameters::builder(config.host.clone());
            if let Some(path) = &config.ca_file {
                let pem = std::fs::read(path).map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
                let cert = Certificate::from_pem(&pem).map_err(|e| format!("CA file {}: {e}", path.display()))?;
                params = params.add_root_certificate(cert);
            }
            if config.insecure_skip_verify {
                tracing::warn!(provider = %config.name, "TLS certificate verification is OFF for this provider (insecure_skip_verify)");
                params = params.dangerous_accept_invalid_certs(true);
            }
            params.build_rustls().map_err(|e| format!("TLS set-up for {}: {e}", config.host))
        };
        let tls = match config.tls_mode() {
            TlsMode::Tls => Tls::Wrapper(tls()?),
            TlsMode::Starttls => Tls::Required(tls()?),
            TlsMode::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.clone())
            .port(config.port())
            .tls(tls)
            .timeout(Some(config.timeout));
        let oauth2 = match (&config.oauth2, &config.username) {
            (Some(oauth2), Some(user)) => {
                let tokens = TokenSource::new(oauth2, config.ca_file.as_deref(), config.timeout)?;
                Some(Box::new((builder.clone().authentication(vec![Mechanism::Xoauth2]), user.clone(), tokens)))
            }
            _ => None,
        };
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()));
        }
        Ok(SmtpProvider { name: config.name.clone(), transport: builder.build(), timeout: config.timeout, oauth2 })
    }

    /// The transport for the next canary: with a current access token when
    /// the relay takes OAuth2 (a transport per token; each canary opens its
    /// own connection anyway).
    async fn transport(&self) -> Result<std::borrow::Cow<'_, AsyncSmtpTransport<Tokio1Executor>>, SendError> {
        let Some((builder, user, tokens)) = self.oauth2.as_deref() else {
            return Ok(std::borrow::Cow::Borrowed(&self.transport));
        };
        let token = tokens.token().await.map_err(|e| {
            let reason = match e.kind {
                TokenErrorKind::Refused => SendReason::Auth,
                TokenErrorKind::Connect => SendReason::Connect,
                TokenErrorKind::Tls => SendReason::Tls,
                TokenErrorKind::Timeout => SendReason::Timeout,
                TokenErrorKind::Protocol => SendReason::Other,
            };
            SendError::new(reason, e.to_string())
        })?;
        let credentials = Credentials::new(user.clone(), token.expose().to_string());
        Ok(std::borrow::Cow::Owned(builder.clone().credentials(credentials).build()))
    }
}

impl Provider for SmtpProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, canary: &Canary) -> Result<Accepted, SendError> {
        let sender = canary.return_path.as_deref().unwrap_or(&canary.from);
        let envelope = Envelope::new(
            Some(sender.parse().map_err(|e| SendError::new(SendReason::Other, format!("bad from address: {e}")))?),
            vec![canary.to.parse().map_err(|e| SendError::new(SendReason::Other, format!("bad to address: {e}")))?],
        )
        .map_err(|e| SendError::new(SendReason::Other, e.to_string()))?;
        let transport = self.transport().await?;
        let response = tokio::time::timeout(self.timeout, transport.send_raw(&envelope, &canary.raw))
            .await
            .map_err(|_| SendError::new(SendReason::Timeout, format!("no answer within {:?}", self.timeout)))?
            .map_err(classify)
            .inspect_err(|e| {
                if let (SendReason::Auth, Some((_, _, tokens))) = (e.reason, self.oauth2.as_deref()) {
                    // The relay refused the token: the next canary gets a fresh one.
                    tokens.invalidate();
                }
            })?;
        let text: Vec<&str> = response.message().collect();
        Ok(Accepted { provider_id: queue_id(&text.join(" ")) })
    }
}

/// Postfix says `250 2.0.0 Ok: queued as 4Xb1...`; others put an id last.
fn queue_id(text: &str) -> Option<String> {
    let after = text.split("queued as ").nth(1).or_else(|| text.split_whitespace().last())?;
    let id: String = after.chars().take_while(|c| !c.is_whitespace() && *c != '>').collect();
    (!id.is_empty() && id.len() <= 128).then_some(id)
}

/// Maps lettre's error to the bounded reason, keeping what the server said
/// (quoted and cut, each prefix once: lettre wraps a TLS failure in
/// "Connection error" twice).
fn classify(e: lettre::transport::smtp::Error) -> SendError {
    let detail = crate::quote::error_chain(&e);
    let reason = if e.is_timeout() {
        SendReason::Timeout
    } else if let Some(code) = e.status() {
        match (code.severity, code.category) {
            // 530 5.7.0 "Must issue a STARTTLS command first"
            (_, Category::Unspecified3) if detail.contains("STARTTLS") => SendReason::Tls,
            // 535 authentication failed, 534 mechanism too weak, 530 auth required
            (Severity::PermanentNegativeCompletion, Category::Unspecified3) => SendReason::Auth,
            (Severity::TransientNegativeCompletion, _) => SendReason::Throttled,
            (Severity::PermanentNegativeCompletion, _) => SendReason::Rejected,
            _ => SendReason::Other,
        }
    } else if e.is_tls() || crate::tls::is_tls_error(&e) {
        SendReason::Tls
    } else if e.is_client() && detail.contains("STARTTLS") {
        // `tls: starttls` and the server does not offer it: the same cause
        // IMAP reports as `tls`.
        SendReason::Tls
    } else if e.is_response() && detail.ends_with("incomplete response") {
        // The server hung up before its answer was complete.
        SendReason::Connect
    } else if detail.contains("authentication mechanism") || detail.contains("does not expect a challenge") {
        // The second: a 334 answer to XOAUTH2's initial response is the
        // server's error report, so the token was refused.
        SendReason::Auth
    } else if e.is_client() || e.is_response() {
        SendReason::Other
    } else {
        SendReason::Connect
    };
    SendError::new(reason, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_queue_id() {
        assert_eq!(queue_id("2.0.0 Ok: queued as 4XyZ12abc").as_deref(), Some("4XyZ12abc"));
        assert_eq!(queue_id("OK id=1ab2-3").as_deref(), Some("id=1ab2-3"));
        assert_eq!(queue_id("").as_deref(), None);
    }
}
