//! Keys and names of the traffic sources as the config gives them, read
//! once here: `validate` checks them, and crate::traffic's verifiers use them.

use crate::secret::Secret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The region of an SNS topic ARN (`arn:aws:sns:REGION:ACCOUNT:NAME`).
pub fn topic_region(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", partition, "sns", region, account, name]
            if partition.starts_with("aws")
                && !region.is_empty()
                && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && !name.is_empty() =>
        {
            Some(region)
        }
        _ => None,
    }
}

/// The DER SubjectPublicKeyInfo of a P-256 key, up to its point: the only
/// key SendGrid signs with.
pub(crate) const P256_SPKI: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The uncompressed P-256 point of SendGrid's verification key (base64 of
/// DER, with or without PEM armour), or what is wrong with it.
pub fn public_key(text: &str) -> Result<Vec<u8>, String> {
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let der =
        STANDARD.decode(&body).map_err(|_| "not base64 (paste the verification key SendGrid shows)".to_string())?;
    match der.strip_prefix(&P256_SPKI[..]) {
        Some(point) if point.len() == 65 && point[0] == 4 => Ok(point.to_vec()),
        _ => Err("not a P-256 public key (SendGrid's verification key is one)".into()),
    }
}

/// The HMAC key of a `whsec_…` secret, or what is wrong with it (never the secret).
pub fn secret_key(secret: &Secret) -> Result<Vec<u8>, String> {
    let text = secret.expose().trim();
    let encoded = text.strip_prefix("whsec_").ok_or("must be the endpoint's signing secret, starting with whsec_")?;
    STANDARD.decode(encoded).map_err(|_| "the part after whsec_ is not base64".to_string())
}
