//! Checks of one config value as the part that uses it will read it, each
//! returning the problem in words: shared by the config's validation and by
//! the plug-ins that check their own keys (a provider's `problems()`), so a
//! message is spelled once. Imports nothing of the crate above the leaves.

use crate::secret::Secret;
use std::path::Path;

/// As the HTTP client parses it (`http::Api`): an absolute http:// or
/// https:// URL with a host.
pub fn url(url: &str) -> Option<String> {
    match reqwest::Url::parse(url.trim_end_matches('/')) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => None,
        Err(e) if url.starts_with("http://") || url.starts_with("https://") => {
            Some(format!("{url:?} is not a valid URL: {e}"))
        }
        _ => Some(format!("{url:?} is not an http:// or https:// URL")),
    }
}

/// A credential given as nothing (often a `${VAR}` set to "").
pub fn secret(secret: &Secret) -> Option<String> {
    secret
        .expose()
        .trim()
        .is_empty()
        .then(|| "must not be empty: give the credential, or a ${VAR} that holds it".to_string())
}

/// An extra CA file as the TLS set-up reads it.
pub fn ca_file(file: &Path) -> Option<String> {
    if !file.is_file() {
        Some(format!("CA file {} does not exist", file.display()))
    } else {
        // What the TLS set-up of `run` would refuse.
        crate::tls::read_pem_certs(file).err()
    }
}

/// `down_after` and `up_after` count canaries: at least one.
pub fn in_a_row(key: &str, n: u32) -> Option<String> {
    (n == 0).then(|| format!("{key} counts canaries in a row: at least 1"))
}

/// Problems of a part (`(key, message)`, the key relative to it), under `key`.
pub fn under(key: &str, problems: Vec<(String, String)>) -> impl Iterator<Item = (String, String)> {
    problems
        .into_iter()
        .map(move |(k, message)| (if k.is_empty() { key.to_string() } else { format!("{key}.{k}") }, message))
}
