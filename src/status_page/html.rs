//! The one escaping helper every renderer uses, and the page shell (inline
//! CSS, no script, no external resource).

use std::fmt::Write;

/// `s` made safe for HTML and XML text and for quoted attribute values:
/// names come from config, diagnostics from remote servers.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if c.is_control() && !matches!(c, '\n' | '\t') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Colours with at least 4.5:1 contrast against white text or the page's
/// background, one per state or outcome.
pub const GOOD: &str = "#1a7f37";
pub const WARN: &str = "#9a6700";
pub const BAD: &str = "#cf222e";
pub const NONE: &str = "#6e7781";

/// The colour of a provider state.
pub fn state_colour(state: &str) -> &'static str {
    match state {
        "healthy" => GOOD,
        "degraded" => WARN,
        "down" => BAD,
        _ => NONE,
    }
}

const CSS: &str = "
:root{color-scheme:light;font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#1f2328;background:#fff}
body{margin:0 auto;max-width:64rem;padding:1rem;line-height:1.45}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.25rem;margin:1.6rem 0 .6rem;border-bottom:1px solid #d0d7de}
h3{font-size:1.05rem;margin:.8rem 0 .3rem}
.muted{color:#57606a}.small{font-size:.85rem}
.banner{padding:.8rem 1rem;border-radius:6px;color:#fff;font-weight:600;margin:1rem 0}
.state{display:inline-block;padding:.05rem .5rem;border-radius:1rem;color:#fff;font-size:.85rem;font-weight:600}
.provider{border:1px solid #d0d7de;border-radius:6px;padding:.6rem .8rem;margin:.6rem 0}
.provider header{display:flex;flex-wrap:wrap;gap:.5rem;align-items:baseline;justify-content:space-between}
.bars{display:block;width:100%;height:34px;margin-top:.4rem}
.legend{display:flex;justify-content:space-between}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#f6f8fa}
.scroll{overflow-x:auto}
.incident{border-left:4px solid #cf222e;padding:.2rem .8rem;margin:.8rem 0}
.incident.closed{border-color:#6e7781}
figure{margin:1rem 0}figcaption{font-weight:600;margin-bottom:.3rem}
svg text{font-family:inherit}
@media (max-width:40rem){body{padding:.6rem}h1{font-size:1.3rem}.hide-narrow{display:none}}
";

/// Opens a document: `refresh` seconds of self-reload, when given.
pub fn head(out: &mut String, title: &str, refresh: Option<u64>) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    );
    if let Some(seconds) = refresh {
        let _ = writeln!(out, "<meta http-equiv=\"refresh\" content=\"{seconds}\">");
    }
    let _ = write!(out, "<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n", escape(title));
}

pub fn foot(out: &mut String) {
    out.push_str("</body>\n</html>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_come_out_as_text() {
        let hostile = "<script>alert('x')</script>\"onload=\"&amp;\u{0}";
        let e = escape(hostile);
        assert_eq!(e, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;onload=&quot;&amp;amp;\u{FFFD}");
        for bad in ['<', '>', '"', '\'', '\u{0}'] {
            assert!(!e.contains(bad), "{e}");
        }
    }
}
