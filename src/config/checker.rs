//! What every check of a decoded config writes through: the problems,
//! each with its key's line, and the names the file gives its providers
//! and inboxes.

use super::Problem;
use super::yaml::Document;
use std::collections::HashSet;

/// Where the problems found go, each with its key's line.
pub(super) struct Checker<'a> {
    pub doc: &'a Document,
    pub problems: &'a mut Vec<Problem>,
}

impl Checker<'_> {
    pub(super) fn push(&mut self, path: String, message: impl Into<String>) {
        let line = self.doc.line(&path);
        self.problems.push(Problem { path, line, message: message.into() });
    }

    /// Names become label values and parts of route names: keep them plain.
    pub(super) fn name(&mut self, path: String, name: &str, what: &str) {
        if name.is_empty() {
            self.push(path, format!("{what} name must not be empty"));
        } else if name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            self.push(
                path,
                format!("{what} name {name:?} may use only letters, digits, '-', '_' and '.' (at most 64)"),
            );
        }
    }

    /// As the send path parses it: lettre's `Address` (a bare `user@domain`).
    pub(super) fn address(&mut self, path: String, address: &str) {
        if address.parse::<lettre::Address>().is_err() {
            self.push(path, format!("{address:?} is not an email address (user@domain)"));
        }
    }

    pub(super) fn secret(&mut self, path: String, secret: &crate::secret::Secret) {
        if let Some(message) = crate::valid::secret(secret) {
            self.push(path, message);
        }
    }

    /// The problems a part found in itself, under `path`.
    pub(super) fn all(&mut self, path: &str, problems: Vec<(String, String)>) {
        for (key, message) in crate::valid::under(path, problems) {
            self.push(key, message);
        }
    }

    /// `down_after` and `up_after` count canaries: at least one.
    pub(super) fn health(&mut self, path: &str, t: crate::health::Thresholds) {
        for (key, n) in [("down_after", t.down_after), ("up_after", t.up_after)] {
            if let Some(message) = crate::valid::in_a_row(key, n) {
                self.push(format!("{path}.{key}"), message);
            }
        }
    }

    pub(super) fn ca_file(&mut self, path: String, ca_file: &Option<std::path::PathBuf>) {
        if let Some(message) = ca_file.as_deref().and_then(crate::valid::ca_file) {
            self.push(path, message);
        }
    }
}

/// The names of the providers and inboxes as written, so that one that
/// failed to decode is not reported a second time as unknown wherever it
/// is used.
pub(super) struct Names<'a> {
    pub providers: HashSet<&'a str>,
    pub inboxes: HashSet<&'a str>,
}

impl<'a> Names<'a> {
    pub(super) fn written(doc: &'a Document) -> Names<'a> {
        let names = |section: &str| -> HashSet<&'a str> {
            (0..doc.len(section)).filter_map(|i| doc.scalar(&format!("{section}[{i}].name"))).collect()
        };
        Names { providers: names("providers"), inboxes: names("inboxes") }
    }
}
