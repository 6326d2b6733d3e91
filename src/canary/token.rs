//! The `X-Mailcanary-Token` header: who sent a canary, for which probe, when,
//! authenticated with HMAC-SHA256 so nobody else can make one count.
//!
//! Format (URL-safe, no spaces, so header folding never splits it):
//! `mc1.<key id>.<instance>.<probe>.<canary id>.<sent ms>.<mac>` where
//! instance and probe are base64url and the MAC covers everything before it.

use crate::secret::Secret;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::path::Path;

const VERSION: &str = "mc1";
/// Longest header value we even try to parse.
const MAX_TOKEN_LEN: usize = 512;

/// The signing key and its public id (a hash prefix, so rotating keys gives
/// new ids and a token names the key it was made with).
#[derive(Clone)]
pub struct SigningKey {
    key: Secret,
    id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.id)
    }
}

impl SigningKey {
    /// A key from its secret text.
    pub fn new(key: Secret) -> Self {
        let digest = Sha256::digest(key.expose().as_bytes());
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        SigningKey { key, id }
    }

    /// Reads the key from `path`, creating it (32 random bytes, mode 0600) if missing.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) if text.trim().len() >= 16 => Ok(Self::new(Secret::new(text.trim()))),
            Ok(_) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("signing key file {} is shorter than 16 characters", path.display()),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = crate::random::token(32);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                write_private(path, &key)?;
                Ok(Self::new(Secret::new(key)))
            }
            Err(e) => Err(e),
        }
    }

    /// The public key id carried in tokens.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A key for `purpose`, derived from this one (HMAC-SHA256 of the
    /// purpose): other uses get a secret of their own that cannot be turned
    /// back into the signing key, nor used to sign a token.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(b"mailcanary derived key\0");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(self.key.expose().as_bytes()).expect("HMAC takes any key length")
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// What a token says, once its MAC is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub instance: String,
    pub probe: String,
    pub canary_id: String,
    /// Wall-clock send time, milliseconds since the Unix epoch.
    pub sent_ms: i64,
}

/// Why a header value is not a token of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Does not parse, names an unknown key, or the MAC is wrong.
    Forged,
    /// Well-formed, from another instance: its to verify, not ours.
    Foreign { instance: String },
}

/// The instance name `mailcanary check` signs with: a running service of
/// `instance` watching the same inbox leaves those canaries to the check,
/// uncounted, once their MAC verifies under its own key.
pub fn check_instance(instance: &str) -> String {
    format!("{instance}.check")
}

