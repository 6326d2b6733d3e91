//! Property tests of what reads an IMAP server's bytes on our side: the
//! meter that bounds every response (checked against a model of the
//! answers' sizes, and against any way the bytes are cut into reads), the
//! server's status text as logged, and UID sets sent back to it.
//! `PROPTEST_CASES=100000 cargo test --lib imap::proptests` runs longer.

use super::error::status_text;
use super::meter::{Limits, Meter};
use super::uid_set;
use proptest::prelude::*;

/// A FETCH response carrying a literal of `body` bytes, then `tail`.
fn fetch(seq: u32, uid: u32, body: &[u8], tail: &str) -> Vec<u8> {
    let mut out = format!("* {seq} FETCH (UID {uid} BODY[HEADER] {{{}}}\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(format!("{tail})\r\n").as_bytes());
    out
}

/// Feeds `bytes` to a fresh meter in reads cut at `cuts`; the verdict of
/// the first read that fails, if one does.
fn scan(bytes: &[u8], cuts: &[usize], limits: Limits) -> (Result<(), super::meter::TooLarge>, Option<String>) {
    let mut meter = Meter::default();
    meter.begin(limits);
    let mut at = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    ends.push(bytes.len());
    ends.sort_unstable();
    for end in ends {
        if let Err((complete, e)) = meter.scan(&bytes[at..end]) {
            assert!(complete <= end - at, "handed on more than was read");
            return (Err(e), meter.bye().map(str::to_string));
        }
        at = end;
    }
    (Ok(()), meter.bye().map(str::to_string))
}

/// The most characters quoted server text takes: MAX_CHARS of it, each
/// escaped as `\u{202e}` at worst, and the cut mark.
const SHOWN: usize = 8 * crate::quote::MAX_CHARS + 1;

fn limits() -> impl Strategy<Value = Limits> {
    (16u64..2048, 16u64..8192).prop_map(|(response, command)| Limits { response, command })
}

/// Lines and literals in any mix, with bytes that look like markers.
fn imapish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        (0u64..600).prop_map(|n| format!("{{{n}}}\r\n").into_bytes()),
        Just(b"{}".to_vec()),
        Just(b"* BYE ".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..64),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|p| p.concat())
}

proptest! {
    #[test]
    fn how_the_bytes_are_cut_into_reads_does_not_change_the_verdict(
        bytes in imapish(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        limits in limits(),
    ) {
        let whole = scan(&bytes, &[], limits);
        let cut = scan(&bytes, &cuts, limits);
        prop_assert_eq!(whole, cut);
    }

    #[test]
    fn answers_pass_exactly_when_they_are_within_the_limits(
        answers in proptest::collection::vec(
            (any::<u32>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..300), "[ -~]{0,40}"),
            1..8,
        ),
        limits in limits(),
    ) {
        let responses: Vec<Vec<u8>> = answers.iter().map(|(s, u, b, t)| fetch(*s, *u, b, t)).collect();
        let largest = responses.iter().map(|r| r.len() as u64).max().unwrap_or(0);
        let total: u64 = responses.iter().map(|r| r.len() as u64).sum();
        let (verdict, _) = scan(&responses.concat(), &[], limits);
        prop_assert_eq!(verdict.is_ok(), largest <= limits.response && total <= limits.command, "{:?}", verdict);
        if let Err(e) = verdict {
            // The response that went over, if named, is named by its own ids.
            let first_over = responses.iter().scan(0u64, |sum, r| { *sum += r.len() as u64; Some((*sum, r)) })
                .position(|(sum, r)| r.len() as u64 > limits.response || sum > limits.command).unwrap();
            prop_assert!(e.seq.is_none_or(|s| s == answers[first_over].0), "{:?}", e);
            prop_assert!(e.uid.is_none_or(|u| u == answers[first_over].1), "{:?}", e);
        }
    }

    #[test]
    fn a_bye_is_kept_quoted_and_bounded(text in proptest::collection::vec(any::<u8>(), 0..4000)) {
        let text: Vec<u8> = text.into_iter().filter(|b| *b != b'\n' && *b != b'{').collect();
        let line = [b"* BYE ".as_slice(), &text, b"\r\n"].concat();
        let (_, bye) = scan(&line, &[], Limits { response: 1 << 20, command: 1 << 20 });
        let bye = bye.expect("a BYE is remembered");
        prop_assert!(bye.chars().count() <= SHOWN);
        prop_assert!(!bye.chars().any(char::is_control), "{:?}", bye);
    }

    #[test]
    fn status_text_is_bounded_and_quoted(
        code in proptest::option::of("[ -~]{0,30}"),
        info in proptest::option::of(any::<String>()),
        raw in any::<String>(),
    ) {
        let some = |v: &Option<String>| v.as_ref().map_or("None".to_string(), |v| format!("Some({v:?})"));
        for text in [format!("code: {}, info: {}", some(&code), some(&info)), raw.clone()] {
            let said = status_text(&text);
            prop_assert!(said.chars().count() <= SHOWN);
            prop_assert!(!said.chars().any(char::is_control), "{:?}", said);
        }
    }

    #[test]
    fn uid_sets_round_trip(uids in proptest::collection::vec(any::<u32>(), 0..200)) {
        let text = uid_set(&uids);
        let mut back = Vec::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (a, b) = part.split_once(':').unwrap_or((part, part));
            let (a, b): (u32, u32) = (a.parse().unwrap(), b.parse().unwrap());
            prop_assert!(a < b || part == a.to_string(), "{}", part);
            back.extend(a..=b);
        }
        let mut expected = uids.clone();
        expected.sort_unstable();
        expected.dedup();
        prop_assert_eq!(back, expected);
    }
}
