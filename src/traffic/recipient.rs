//! A real message's recipient, kept as `traffic.recipients` says: a keyed
//! hash by default, the address, or nothing. The hash is HMAC-SHA256 of the
//! address (trimmed, lower-cased) under a key derived from the signing key,
//! so the same address always gives the same value in this ledger, and
//! nobody without the key can test guesses against it.

use crate::canary::SigningKey;
use crate::config::RecipientPolicy;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// What the ledger keeps of recipients.
#[derive(Clone)]
pub enum Recipients {
    Hash([u8; 32]),
    Keep,
    Drop,
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Recipients::Hash(_) => "Recipients::Hash(***)",
            Recipients::Keep => "Recipients::Keep",
            Recipients::Drop => "Recipients::Drop",
        })
    }
}

/// The purpose the hash key is derived for; a new one gives new hashes.
const PURPOSE: &str = "mailcanary traffic recipient v1";

impl Recipients {
    pub fn new(policy: RecipientPolicy, key: &SigningKey) -> Recipients {
        match policy {
            RecipientPolicy::Hash => Recipients::Hash(key.derive(PURPOSE)),
            RecipientPolicy::Keep => Recipients::Keep,
            RecipientPolicy::Drop => Recipients::Drop,
        }
    }

    /// What is kept of `address`: `h:` and 32 hex digits (128 bits), the
    /// address lower-cased, or the empty string.
    pub fn keep(&self, address: Option<&str>) -> String {
        let Some(address) = address.map(|a| a.trim().to_lowercase()).filter(|a| !a.is_empty()) else {
            return String::new();
        };
        match self {
            Recipients::Hash(key) => {
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(address.as_bytes());
                let digest = mac.finalize().into_bytes();
                let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
                format!("h:{hex}")
            }
            Recipients::Keep => address,
            Recipients::Drop => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn hashes_are_stable_keyed_and_never_the_address() {
        let key = SigningKey::new(Secret::new("0123456789abcdef"));
        let other = SigningKey::new(Secret::new("fedcba9876543210"));
        let r = Recipients::new(RecipientPolicy::Hash, &key);
        let h = r.keep(Some(" Alice@Example.COM "));
        assert_eq!(h, r.keep(Some("alice@example.com")), "one address, one value");
        assert!(h.starts_with("h:") && h.len() == 34 && !h.contains("alice"), "{h}");
        assert_ne!(h, Recipients::new(RecipientPolicy::Hash, &other).keep(Some("alice@example.com")));
        assert_ne!(h, r.keep(Some("bob@example.com")));
        assert!(!format!("{r:?}").contains(|c: char| c.is_ascii_digit()), "the key is never printed");
        assert_eq!(Recipients::Keep.keep(Some("Alice@Example.com")), "alice@example.com");
        assert_eq!(Recipients::Drop.keep(Some("alice@example.com")), "");
        assert_eq!(r.keep(None), "");
    }
}
