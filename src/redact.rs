//! Every rendering of a secret, replaced by `***`. A secret seldom leaks as
//! itself: it leaks quoted by `{:?}` (`\"` and `\\`), in JSON, in a YAML
//! error's quotes, URL-encoded in a query, in base64 inside a SASL
//! exchange (`\0user\0pass`), or quoted twice over (an IMAP LOGIN
//! argument, escaped for IMAP, in a `{:?}` trace line). [`renderings`]
//! spells a secret each of those ways; a [`Redactor`] finds them all at
//! once (Aho-Corasick, longest first) in a config error or a log line;
//! [`Redacting`] does so for every line of the log.

mod writer;

pub use writer::{Redacting, current};

use crate::secret::MIN_CHARS;
use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine;
use std::borrow::Cow;
use std::collections::BTreeSet;

/// What a secret is replaced with.
pub const MARK: &str = "***";
/// Base64 runs shorter than this are not looked for, for the same reason.
const MIN_BASE64: usize = 6;

/// Finds and replaces the renderings of a set of secrets.
#[derive(Debug, Default)]
pub struct Redactor {
    finder: Option<AhoCorasick>,
}

impl Redactor {
    /// A redactor for `secrets` (those shorter than [`MIN_CHARS`] are skipped).
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Redactor {
        let mut needles = BTreeSet::new();
        for secret in secrets {
            needles.extend(renderings(secret.as_ref()));
        }
        if needles.is_empty() {
            return Redactor::default();
        }
        let finder = AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(&needles).ok();
        Redactor { finder }
    }

    /// `text` with every rendering of every secret replaced by [`MARK`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.redact_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // Needles and the mark are whole characters: the result is UTF-8.
            Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }

    /// As [`Redactor::redact`], on bytes (a log line on its way out).
    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        match &self.finder {
            Some(finder) if finder.is_match(bytes) => {
                let mut out = Vec::with_capacity(bytes.len());
                finder.replace_all_with_bytes(bytes, &mut out, |_, _, out| {
                    out.extend_from_slice(MARK.as_bytes());
                    true
                });
                Cow::Owned(out)
            }
            _ => Cow::Borrowed(bytes),
        }
    }
}

/// Every way `secret` may be spelled in text mailcanary or a library
/// writes: raw; escaped as Rust (`{:?}` and `escape_default`), JSON (as is
/// and ASCII-only), YAML (double and single quotes) and IMAP/shell quoting,
/// and each of those escaped once more; URL-encoded as the common encoders
/// do; and base64 at each of the three alignments, so that it is found
/// inside a longer base64 run such as a SASL PLAIN or XOAUTH2 exchange.
pub fn renderings(secret: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if secret.chars().count() < MIN_CHARS {
        return out;
    }
    let escapes: [fn(&str) -> String; 7] = [
        |s| s.escape_debug().to_string(),
        |s| s.escape_default().to_string(),
        json,
        json_ascii,
        yaml_double,
        |s| s.replace('\'', "''"),
        |s| s.replace('\\', "\\\\").replace('"', "\\\""),
    ];
    out.insert(secret.to_string());
    for first in escapes {
        let once = first(secret);
        for second in escapes {
            out.insert(second(&once));
        }
        out.insert(once);
    }
    for upper in [true, false] {
        for keep in [UNRESERVED, FORM, COMPONENT] {
            out.insert(percent(secret, Some(keep), upper, false));
            out.insert(percent(secret, Some(keep), upper, true));
        }
        out.insert(percent(secret, None, upper, false));
    }
    out.extend(base64_runs(secret.as_bytes()));
    out
}

fn json(s: &str) -> String {
    let quoted = serde_json::to_string(s).expect("a string serializes");
    quoted[1..quoted.len() - 1].to_string()
}

/// JSON with every non-ASCII character as `\uXXXX` (Python's `json.dumps`).
fn json_ascii(s: &str) -> String {
    let mut out = String::new();
    for c in json(s).chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// As a YAML double-quoted scalar spells it (config::yaml writes these).
fn yaml_double(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x1b' => out.push_str("\\e"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Left as they are by RFC 3986 strict encoders (Go, Rust's `urlencode`).
const UNRESERVED: &str = "-._~";
/// By `application/x-www-form-urlencoded` encoders (the `url` crate, reqwest's forms).
const FORM: &str = "-._*";
/// By JavaScript's `encodeURIComponent`.
const COMPONENT: &str = "-._~!*'()";

/// `s` percent-encoded, alphanumerics and `keep` left as they are (every
/// byte encoded when None), hex in upper or lower case, a space as `+`
/// when `plus`.
fn percent(s: &str, keep: Option<&str>, upper: bool, plus: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match (b, keep) {
            (b' ', _) if plus => out.push('+'),
            (b, Some(keep)) if b.is_ascii_alphanumeric() || keep.as_bytes().contains(&b) => out.push(b as char),
            (b, _) if upper => out.push_str(&format!("%{b:02X}")),
            (b, _) => out.push_str(&format!("%{b:02x}")),
        }
    }
    out
}

/// The part of `secret`'s base64 that does not depend on what surrounds
/// it, for each offset (mod 3) it may start at, in the standard and the
/// URL-safe alphabet: each character there is made of the secret's bits only.
fn base64_runs(secret: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for shift in 0..3usize {
        let mut framed = vec![0u8; shift];
        framed.extend_from_slice(secret);
        let bits_from = 8 * shift;
        let bits_to = 8 * (shift + secret.len());
        // Characters wholly within the secret's bits.
        let first = bits_from.div_ceil(6);
        let last = bits_to / 6;
        if last <= first || last - first < MIN_BASE64 {
            continue;
        }
        for engine in
            [&base64::engine::general_purpose::STANDARD_NO_PAD, &base64::engine::general_purpose::URL_SAFE_NO_PAD]
        {
            let encoded = engine.encode(&framed);
            out.push(encoded[first..last].to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests;
