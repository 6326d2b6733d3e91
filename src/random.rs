//! Randomness from the operating system (through ring, already our TLS crypto).

use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};

pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    SystemRandom::new().fill(&mut buf).expect("the operating system's random source works");
    buf
}

/// `len` random bytes as URL-safe base64.
pub fn token(len: usize) -> String {
    let mut buf = vec![0u8; len];
    SystemRandom::new().fill(&mut buf).expect("the operating system's random source works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// A uniform number in [0, 1).
pub fn unit() -> f64 {
    (u64::from_le_bytes(bytes::<8>()) >> 11) as f64 / (1u64 << 53) as f64
}
