//! The Prometheus text format 0.0.4, for scrapers and tools (`promtool check
//! metrics`) that do not ask for OpenMetrics: written while the registry is
//! encoded, so a scrape of 32,000 series fills one buffer, not two.
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
}