impl Token {
    /// Signs this token with `key`.
    pub fn sign(&self, key: &SigningKey) -> String {
        let body = format!(
            "{VERSION}.{}.{}.{}.{}.{}",
            key.id(),
            B64.encode(&self.instance),
            B64.encode(&self.probe),
            self.canary_id,
            self.sent_ms
        );
        let mut mac = key.mac();
        mac.update(body.as_bytes());
        format!("{body}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    /// Verifies `text` as a token of `instance` signed with one of `keys`
    /// (the current key first, then retired ones). The MAC is compared in
    /// constant time. Never panics, whatever the input.
    pub fn verify(text: &str, instance: &str, keys: &[SigningKey]) -> Result<Token, Rejection> {
        let text = text.trim();
        if text.len() > MAX_TOKEN_LEN || !text.is_ascii() {
            return Err(Rejection::Forged);
        }
        let parts: Vec<&str> = text.split('.').collect();
        let [version, key_id, inst, probe, canary_id, sent_ms, mac] = parts[..] else {
            return Err(Rejection::Forged);
        };
        if version != VERSION {
            return Err(Rejection::Forged);
        }
        let decode = |s: &str| B64.decode(s).ok().and_then(|b| String::from_utf8(b).ok());
        let (Some(token_instance), Some(probe)) = (decode(inst), decode(probe)) else {
            return Err(Rejection::Forged);
        };
        let Ok(sent_ms) = sent_ms.parse::<i64>() else {
            return Err(Rejection::Forged);
        };
        if canary_id.is_empty() || !canary_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(Rejection::Forged);
        }
        if token_instance != instance {
            return Err(Rejection::Foreign { instance: token_instance });
        }
        let key = keys.iter().find(|k| k.id() == key_id).ok_or(Rejection::Forged)?;
        let Ok(mac_bytes) = B64.decode(mac) else {
            return Err(Rejection::Forged);
        };
        let body_len = text.len() - mac.len() - 1;
        let mut check = key.mac();
        check.update(&text.as_bytes()[..body_len]);
        check.verify_slice(&mac_bytes).map_err(|_| Rejection::Forged)?;
        Ok(Token { instance: token_instance, probe, canary_id: canary_id.to_string(), sent_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> SigningKey {
        SigningKey::new(Secret::new(s))
    }

    fn token() -> Token {
        Token {
            instance: "eu-1".into(),
            probe: "relay-to-gmail".into(),
            canary_id: "abcDEF123_-x".into(),
            sent_ms: 1_700_000_000_123,
        }
    }

    #[test]
    fn a_signed_token_verifies_and_round_trips() {
        let k = key("0123456789abcdef0123");
        let text = token().sign(&k);
        assert!(text.starts_with("mc1."));
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        assert_eq!(Token::verify(&text, "eu-1", std::slice::from_ref(&k)), Ok(token()));
    }

    #[test]
    fn any_changed_character_is_forged() {
        let k = key("0123456789abcdef0123");
        let text = token().sign(&k);
        for i in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            match Token::verify(&changed, "eu-1", std::slice::from_ref(&k)) {
                Ok(t) => panic!("position {i}: {changed} verified as {t:?}"),
                Err(Rejection::Forged) | Err(Rejection::Foreign { .. }) => {}
            }
        }
    }

    #[test]
    fn another_key_or_instance_does_not_verify() {
        let text = token().sign(&key("0123456789abcdef0123"));
        assert_eq!(Token::verify(&text, "eu-1", &[key("another key, 20 chars")]), Err(Rejection::Forged));
        assert_eq!(
            Token::verify(&text, "us-1", &[key("0123456789abcdef0123")]),
            Err(Rejection::Foreign { instance: "eu-1".into() })
        );
    }

    #[test]
    fn a_retired_key_still_verifies() {
        let old = key("the old key, long enough");
        let text = token().sign(&old);
        assert!(Token::verify(&text, "eu-1", &[key("the new key, long enough"), old]).is_ok());
    }

    #[test]
    fn junk_is_forged_not_a_panic() {
        let k = [key("0123456789abcdef0123")];
        for junk in ["", ".", "mc1", "mc1......", "mc2.a.b.c.d.e.f", &"x".repeat(10_000), "mc1.ab.é.x.y.1.z"] {
            assert_eq!(Token::verify(junk, "eu-1", &k), Err(Rejection::Forged), "{junk:?}");
        }
    }

    proptest::proptest! {
        /// Whatever arrives in the header, verification answers without panicking,
        /// and nothing but a token signed with the key verifies.
        #[test]
        fn arbitrary_text_never_panics_and_never_verifies(text in ".{0,600}") {
            let k = [key("0123456789abcdef0123")];
            proptest::prop_assert!(Token::verify(&text, "eu-1", &k).is_err());
        }

        #[test]
        fn token_shaped_junk_never_verifies(
            kid in "[0-9a-f]{0,10}", inst in "[A-Za-z0-9_-]{0,12}", probe in "[A-Za-z0-9_-]{0,12}",
            id in "[A-Za-z0-9_-]{0,20}", ms in "-?[0-9]{0,15}", mac in "[A-Za-z0-9_-]{0,50}",
        ) {
            let k = [key("0123456789abcdef0123")];
            let text = format!("mc1.{kid}.{inst}.{probe}.{id}.{ms}.{mac}");
            proptest::prop_assert!(Token::verify(&text, "eu-1", &k).is_err());
        }

        /// Every token this code signs verifies to exactly what was signed.
        #[test]
        fn signed_tokens_round_trip(
            instance in "\\PC{1,40}", probe in "\\PC{1,64}", id in "[A-Za-z0-9_-]{1,24}", ms in 0i64..4_000_000_000_000,
        ) {
            let k = key("a signing key of some length");
            let token = Token { instance: instance.clone(), probe, canary_id: id, sent_ms: ms };
            let text = token.sign(&k);
            proptest::prop_assert_eq!(Token::verify(&text, &instance, std::slice::from_ref(&k)), Ok(token));
        }
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("mc-key-{}", std::process::id()));
        let path = dir.join("sub/signing.key");
        let first = SigningKey::load_or_create(&path).unwrap();
        let again = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(first.id(), again.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
