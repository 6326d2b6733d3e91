//! `/badge/{name}.svg`: shields.io-style badges, a provider's state or a
//! route's last outcome, for READMEs and internal wikis.

use super::chart::outcome_colour;
use super::html::{escape, state_colour};
use super::view::Snapshot;
use crate::outcome::OutcomeKind;

/// The badge of the provider or (where inbox names may be shown) the route
/// called `name`; none for any other name.
pub fn for_name(snap: &Snapshot, name: &str) -> Option<String> {
    if let Some(p) = snap.providers.iter().find(|p| p.name == name) {
        return Some(render(name, p.state.as_str(), state_colour(p.state.as_str())));
    }
    // Route names contain inbox names: hidden routes have no badge (the
    // answer would confirm the name).
    let r = snap.routes.iter().find(|r| r.name == name)?;
    let outcome = r.last_outcome.map_or("unknown", OutcomeKind::as_str);
    Some(render(name, outcome, outcome_colour(outcome)))
}

/// Verdana 11 px is about 7 px a character; enough room for either side.
fn text_width(s: &str) -> u32 {
    s.chars().count() as u32 * 7 + 10
}

pub fn render(label: &str, value: &str, colour: &str) -> String {
    let (lw, vw) = (text_width(label), text_width(value));
    let w = lw + vw;
    let (label, value) = (escape(label), escape(value));
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"20\" role=\"img\" aria-label=\"{label}: {value}\">\
<title>{label}: {value}</title>\
<linearGradient id=\"s\" x2=\"0\" y2=\"100%\"><stop offset=\"0\" stop-color=\"#bbb\" stop-opacity=\".1\"/><stop offset=\"1\" stop-opacity=\".1\"/></linearGradient>\
<clipPath id=\"r\"><rect width=\"{w}\" height=\"20\" rx=\"3\" fill=\"#fff\"/></clipPath>\
<g clip-path=\"url(#r)\"><rect width=\"{lw}\" height=\"20\" fill=\"#555\"/><rect x=\"{lw}\" width=\"{vw}\" height=\"20\" fill=\"{colour}\"/><rect width=\"{w}\" height=\"20\" fill=\"url(#s)\"/></g>\
<g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,Geneva,DejaVu Sans,sans-serif\" font-size=\"11\">\
<text x=\"{}\" y=\"14\">{label}</text><text x=\"{}\" y=\"14\">{value}</text></g></svg>\n",
        lw / 2,
        lw + vw / 2
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_badge_is_labelled_and_escaped() {
        let svg = super::render("a<b", "down", "#cf222e");
        assert!(svg.contains("role=\"img\" aria-label=\"a&lt;b: down\""), "{svg}");
        assert!(svg.contains("<title>a&lt;b: down</title>"), "{svg}");
        assert!(!svg.contains("a<b"), "{svg}");
    }
}
