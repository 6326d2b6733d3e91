//! The YAML side of config loading: where every key is (path → line), and
//! decoding one node at a time so that one bad provider does not hide the
//! problems of the next.

use super::Problem;
use super::expand::{FlowVariables, expand, yaml_scalar};
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// What kind of YAML node stands at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Scalar,
    Sequence,
    Mapping,
}

/// One node of the document: where it starts (line, 1-based) and its byte range.
#[derive(Debug, Clone, Copy)]
pub struct Node {
    pub line: usize,
    /// Column of the node's start (0-based, in characters).
    col: usize,
    pub kind: Kind,
    start: usize,
    end: usize,
}

/// Every node of a parsed document by its path (`probes[2].provider`), over
/// the source text with `${VAR}` expanded in every value.
pub struct Document {
    text: String,
    nodes: HashMap<String, Node>,
    /// Top-level keys in file order, with the line of each key.
    pub top_keys: Vec<(String, usize)>,
    /// Values that came from the environment: never quoted in a problem.
    pub expanded: Vec<String>,
    /// Where each mapping key's own text starts, by the path it introduces.
    key_starts: HashMap<String, usize>,
    /// Paths whose `${VAR}` could not be expanded: their value is left as
    /// written, and problems it causes are consequences, not causes.
    pub unexpanded: Vec<String>,
}

/// A value scalar as written: where it is and what it says.
struct Scalar {
    path: String,
    line: usize,
    start: usize,
    end: usize,
    value: String,
    plain: bool,
}

impl Document {
    /// Parses `text`, expanding `${VAR}` from `env` in every value (`$$` is a
    /// literal `$`). A syntax error stops here; an unset variable is a
    /// problem pushed to `problems`, naming the variable but never a value.
    pub fn parse(text: &str, env: &HashMap<String, String>, problems: &mut Vec<Problem>) -> Result<Self, Problem> {
        let (raw, scalars, text) = Self::index_with_variables(text)?;
        let text = text.as_str();
        if !scalars.iter().any(|s| s.value.contains('$')) {
            return Ok(raw);
        }
        let mut expanded_values = Vec::new();
        let mut unexpanded = Vec::new();
        let mut unset: Vec<(Problem, Vec<usize>)> = Vec::new();
        // Rewrite each expanded value in place, keeping its line count, then
        // index the result: lines stay those of the file.
        let mut expanded = String::with_capacity(text.len());
        let mut at = 0;
        for scalar in scalars.iter().filter(|s| s.value.contains('$')) {
            let value = match expand(&scalar.value, env) {
                Ok(value) => {
                    expanded_values.push(value.clone());
                    value
                }
                Err(message) => {
                    // One problem per cause: a variable unset in five places is one fix.
                    match unset.iter_mut().find(|(p, _)| p.message == message) {
                        Some((_, again)) => again.push(scalar.line),
                        None => unset
                            .push((Problem { path: scalar.path.clone(), line: Some(scalar.line), message }, vec![])),
                    }
                    unexpanded.push(scalar.path.clone());
                    continue;
                }
            };
            expanded.push_str(&text[at..scalar.start]);
            expanded.push_str(&yaml_scalar(&value, scalar.plain));
            let lines = text[scalar.start..scalar.end].matches('\n').count();
            expanded.extend(std::iter::repeat_n('\n', lines));
            at = scalar.end;
        }
        expanded.push_str(&text[at..]);
        for (mut problem, again) in unset {
            if !again.is_empty() {
                let lines: Vec<String> = again.iter().map(usize::to_string).collect();
                let s = if again.len() == 1 { "" } else { "s" };
                problem.message.push_str(&format!("; used again on line{s} {}", lines.join(", ")));
            }
            problems.push(problem);
        }
        let mut doc = Self::index(&expanded).map_err(|p| redact(vec![p], &expanded_values).remove(0))?.0;
        doc.expanded = expanded_values;
        doc.unexpanded = unexpanded;
        Ok(doc)
    }

