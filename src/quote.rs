//! Server text made fit for a log line or a terminal. What a server says is
//! untrusted: it may be binary garbage, megabytes long, or hold terminal
//! escapes (ESC sequences that move the cursor, rewrite the title or the
//! clipboard; BEL; a CR that overwrites the line) and invisible characters
//! that reorder or hide text (bidi overrides). Every error detail that
//! carries server text goes through [`quote`] (or [`quote_bytes`]) first:
//! those characters escaped, cut on a character boundary, and marked with
//! "…" when cut. Everything printed to a terminal from a server or from the
//! ledger (`report`, `check`, `validate`) goes through [`quote`] or, where
//! nothing may be cut, [`escape`].

/// How many characters of server text a log line carries.
pub const MAX_CHARS: usize = 200;

/// `text` with control and invisible formatting characters escaped (`\r`,
/// `\n`, `\t`, `\u{1b}`, `\u{202e}`…), cut to [`MAX_CHARS`] characters
/// with "…" appended when cut.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_CHARS + 8));
    for (count, c) in text.chars().enumerate() {
        if count == MAX_CHARS {
            out.push('…');
            break;
        }
        push_escaped(&mut out, c);
    }
    out
}

/// As [`quote`], whole: for text that must be shown in full (a config
/// problem naming every expected key).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out
}

/// JSON text (serde_json's, which escapes only C0) safe for a terminal: DEL,
/// C1 and the invisible characters escaped as `\uXXXX`, which every JSON
/// reader reads back as the same string.
pub fn json_for_terminal(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        // C0 inside strings is serde_json's to escape; outside them a newline is layout.
        if (c.is_control() && u32::from(c) >= 0x7f) || invisible(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\r' => out.push_str("\\r"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() || invisible(c) => out.extend(c.escape_unicode()),
        c => out.push(c),
    }
}

/// Characters a terminal does not show but obeys: the bidi marks,
/// embeddings, overrides and isolates (which make text read in another
/// order than it is written), zero-width characters and the BOM.
fn invisible(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// Like [`quote`], for bytes that may not be UTF-8 (invalid sequences
/// become U+FFFD). Reads no more than it shows.
pub fn quote_bytes(bytes: &[u8]) -> String {
    // Four bytes per character at most: enough input for MAX_CHARS and the cut mark.
    let head = &bytes[..bytes.len().min(4 * (MAX_CHARS + 1))];
    let text = String::from_utf8_lossy(head);
    let mut out = quote(&text);
    if head.len() < bytes.len() && !out.ends_with('…') {
        out.push('…');
    }
    out
}

/// An error chain's text without a prefix said twice in a row, as in
/// lettre's "Connection error: Connection error: invalid peer certificate".
pub fn dedup_prefixes(text: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

/// An error and its sources, for a log line: each level's text once (some
/// errors repeat their source's text in their own, some leave it out),
/// repeated prefixes said once, quoted and cut.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        let said = source.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        next = source.source();
    }
    quote(&dedup_prefixes(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_for_a_terminal_escapes_what_serde_leaves_and_reads_back_the_same() {
        let hostile = "id\u{7f}\u{9b}31m\u{202e}gnp.exe\n";
        let json = serde_json::to_string_pretty(&serde_json::json!({ "provider_id": hostile })).unwrap();
        let safe = json_for_terminal(&json);
        assert!(safe.chars().all(|c| c == '\n' || !c.is_control() && !invisible(c)), "{safe}");
        assert!(safe.contains("\\u007f") && safe.contains("\\u009b") && safe.contains("\\u202e"), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["provider_id"], hostile);
    }

    #[test]
    fn control_bytes_are_escaped() {
        assert_eq!(quote("a\r\nb\tc\x1b[31m\0"), "a\\r\\nb\\tc\\u{1b}[31m\\u{0}");
    }

    #[test]
    fn terminal_controls_and_bidi_are_escaped() {
        // C0 (BEL, ESC), DEL, C1 (CSI as one character), bidi override and isolate.
        let hostile = "id\x07\x1b]0;title\x07\x7f\u{9b}2J\u{202e}txt.exe\u{2066}\u{200b}";
        assert_eq!(escape(hostile), "id\\u{7}\\u{1b}]0;title\\u{7}\\u{7f}\\u{9b}2J\\u{202e}txt.exe\\u{2066}\\u{200b}");
        assert_eq!(quote(hostile), escape(hostile));
        assert_eq!(escape("ünïcødé → ok"), "ünïcødé → ok");
        assert_eq!(escape(&"x".repeat(500)).len(), 500, "escape does not cut");
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let long = "é".repeat(5000);
        let q = quote(&long);
        assert_eq!(q.chars().count(), MAX_CHARS + 1);
        assert!(q.ends_with('…'));
        assert_eq!(quote("short"), "short");
    }

    #[test]
    fn bytes_are_read_only_as_far_as_shown() {
        let garbage: Vec<u8> = (0..=255u8).cycle().take(22 * 1024).collect();
        let q = quote_bytes(&garbage);
        assert!(q.len() < 4 * MAX_CHARS, "{} bytes", q.len());
        assert!(q.ends_with('…'));
        assert_eq!(quote_bytes(b"\xff ok"), "\u{fffd} ok");
    }

    #[test]
    fn a_chain_says_each_level_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("connection refused\r\n"));
        assert_eq!(error_chain(&e), "error sending request: connection refused\\r\\n");
    }

    #[test]
    fn repeated_prefixes_are_said_once() {
        assert_eq!(
            dedup_prefixes("Connection error: Connection error: invalid peer certificate: Expired"),
            "Connection error: invalid peer certificate: Expired"
        );
        assert_eq!(dedup_prefixes("a: b: a"), "a: b: a");
    }
}
