//! The web configuration file of the Prometheus ecosystem (exporter-toolkit's
//! `web.config.file`), for the main listener: TLS with `tls_server_config`
//! and HTTP basic auth with `basic_auth_users` (bcrypt hashes), so that
//! mailcanary's `/metrics` and API are secured the way every exporter's
//! are, with the same file:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: /etc/mailcanary/tls.crt
//!   key_file: /etc/mailcanary/tls.key
//! basic_auth_users:
//!   prometheus: $2y$10$...   # htpasswd -nBC 10 "" | tr -d ':\n'
//! ```
//!
//! Keys mailcanary does not implement are refused by name, never ignored.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_rustls::rustls;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsServerConfig {
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// A loaded web configuration.
#[derive(Clone, Default)]
pub struct Web {
    /// TLS for every connection, when configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// User name → bcrypt hash; empty when no authentication is asked.
    users: Arc<BTreeMap<String, String>>,
    /// Credentials already checked, by their SHA-256 (bcrypt is slow on
    /// purpose; a scrape every 15 s must not pay it each time).
    verified: Arc<Mutex<Vec<[u8; 32]>>>,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web").field("tls", &self.tls.is_some()).field("users", &self.users.len()).finish()
    }
}

impl Web {
    /// Reads `path`; an error names what to change.
    pub fn load(path: &Path) -> Result<Web, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file: File = serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = match file.tls_server_config {
            Some(t) => Some(acceptor(&base.join(t.cert_file), &base.join(t.key_file))?),
            None => None,
        };
        for (user, hash) in &file.basic_auth_users {
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(format!(
                    "{}: basic_auth_users.{user}: not a bcrypt hash (make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')",
                    path.display()
                ));
            }
        }
        Ok(Web { tls, users: Arc::new(file.basic_auth_users), verified: Arc::default() })
    }

    /// Whether requests must carry a user's credentials.
    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether an `Authorization` header's value names a user with its
    /// password.
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        use base64::Engine;
        use sha2::Digest;
        let Some(encoded) = authorization.and_then(|a| a.strip_prefix("Basic ")) else { return false };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
        let Ok(text) = String::from_utf8(decoded) else { return false };
        let Some((user, password)) = text.split_once(':') else { return false };
        let Some(hash) = self.users.get(user) else { return false };
        let key: [u8; 32] = sha2::Sha256::new().chain_update(hash).chain_update(text.as_bytes()).finalize().into();
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.contains(&key) {
            return true;
        }
        if bcrypt::verify(password, hash).unwrap_or(false) {
            if verified.len() >= 64 {
                verified.remove(0);
            }
            verified.push(key);
            return true;
        }
        false
    }
}

/// A TLS acceptor for a PEM certificate chain and key.
fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let chain = crate::tls::read_pem_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("cannot read the key {}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("cannot use the certificate {} with its key: {e}", cert.display()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
