//! The index of a YAML text: where each path's node is (line, column,
//! byte span) and every scalar value, built from the parser's events, so
//! that errors name lines and secrets can be found where they were written.

use super::{Document, Kind, Node, Scalar, join};
use crate::config::Problem;
use serde_saphyr::granit_parser::{Event, Marker, Parser, ScalarStyle};
use std::collections::HashMap;

/// A collection still open: its path, where it started, and the key of
/// a mapping's next value or the index of a sequence's next item.
enum Frame {
    Map { path: String, start: usize, line: usize, col: usize, key: Option<String> },
    Seq { path: String, start: usize, line: usize, col: usize, next: usize },
}

/// Where an event stands in the text.
#[derive(Clone, Copy)]
struct At {
    line: usize,
    col: usize,
    /// Byte offsets, for slicing: `index()` counts characters, and an
    /// expanded secret may hold "é".
    start: usize,
    end: usize,
}

/// The document being indexed, the scalars found and the open collections.
struct Indexer<'t> {
    text: &'t str,
    doc: Document,
    scalars: Vec<Scalar>,
    stack: Vec<Frame>,
}

impl Document {
    /// Indexes `text` without expanding anything.
    pub(super) fn index(text: &str) -> Result<(Self, Vec<Scalar>), Problem> {
        let doc = Document {
            text: text.to_string(),
            nodes: HashMap::new(),
            top_keys: Vec::new(),
            expanded: Vec::new(),
            key_starts: HashMap::new(),
            unexpanded: Vec::new(),
        };
        let mut ix = Indexer { text, doc, scalars: Vec::new(), stack: Vec::new() };
        let mut parser = Parser::new_from_str(text);
        while let Some(event) = parser.next_event() {
            let (event, span) = event.map_err(|e| Problem {
                path: String::new(),
                line: Some(e.marker().line()),
                message: format!("YAML syntax error at column {}: {}", e.marker().col() + 1, e.info()),
            })?;
            let byte = |m: &Marker| m.byte_offset().unwrap_or_else(|| m.index());
            let at =
                At { line: span.start.line(), col: span.start.col(), start: byte(&span.start), end: byte(&span.end) };
            match event {
                Event::Scalar(value, style, ..) => ix.scalar(value.to_string(), style, at),
                Event::MappingStart(..) => {
                    let path = child_path(&mut ix.stack);
                    ix.stack.push(Frame::Map { path, start: at.start, line: at.line, col: at.col, key: None });
                }
                Event::SequenceStart(..) => {
                    let path = child_path(&mut ix.stack);
                    ix.stack.push(Frame::Seq { path, start: at.start, line: at.line, col: at.col, next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => ix.close(at.end),
                Event::Alias(_) => {
                    let path = child_path(&mut ix.stack);
                    let node = Node { line: at.line, col: at.col, kind: Kind::Scalar, start: at.start, end: at.end };
                    ix.doc.nodes.entry(path).or_insert(node);
                }
                _ => {}
            }
        }
        Ok((ix.doc, ix.scalars))
    }
}

impl Indexer<'_> {
    /// A scalar in key position names the next value; otherwise it is a value.
    fn scalar(&mut self, value: String, style: ScalarStyle, at: At) {
        let node = Node { line: at.line, col: at.col, kind: Kind::Scalar, start: at.start, end: at.end };
        if let Some(Frame::Map { key: key @ None, path, .. }) = self.stack.last_mut() {
            if path.is_empty() {
                self.doc.top_keys.push((value.clone(), at.line));
            }
            self.doc.nodes.insert(join(path, &value), node);
            self.doc.key_starts.insert(join(path, &value), at.start);
            *key = Some(value);
            return;
        }
        let path = child_path(&mut self.stack);
        self.doc.nodes.insert(path.clone(), node);
        let plain = style == ScalarStyle::Plain;
        // A block scalar's span starts at its content: take in its `|` or `>`.
        let start = match style {
            ScalarStyle::Literal | ScalarStyle::Folded => self.text[..at.start].rfind(['|', '>']).unwrap_or(at.start),
            _ => at.start,
        };
        self.scalars.push(Scalar { path, line: at.line, start, end: at.end, value, plain });
    }

    /// A collection ends at `end`: its node, on the line of the key that
    /// introduced it.
    fn close(&mut self, end: usize) {
        let (path, node) = match self.stack.pop() {
            Some(Frame::Map { path, start, line, col, .. }) => {
                (path, Node { line, col, kind: Kind::Mapping, start, end })
            }
            Some(Frame::Seq { path, start, line, col, .. }) => {
                (path, Node { line, col, kind: Kind::Sequence, start, end })
            }
            None => return,
        };
        let line = self.doc.nodes.get(&path).map_or(node.line, |n| n.line);
        self.doc.nodes.insert(path, Node { line, ..node });
    }
}

/// The path of the node that starts now, as a child of the innermost frame.
fn child_path(stack: &mut [Frame]) -> String {
    match stack.last_mut() {
        None => String::new(),
        Some(Frame::Map { path, key, .. }) => {
            let key = key.take().unwrap_or_default();
            join(path, &key)
        }
        Some(Frame::Seq { path, next, .. }) => {
            *next += 1;
            format!("{path}[{}]", *next - 1)
        }
    }
}
