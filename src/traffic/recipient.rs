//! A real message's recipient, kept as `traffic.recipients` says: a keyed
//! hash by default, the address, or nothing. The hash is HMAC-SHA256 of the
//! address (trimmed, lower-cased) under a key derived from the signing key,
//! so the same address always gives the same value in this ledger, and
//! nobody without the key can test guesses against it. With `drop`, each
//! recipient of a message still has a row of its own: a keyed hash of the
//! message id and the address, which tells one recipient of the message
//! from another and nothing else (not the same person in another message).

use crate::canary::SigningKey;
use crate::config::RecipientPolicy;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// What the ledger keeps of recipients.
#[derive(Clone)]
pub enum Recipients {
    Hash([u8; 32]),
    Keep,
    Drop([u8; 32]),
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Recipients::Hash(_) => "Recipients::Hash(***)",
            Recipients::Keep => "Recipients::Keep",
            Recipients::Drop(_) => "Recipients::Drop(***)",
        })
    }
}

/// The purpose the hash key is derived for; a new one gives new hashes.
const PURPOSE: &str = "mailcanary traffic recipient v1";
/// The purpose of `drop`'s key: its values never match `hash`'s.
const DROP_PURPOSE: &str = "mailcanary traffic recipient within a message v1";

impl Recipients {
    pub fn new(policy: RecipientPolicy, key: &SigningKey) -> Recipients {
        match policy {
            RecipientPolicy::Hash => Recipients::Hash(key.derive(PURPOSE)),
            RecipientPolicy::Keep => Recipients::Keep,
            RecipientPolicy::Drop => Recipients::Drop(key.derive(DROP_PURPOSE)),
        }
    }

    /// What is kept of `address`, a recipient of `message_id`: `h:` and 32
    /// hex digits (128 bits), the address lower-cased, or (`drop`) `#` and
    /// 8 hex digits distinct within the message; empty without an address.
    pub fn keep(&self, message_id: &str, address: Option<&str>) -> String {
        let Some(address) = address.map(|a| a.trim().to_lowercase()).filter(|a| !a.is_empty()) else {
            return String::new();
        };
        match self {
            Recipients::Hash(key) => format!("h:{}", mac(key, &[address.as_bytes()], 16)),
            Recipients::Keep => address,
            Recipients::Drop(key) => format!("#{}", mac(key, &[message_id.as_bytes(), b"\0", address.as_bytes()], 4)),
        }
    }
}

/// The first `bytes` of HMAC-SHA256 of `parts` under `key`, in hex.
fn mac(key: &[u8; 32], parts: &[&[u8]], bytes: usize) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes()[..bytes].iter().map(|b| format!("{b:02x}")).collect()
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
        let h = r.keep("m1", Some(" Alice@Example.COM "));
        assert_eq!(h, r.keep("m2", Some("alice@example.com")), "one address, one value");
        assert!(h.starts_with("h:") && h.len() == 34 && !h.contains("alice"), "{h}");
        assert_ne!(h, Recipients::new(RecipientPolicy::Hash, &other).keep("m1", Some("alice@example.com")));
        assert_ne!(h, r.keep("m1", Some("bob@example.com")));
        assert!(!format!("{r:?}").contains(|c: char| c.is_ascii_digit()), "the key is never printed");
        assert_eq!(Recipients::Keep.keep("m1", Some("Alice@Example.com")), "alice@example.com");
        assert_eq!(r.keep("m1", None), "");
    }

    #[test]
    fn dropped_recipients_stay_apart_within_a_message_and_link_nothing_across_messages() {
        let key = SigningKey::new(Secret::new("0123456789abcdef"));
        let d = Recipients::new(RecipientPolicy::Drop, &key);
        let (a, b) = (d.keep("m1", Some("alice@example.com")), d.keep("m1", Some("bob@example.com")));
        assert_ne!(a, b, "two recipients of one message, two rows");
        assert_eq!(a, d.keep("m1", Some(" Alice@Example.com")), "one recipient's events, one row");
        assert!(a.starts_with('#') && a.len() == 9 && !a.contains("alice"), "{a}");
        assert_ne!(a, d.keep("m2", Some("alice@example.com")), "the same person in another message is not told");
        assert!(!format!("{d:?}").contains(|c: char| c.is_ascii_digit()));
    }
}
