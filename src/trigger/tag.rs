//! The tag that marks an application's email as a canary: `mc` and 32
//! lowercase hex digits (128 bits from the operating system's CSPRNG), put
//! into the recipient address. It is the canary's id in the ledger too, so
//! a canary still in flight after a restart is matched as before, and only
//! an instance that made a tag (and has it in its ledger) ever takes its
//! email: probers sharing an inbox leave each other's alone.

/// What `{{tag}}` stands for in an address template.
pub const TAG: &str = "{{tag}}";
const PREFIX: &str = "mc";
const DIGITS: usize = 32;

/// A fresh, unguessable tag.
pub fn new() -> String {
    let bytes = crate::random::bytes::<16>();
    let mut tag = String::with_capacity(PREFIX.len() + DIGITS);
    tag.push_str(PREFIX);
    for b in bytes {
        tag.push_str(&format!("{b:02x}"));
    }
    tag
}

/// Every tag in `text` (a recipient header's value), lowercased: `mc` and
/// exactly 32 hex digits, with no letter or digit on either side.
pub fn find(text: &str) -> Vec<String> {
    let text = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(at) = text[i..].find(PREFIX).map(|p| p + i) {
        let end = at + PREFIX.len() + DIGITS;
        let before_ok = at == 0 || !bytes[at - 1].is_ascii_alphanumeric();
        let digits_ok = end <= bytes.len() && bytes[at + PREFIX.len()..end].iter().all(u8::is_ascii_hexdigit);
        let after_ok = end >= bytes.len() || !bytes[end].is_ascii_alphanumeric();
        if before_ok && digits_ok && after_ok {
            let tag = text[at..end].to_string();
            if !found.contains(&tag) {
                found.push(tag);
            }
            i = end;
        } else {
            i = at + 1;
        }
    }
    found
}

/// Whether `id` (a canary id) is a tag: an application canary's.
pub fn is_tag(id: &str) -> bool {
    id.len() == PREFIX.len() + DIGITS
        && id.starts_with(PREFIX)
        && id[PREFIX.len()..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The headers a tag is looked for in: where the recipient stands,
/// whatever the receiving servers rewrote.
pub const RECIPIENT_HEADERS: [&str; 3] = ["To", "Delivered-To", "X-Original-To"];

/// Every tag in the recipient headers of a header block (unfolded first).
pub fn in_recipients(headers: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(headers);
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    let take = |value: Option<String>, found: &mut Vec<String>| {
        for tag in value.map(|v| find(&v)).unwrap_or_default() {
            if !found.contains(&tag) {
                found.push(tag);
            }
        }
    };
    for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
        if line.starts_with([' ', '\t']) {
            if let Some(value) = current.as_mut() {
                value.push_str(line);
            }
            continue;
        }
        take(current.take(), &mut found);
        if let Some((name, value)) = line.split_once(':')
            && RECIPIENT_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name.trim()))
        {
            current = Some(value.to_string());
        }
    }
    take(current, &mut found);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_from_recipient_headers_only() {
        let (a, b, c) = (new(), new(), new());
        let headers = format!(
            "Received: from x by y for <ops+{c}@example.com>\r\nTo: Ops\r\n <ops+{a}@example.com>\r\n\
             Subject: {c}\r\nDelivered-To: ops+{b}@example.com\r\nX-Original-To: ops+{a}@example.com\r\n\r\n"
        );
        assert_eq!(in_recipients(headers.as_bytes()), [a, b]);
        assert!(in_recipients(b"To: ops@example.com\r\n\r\n").is_empty());
    }

    #[test]
    fn tags_are_fresh_and_found_again() {
        let (a, b) = (new(), new());
        assert_ne!(a, b);
        assert_eq!(a.len(), 34);
        assert_eq!(find(&format!("Ops <ops.canary+{a}@example.com>, x@y")), [a.as_str()]);
        assert_eq!(find(&format!("<OPS.CANARY+{}@EXAMPLE.COM>", a.to_uppercase())), [a.as_str()]);
        assert_eq!(find(&format!("canary-{a}@catchall.test, canary-{b}@catchall.test")), [a, b]);
    }

    #[test]
    fn near_misses_are_not_tags() {
        let digits = "0123456789abcdef0123456789abcdef";
        assert!(find(&format!("x+mc{}@y", &digits[1..])).is_empty());
        assert!(find(&format!("x+mc{digits}0@y")).is_empty());
        assert!(find(&format!("x+amc{digits}@y")).is_empty());
        assert!(find(&format!("x+mc{}g@y", &digits[1..])).is_empty());
        assert_eq!(find(&format!("x+mc{digits}@y")), [format!("mc{digits}")]);
        assert!(find("").is_empty() && find("mc").is_empty());
        assert!(is_tag(&new()) && is_tag(&format!("mc{digits}")));
        assert!(!is_tag(&format!("mc{}", &digits[1..])) && !is_tag(&format!("mc{}", digits.to_uppercase())));
    }
}
