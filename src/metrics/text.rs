//! The Prometheus text format 0.0.4, for scrapers and tools (`promtool check
//! metrics`) that do not ask for OpenMetrics: converted from a part of the
//! exposition once it is encoded (a family: crate::metrics::exposition),
//! its samples copied a run at a time.
//!
//! It differs from OpenMetrics in its comments only: a counter family is
//! named with its `_total` suffix in `# HELP` and `# TYPE`, and there is no
//! `# UNIT` or `# EOF`. A family's `# HELP` comes before its `# TYPE`, so
//! it is held until the type says whether it is a counter's.

use std::fmt::Write;

/// Takes OpenMetrics, writes Prometheus text into `out`.
pub struct PrometheusText {
    out: String,
    /// The comment line being read, from its `#`.
    comment: String,
    /// A family's `# HELP` line, until its `# TYPE` is read.
    help: Option<String>,
    /// Nothing of the current line has been read yet.
    line_start: bool,
    in_comment: bool,
}

impl PrometheusText {
    pub fn with_capacity(capacity: usize) -> Self {
        PrometheusText {
            out: String::with_capacity(capacity),
            comment: String::new(),
            help: None,
            line_start: true,
            in_comment: false,
        }
    }

    pub fn finish(mut self) -> String {
        self.flush_help();
        self.out
    }

    fn flush_help(&mut self) {
        if let Some(help) = self.help.take() {
            self.out.push_str(&help);
            self.out.push('\n');
        }
    }

    /// A whole comment line, without its newline.
    fn comment_line(&mut self) {
        let line = std::mem::take(&mut self.comment);
        if line.starts_with("# UNIT ") || line == "# EOF" {
            return;
        }
        if line.starts_with("# HELP ") {
            self.flush_help();
            self.help = Some(line);
        } else if let Some(name) = line.strip_prefix("# TYPE ").and_then(|l| l.strip_suffix(" counter")) {
            let name = name.to_string();
            if let Some(help) = self.help.take() {
                match help.strip_prefix("# HELP ").and_then(|h| h.strip_prefix(name.as_str())) {
                    Some(text) if text.starts_with(' ') => {
                        let _ = writeln!(self.out, "# HELP {name}_total{text}");
                    }
                    _ => {
                        self.out.push_str(&help);
                        self.out.push('\n');
                    }
                }
            }
            let _ = writeln!(self.out, "# TYPE {name}_total counter");
        } else {
            self.flush_help();
            self.out.push_str(&line);
            self.out.push('\n');
        }
    }
}

/// Prometheus text from OpenMetrics (a whole exposition or a part of one):
/// the samples between comment lines are copied a run at a time, and only
/// the comment lines are read. A line that starts with `#` is a comment:
/// a label value's newline is escaped, so no sample line starts with one.
pub fn from_openmetrics(openmetrics: &str) -> String {
    let mut text = PrometheusText::with_capacity(openmetrics.len() + openmetrics.len() / 64);
    let mut rest = openmetrics;
    while !rest.is_empty() {
        let samples = comment_start(rest).unwrap_or(rest.len());
        if samples > 0 {
            text.samples(&rest[..samples]);
            rest = &rest[samples..];
        }
        let line = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let _ = text.write_str(&rest[..line]);
        rest = &rest[line..];
    }
    text.finish()
}

/// Where the first comment line of `s` starts, which starts a line itself.
fn comment_start(s: &str) -> Option<usize> {
    let mut from = 0;
    loop {
        let i = from + s[from..].find('#')?;
        if i == 0 || s.as_bytes()[i - 1] == b'\n' {
            return Some(i);
        }
        from = i + 1;
    }
}

impl PrometheusText {
    /// Whole sample lines, from the start of a line.
    fn samples(&mut self, lines: &str) {
        debug_assert!(self.line_start, "samples start a line");
        self.flush_help();
        self.out.push_str(lines);
        self.in_comment = false;
        self.line_start = lines.ends_with('\n');
    }
}

impl Write for PrometheusText {
    fn write_str(&mut self, mut s: &str) -> std::fmt::Result {
        // Most of a scrape is samples, written a few bytes at a time.
        if !self.line_start && !self.in_comment && !s.as_bytes().contains(&b'\n') {
            self.out.push_str(s);
            return Ok(());
        }
        while !s.is_empty() {
            if self.line_start {
                self.in_comment = s.starts_with('#');
                self.line_start = false;
                if !self.in_comment {
                    // A HELP with no TYPE after it stays above its samples.
                    self.flush_help();
                }
            }
            let (part, rest, ends) = match s.as_bytes().iter().position(|b| *b == b'\n') {
                Some(i) => (&s[..i], &s[i + 1..], true),
                None => (s, "", false),
            };
            if self.in_comment {
                self.comment.push_str(part);
                if ends {
                    self.comment_line();
                }
            } else {
                self.out.push_str(part);
                if ends {
                    self.out.push('\n');
                }
            }
            self.line_start = ends;
            s = rest;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(openmetrics: &str, pieces: usize) -> String {
        let mut text = PrometheusText::with_capacity(0);
        // Written in pieces of every size, as the encoder writes.
        let bytes = openmetrics.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            let mut end = (at + pieces).min(bytes.len());
            while !openmetrics.is_char_boundary(end) {
                end += 1;
            }
            text.write_str(&openmetrics[at..end]).unwrap();
            at = end;
        }
        text.finish()
    }

    #[test]
    fn counters_are_named_with_total_and_unit_and_eof_are_dropped() {
        let openmetrics = "# HELP a_sent Canaries sent.\n# TYPE a_sent counter\na_sent_total{p=\"x # y\"} 1\n\
                           # HELP b_seconds A gauge.\n# TYPE b_seconds gauge\n# UNIT b_seconds seconds\nb_seconds 2.5\n\
                           # HELP c_sent_count Not a counter.\n# TYPE c_sent_count gauge\nc_sent_count 3\n# EOF\n";
        let expected = "# HELP a_sent_total Canaries sent.\n# TYPE a_sent_total counter\na_sent_total{p=\"x # y\"} 1\n\
                        # HELP b_seconds A gauge.\n# TYPE b_seconds gauge\nb_seconds 2.5\n\
                        # HELP c_sent_count Not a counter.\n# TYPE c_sent_count gauge\nc_sent_count 3\n";
        for pieces in [1, 2, 3, 7, 64, 10_000] {
            assert_eq!(convert(openmetrics, pieces), expected, "written {pieces} bytes at a time");
        }
    }

    #[test]
    fn a_help_with_no_type_stays_above_its_samples() {
        let openmetrics = "# HELP d Untyped.\nd 1\n# HELP e Last.\n";
        assert_eq!(convert(openmetrics, 3), "# HELP d Untyped.\nd 1\n# HELP e Last.\n");
    }

    #[test]
    fn a_whole_exposition_converts_as_one_written_a_piece_at_a_time() {
        let cases = [
            "# HELP a_sent Canaries sent.\n# TYPE a_sent counter\na_sent_total{p=\"x # y\"} 1\n#x{q=\"#\"} 2\n# EOF\n",
            "# HELP d Untyped.\nd 1\n# HELP e Last.\n",
            "a 1\nb{l=\"#\"} 2",
            "#",
            "",
            "# TYPE c counter\n# UNIT c seconds\nc_total 1\n# HELP c Late.\n",
        ];
        for openmetrics in cases {
            assert_eq!(from_openmetrics(openmetrics), convert(openmetrics, 1), "{openmetrics:?}");
        }
    }
}