    /// Indexes `text`, where a `${VAR}` may stand anywhere a value may,
    /// unquoted inside `{ … }` and `[ … ]` too, where YAML would read its
    /// braces as a mapping: if `text` does not parse, it is parsed again
    /// with each `${VAR}` written `$(VAR)` (same length, so positions and
    /// lines stay), and the scalars get their `${VAR}` back. Returns the
    /// text that was indexed.
    fn index_with_variables(text: &str) -> Result<(Self, Vec<Scalar>, String), Problem> {
        let problem = match Self::index(text) {
            Ok((doc, scalars)) => return Ok((doc, scalars, text.to_string())),
            Err(problem) => problem,
        };
        let Some(flow) = FlowVariables::hide(text) else { return Err(problem) };
        let (doc, mut scalars) = Self::index(&flow.text).map_err(|_| problem)?;
        for s in &mut scalars {
            s.value = flow.restore(&s.value, s.start, s.end);
        }
        Ok((doc, scalars, flow.text))
    }

    /// The node at `path`, if the file has one.
    pub fn node(&self, path: &str) -> Option<Node> {
        self.nodes.get(path).copied()
    }

    /// The line of `path`, or of its nearest ancestor that the file has.
    pub fn line(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(node) = self.nodes.get(path) {
                return Some(node.line);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }

    /// The number of items of the sequence at `path` (0 if it is not one).
    pub fn len(&self, path: &str) -> usize {
        (0..).take_while(|i| self.nodes.contains_key(&format!("{path}[{i}]"))).count()
    }

    /// Decodes the node at `path` alone. Everything outside the node is
    /// blanked (newlines kept), so the decoder's line numbers are the file's own.
    pub fn decode<T: DeserializeOwned>(&self, path: &str) -> Result<T, Problem> {
        self.decode_without(path, &[])
    }

    /// Decodes the node at `path`, reporting every bad key in it, not only the
    /// first: a key the decoder refuses is set aside (as if not written) and
    /// the rest decoded again, so that later keys are still checked. The
    /// value is `None` when the node cannot be decoded even so (a required
    /// key was the bad one, or the error names no key of its own).
    pub fn decode_all<T: DeserializeOwned>(&self, path: &str) -> (Option<T>, Vec<Problem>) {
        let mut problems: Vec<Problem> = Vec::new();
        let mut skipped: Vec<String> = Vec::new();
        loop {
            match self.decode_without::<T>(path, &skipped) {
                Ok(value) => return (Some(value), problems),
                Err(problem) => {
                    // "missing field `host`" after `host` was set aside is its consequence.
                    let missing = problem.message.strip_prefix("missing field `").and_then(|r| r.split_once('`'));
                    if let Some((key, _)) = missing
                        && skipped.iter().any(|s| s.rsplit(['.', ']']).next() == Some(key))
                    {
                        return (None, problems);
                    }
                    let own_key = problem.path.len() > path.len()
                        && problem.path.starts_with(path)
                        && self.key_starts.contains_key(&problem.path)
                        && !skipped.contains(&problem.path)
                        && skipped.len() < 32;
                    let next = problem.path.clone();
                    problems.push(problem);
                    if !own_key {
                        return (None, problems);
                    }
                    skipped.push(next);
                }
            }
        }
    }

    /// [`Document::decode`] with the keys at `skip` (and their values) blanked.
    fn decode_without<T: DeserializeOwned>(&self, path: &str, skip: &[String]) -> Result<T, Problem> {
        let node = self.node(path).ok_or_else(|| Problem::at(path, None, "missing"))?;
        let holes: Vec<(usize, usize)> = skip.iter().filter_map(|p| self.key_span(p)).collect();
        let isolated: String = self
            .text
            .char_indices()
            .map(|(i, c)| {
                let kept = (node.start..node.end).contains(&i) && !holes.iter().any(|(s, e)| (*s..*e).contains(&i));
                if kept || c == '\n' || c == '\r' { c } else { ' ' }
            })
            .collect();
        let mut options = serde_saphyr::Options::default();
        options.with_snippet = false;
        serde_saphyr::from_str_with_options(&isolated, options).map_err(|e| {
            let message = clean_message(&e.without_snippet().to_string());
            let at = e.location().filter(|l| l.line() > 0).map(|l| (l.line() as usize, l.column() as usize));
            let path = self.locate(path, &message, at);
            Problem { line: self.line(&path).or(at.map(|(l, _)| l)), path, message }
        })
    }

    /// From the key of `path` to the end of its value, and a comma that
    /// follows it in a flow mapping (so that blanking it leaves valid YAML).
    fn key_span(&self, path: &str) -> Option<(usize, usize)> {
        let start = *self.key_starts.get(path)?;
        let mut end = self.node(path)?.end.max(start);
        let rest = self.text.get(end..).unwrap_or("");
        let trimmed = rest.trim_start_matches([' ', '\t']);
        if trimmed.starts_with(',') {
            end += rest.len() - trimmed.len() + 1;
        }
        Some((start, end))
    }

    /// The text of the scalar at `path`, as decoded would see it.
    pub fn scalar(&self, path: &str) -> Option<&str> {
        let node = self.node(path).filter(|n| n.kind == Kind::Scalar)?;
        Some(self.text[node.start..node.end].trim_matches(|c: char| c == '"' || c == '\'' || c.is_whitespace()))
    }

    /// The path under `prefix` that a decode error is about. Tagged enums
    /// are decoded from a buffer and lose positions, so an unknown key or a
    /// quoted bad value is looked up by name first; otherwise the node that
    /// starts at the error's position (or the last one before it on its line).
    fn locate(&self, prefix: &str, message: &str, at: Option<(usize, usize)>) -> String {
        let under = |p: &str| p.starts_with(prefix) && p.len() > prefix.len();
        if let Some(key) = message.strip_prefix("unknown field `").and_then(|r| r.split_once('`')).map(|(k, _)| k) {
            let path = format!("{prefix}.{key}");
            if self.nodes.contains_key(&path) {
                return path;
            }
        }
        let quoted = message.split(['`', '"']).nth(1).filter(|q| !q.is_empty());
        if let Some(value) = quoted {
            let mut hits = self.nodes.keys().filter(|p| under(p) && self.scalar(p) == Some(value));
            if let (Some(hit), None) = (hits.next(), hits.next()) {
                return hit.clone();
            }
        }
        let Some((line, col)) = at else { return prefix.to_string() };
        let col = col.saturating_sub(1);
        self.nodes
            .iter()
            .filter(|(p, n)| under(p) && n.line == line && n.col <= col)
            .max_by_key(|(p, n)| (n.col, p.len()))
            .map_or_else(|| prefix.to_string(), |(p, _)| p.clone())
    }
}

/// `problems` with every value from the environment replaced by `***`,
/// however it is spelled there (quoted, escaped, encoded: crate::redact),
/// so a secret expanded into the wrong key is never quoted back.
pub fn redact(problems: Vec<Problem>, expanded: &[String]) -> Vec<Problem> {
    let redactor = crate::redact::Redactor::new(expanded);
    problems
        .into_iter()
        .map(|mut p| {
            p.message = redactor.redact(&p.message).into_owned();
            p.path = redactor.redact(&p.path).into_owned();
            p
        })
        .collect()
}

/// `value` as this file writes a quoted scalar, for the redaction tests.
#[cfg(test)]
pub(crate) fn quoted(value: &str) -> String {
    yaml_scalar(value, false)
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

/// The decoder's message without its own position suffix (we add ours).
fn clean_message(message: &str) -> String {
    let message = message.trim();
    let message = match message.rfind(" at line ") {
        Some(cut) => &message[..cut],
        None => message,
    };
    let message = message.trim_end_matches(',').trim();
    match message {
        "invalid u16" => "expected a whole number from 1 to 65535".to_string(),
        "invalid usize" | "invalid u32" | "invalid u64" => "expected a whole number".to_string(),
        other => other.to_string(),
    }
}

mod index;
#[cfg(test)]
mod tests;
