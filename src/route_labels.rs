//! A route's names as every part of mailcanary holds them, and as the
//! metrics label each of its series: [`RouteLabels`] (`probe`, `provider`,
//! `inbox`) and the shared [`Name`] each is.

/// `probe`, `provider`, `inbox`: one route (also the metrics' label set).
/// Made once, read only, and one pointer wide: a route's 32 series hold
/// their labels in the maps of their families, which a scrape reads whole.
#[derive(Clone)]
pub struct RouteLabels(std::sync::Arc<Names>);

struct Names {
    probe: Name,
    provider: Name,
    inbox: Name,
    /// `probe="…",provider="…",inbox`, escaped: every series of the route
    /// writes its labels from it, a third of the work of a scrape otherwise.
    encoded: Box<str>,
}

impl RouteLabels {
    pub fn new(probe: impl Into<Name>, provider: impl Into<Name>, inbox: impl Into<Name>) -> Self {
        let (probe, provider, inbox) = (probe.into(), provider.into(), inbox.into());
        let encoded = format!("probe=\"{}\",provider=\"{}\",inbox", escape(&probe), escape(&provider)).into();
        RouteLabels(std::sync::Arc::new(Names { probe, provider, inbox, encoded }))
    }

    pub fn probe(&self) -> &Name {
        &self.0.probe
    }

    pub fn provider(&self) -> &Name {
        &self.0.provider
    }

    pub fn inbox(&self) -> &Name {
        &self.0.inbox
    }

    fn names(&self) -> (&Name, &Name, &Name) {
        (&self.0.probe, &self.0.provider, &self.0.inbox)
    }
}

/// A label value as the exposition formats write it.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").into()
}

/// No route: empty names.
impl Default for RouteLabels {
    fn default() -> Self {
        RouteLabels::new("", "", "")
    }
}

impl std::fmt::Debug for RouteLabels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteLabels")
            .field("probe", self.probe())
            .field("provider", self.provider())
            .field("inbox", self.inbox())
            .finish()
    }
}

/// The same route: the same three names (most often the same labels).
impl PartialEq for RouteLabels {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0) || self.names() == other.names()
    }
}

impl Eq for RouteLabels {}

impl std::hash::Hash for RouteLabels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.names().hash(state);
    }
}

impl prometheus_client::encoding::EncodeLabelSet for RouteLabels {
    fn encode(&self, encoder: &mut prometheus_client::encoding::LabelSetEncoder) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeLabelValue;
        use std::fmt::Write;
        // The first two labels and the third's key in one piece: the text
        // encoders (Prometheus and OpenMetrics, the only ones this crate
        // enables) write a key as given. A protobuf encoder would take the
        // piece for one label's name; enabling one means encoding the three
        // labels one by one again (the tests below would fail).
        let mut label = encoder.encode_label();
        let mut key = label.encode_label_key()?;
        key.write_str(&self.0.encoded)?;
        let mut value = key.encode_label_value()?;
        self.0.inbox.encode(&mut value)?;
        value.finish()
    }
}

/// A name from the config (a probe's, a provider's, an inbox's): one copy,
/// shared by the route's series, its status and the canaries it sends. At
/// 1,000 routes the series alone held some 60,000 copies before.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct Name(std::sync::Arc<str>);

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Name(s.into())
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Name(s.into())
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Self {
        Name(s.as_str().into())
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl prometheus_client::encoding::EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut prometheus_client::encoding::LabelValueEncoder) -> std::fmt::Result {
        use std::fmt::Write;
        encoder.write_str(&self.0)
    }
}

impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::{counter::Counter, family::Family};
    use prometheus_client::registry::Registry;

    fn encode(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn a_route_is_one_pointer_wide_wherever_its_series_are_kept() {
        assert_eq!(std::mem::size_of::<RouteLabels>(), std::mem::size_of::<usize>());
        let (a, b) = (RouteLabels::new("p", "s", "i"), RouteLabels::new("p", "s", "i"));
        assert_eq!(a, b, "made apart, the same route");
        assert_ne!(a, RouteLabels::new("p", "s", "j"));
    }

    /// What the label set writes is what prometheus-client's own encoding
    /// of three string labels writes, escapes included.
    #[test]
    fn a_route_writes_its_labels_as_three_escaped_labels() {
        #[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
        struct Plain {
            probe: String,
            provider: String,
            inbox: String,
        }
        let names = [("p", "s", "i"), ("a \"quoted\" one", "back\\slash", "new\nline"), ("é", "", "x,y=\"z\"")];
        for (probe, provider, inbox) in names {
            let ours = Family::<RouteLabels, Counter>::default();
            ours.get_or_create(&RouteLabels::new(probe, provider, inbox)).inc();
            let theirs = Family::<Plain, Counter>::default();
            theirs.get_or_create(&Plain { probe: probe.into(), provider: provider.into(), inbox: inbox.into() }).inc();
            let (mut a, mut b) = (Registry::default(), Registry::default());
            a.register("sent", "Sent", ours);
            b.register("sent", "Sent", theirs);
            assert_eq!(encode(&a), encode(&b), "{probe:?} {provider:?} {inbox:?}");
        }
    }

    /// Flattened into a larger label set, before a label of its own.
    #[test]
    fn a_route_flattened_before_another_label_writes_the_same() {
        use prometheus_client::encoding::EncodeLabelSet;
        #[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
        struct Ours {
            #[prometheus(flatten)]
            route: RouteLabels,
            reason: &'static str,
        }
        #[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
        struct Theirs {
            probe: String,
            provider: String,
            inbox: String,
            reason: &'static str,
        }
        let ours = Family::<Ours, Counter>::default();
        ours.get_or_create(&Ours { route: RouteLabels::new("p\"", "s", "i"), reason: "tls" }).inc();
        let theirs = Family::<Theirs, Counter>::default();
        theirs
            .get_or_create(&Theirs { probe: "p\"".into(), provider: "s".into(), inbox: "i".into(), reason: "tls" })
            .inc();
        let (mut a, mut b) = (Registry::default(), Registry::default());
        a.register("sent", "Sent", ours);
        b.register("sent", "Sent", theirs);
        let text = encode(&a);
        assert_eq!(text, encode(&b));
        assert!(text.contains("sent_total{probe=\"p\\\"\",provider=\"s\",inbox=\"i\",reason=\"tls\"} 1\n"), "{text}");
    }

    #[test]
    fn a_route_is_its_three_names() {
        let (a, b) = (RouteLabels::new("p", "s", "i"), RouteLabels::new(String::from("p"), "s", "i"));
        assert_eq!(a, b);
        let state = std::collections::hash_map::RandomState::new();
        assert_eq!(std::hash::BuildHasher::hash_one(&state, &a), std::hash::BuildHasher::hash_one(&state, &b));
        assert_ne!(a, RouteLabels::new("p", "s", "j"));
    }
}
