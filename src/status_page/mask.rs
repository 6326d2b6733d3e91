//! `hide_inboxes`: inbox names (and route names, which contain them) made
//! into neutral words wherever free text reaches the page, its JSON, feed
//! and badges: a health reason says "3 canaries in a row to mailbox 2
//! refused", never the name.

/// Characters a name may hold (crate::config: letters, digits, `-`, `_`, `.`).
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// The names to hide, each with its stand-in, longest first.
#[derive(Debug, Clone, Default)]
pub struct Mask {
    words: Vec<(String, String)>,
}

impl Mask {
    /// A mask for `inboxes` (numbered in this order: `mailbox 1`, ...) and
    /// `routes` (route name, inbox name).
    pub fn new(inboxes: &[String], routes: &[(String, String)]) -> Mask {
        let mut numbered: Vec<&String> = Vec::new();
        for name in inboxes.iter().chain(routes.iter().map(|(_, inbox)| inbox)) {
            if !numbered.contains(&name) {
                numbered.push(name);
            }
        }
        let word = |inbox: &str| {
            let n = numbered.iter().position(|i| i.as_str() == inbox).map_or(0, |i| i + 1);
            format!("mailbox {n}")
        };
        let mut words: Vec<(String, String)> = numbered.iter().map(|i| (i.to_string(), word(i))).collect();
        for (route, inbox) in routes {
            if !words.iter().any(|(w, _)| w == route) {
                words.push((route.clone(), format!("a route into {}", word(inbox))));
            }
        }
        words.retain(|(w, _)| !w.is_empty());
        words.sort_by_key(|(w, _)| std::cmp::Reverse(w.len()));
        Mask { words }
    }

    /// The stand-in for inbox `name`.
    pub fn inbox(&self, name: &str) -> String {
        self.words.iter().find(|(w, _)| w == name).map_or_else(|| "a mailbox".into(), |(_, s)| s.clone())
    }

    /// `text` with every hidden name, as a whole word, replaced. A name
    /// ends where a character no name holds follows, or a `.` that ends a
    /// sentence (followed by no name character).
    pub fn apply(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut after_name_char = false;
        'outer: while let Some(c) = rest.chars().next() {
            if !after_name_char {
                for (word, stand_in) in &self.words {
                    if let Some(tail) = rest.strip_prefix(word.as_str())
                        && ends_here(tail)
                    {
                        out.push_str(stand_in);
                        rest = tail;
                        after_name_char = false;
                        continue 'outer;
                    }
                }
            }
            out.push(c);
            after_name_char = name_char(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }
}

/// Whether a name may end just before `tail`.
fn ends_here(tail: &str) -> bool {
    let mut chars = tail.chars();
    match chars.next() {
        None => true,
        Some('.') => !chars.next().is_some_and(name_char),
        Some(c) => !name_char(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_replaced_as_whole_words_only() {
        let mask = Mask::new(
            &["x".into(), "secretinbox-zq".into()],
            &[("relay-to-secretinbox-zq".into(), "secretinbox-zq".into())],
        );
        assert_eq!(
            mask.apply("3 canaries in a row to secretinbox-zq refused; next: x, relay-to-secretinbox-zq and x."),
            "3 canaries in a row to mailbox 2 refused; next: mailbox 1, a route into mailbox 2 and mailbox 1."
        );
        assert_eq!(mask.apply("x-ray, xx, box.x, x.y"), "x-ray, xx, box.x, x.y", "not inside other words");
        assert_eq!(mask.inbox("x"), "mailbox 1");
        assert_eq!(mask.inbox("unknown"), "a mailbox");
    }
}
