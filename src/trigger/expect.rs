//! What an application's email must look like to count as delivered: its
//! sender, its subject, a link in its body, and (with `follow_link`) that
//! the link answers 2xx, so that a reset link is known to work end to end.
//! Each failed expectation is its own outcome (`Outcome::Mismatched`).

use super::addresses::{Policy, Range};
use super::link::Follower;
use crate::outcome::Expectation;
use mail_parser::MessageParser;
use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use std::time::Duration;

/// How much of a matched email is read for its link.
pub const BODY_LIMIT: usize = 256 * 1024;
/// Patterns compile to at most this much: a config cannot make the watcher slow.
const PATTERN_LIMIT: usize = 1 << 20;

/// `trigger.expect`: regular expressions (the `regex` crate's syntax) that
/// must find a match.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectConfig {
    /// Against the sender's address, e.g. `^no-reply@shop\.example\.com$`.
    #[serde(default)]
    pub from: Option<String>,
    /// Against the decoded subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// A link in the body (text and HTML parts), e.g. `https://shop\.example\.com/reset/\S+`.
    #[serde(default)]
    pub link: Option<String>,
    /// GET the link found (no cookies kept, a few redirects on its own
    /// origin, body not read) and expect a 2xx (crate::trigger::link).
    #[serde(default)]
    pub follow_link: bool,
    /// Address ranges (CIDR) the link may reach although they are loopback,
    /// private, link-local or otherwise internal, e.g. `10.20.0.0/16` for
    /// an application on the internal network. None by default.
    #[serde(default)]
    pub allow_addresses: Vec<String>,
}

fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern).size_limit(PATTERN_LIMIT).build()
}

impl ExpectConfig {
    /// Every problem, as (key below `trigger`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (key, pattern) in
            [("expect.from", &self.from), ("expect.subject", &self.subject), ("expect.link", &self.link)]
        {
            if let Some(Err(e)) = pattern.as_deref().map(compile) {
                let last = e.to_string().lines().last().unwrap_or_default().trim().to_string();
                let first = last.trim_start_matches("error: ");
                out.push((key.to_string(), format!("not a regular expression: {first}")));
            }
        }
        if self.follow_link && self.link.is_none() {
            out.push(("expect.follow_link".into(), "needs expect.link: the pattern that finds the link".to_string()));
        }
        if !self.follow_link && !self.allow_addresses.is_empty() {
            out.push(("expect.allow_addresses".into(), "applies only with follow_link: true".to_string()));
        }
        for (i, range) in self.allow_addresses.iter().enumerate() {
            if let Err(e) = Range::parse(range) {
                out.push((
                    format!("expect.allow_addresses[{i}]"),
                    format!("not an address range (CIDR such as 10.0.0.0/8 or fd00::/8): {e}"),
                ));
            }
        }
        out
    }

    /// The expectations that can fail, each a series of `canaries_mismatched_total`.
    pub fn expectations(&self) -> Vec<Expectation> {
        let mut out = Vec::new();
        if self.from.is_some() {
            out.push(Expectation::From);
        }
        if self.subject.is_some() {
            out.push(Expectation::Subject);
        }
        if self.link.is_some() {
            out.push(Expectation::Link);
        }
        if self.follow_link {
            out.push(Expectation::LinkDead);
        }
        out
    }
}

/// A route's expectations, compiled.
#[derive(Debug)]
pub struct Expect {
    from: Option<Regex>,
    subject: Option<Regex>,
    link: Option<Regex>,
    follow: Option<Follower>,
    /// Held while a link of this route is followed: one at a time, as the
    /// trigger itself fires (a route's links never pile up on the application).
    following: tokio::sync::Mutex<()>,
}

impl Expect {
    /// Compiles `config` (validated already); None when it expects nothing.
    pub fn new(
        config: &ExpectConfig,
        ca_file: Option<&std::path::Path>,
        timeout: Duration,
    ) -> Result<Option<Expect>, String> {
        if config.expectations().is_empty() {
            return Ok(None);
        }
        let pattern = |p: &Option<String>| p.as_deref().map(compile).transpose().map_err(|e| e.to_string());
        let follow = if config.follow_link {
            Some(Follower::new(Policy::allowing(&config.allow_addresses)?, ca_file, timeout)?)
        } else {
            None
        };
        Ok(Some(Expect {
            from: pattern(&config.from)?,
            subject: pattern(&config.subject)?,
            link: pattern(&config.link)?,
            follow,
            following: tokio::sync::Mutex::new(()),
        }))
    }

    /// Whether the body must be read (for the link).
    pub fn needs_body(&self) -> bool {
        self.link.is_some()
    }

    /// The first failed expectation on the headers, if any.
    pub fn check_headers(&self, headers: &[u8]) -> Option<Expectation> {
        let message = MessageParser::new().parse_headers(headers);
        let from = message
            .as_ref()
            .and_then(|m| m.from())
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or_default();
        if self.from.as_ref().is_some_and(|r| !r.is_match(from)) {
            return Some(Expectation::From);
        }
        let subject = message.as_ref().and_then(|m| m.subject()).unwrap_or_default();
        if self.subject.as_ref().is_some_and(|r| !r.is_match(subject)) {
            return Some(Expectation::Subject);
        }
        None
    }

    /// Whether the link found must be followed (`follow_link`).
    pub fn follows(&self) -> bool {
        self.follow.is_some()
    }

    /// The link the body holds, or [`Expectation::Link`] if there is none.
    pub fn check_body(&self, raw: &[u8]) -> Result<Option<String>, Expectation> {
        let Some(pattern) = &self.link else { return Ok(None) };
        find_link(pattern, raw).ok_or(Expectation::Link).map(Some)
    }

    /// With `follow_link`, GETs `link` (one at a time per route, each
    /// within the trigger's timeout, as crate::trigger::link allows):
    /// [`Expectation::LinkDead`] unless it answers 2xx.
    pub async fn follow_link(&self, link: &str) -> Result<(), Expectation> {
        let Some(follower) = &self.follow else { return Ok(()) };
        let _one_at_a_time = self.following.lock().await;
        follower.follow(link).await.map_err(|dead| {
            // The link itself is not logged: it holds the application's secret token.
            tracing::info!(why = %dead, "the link in an application's email does not work");
            Expectation::LinkDead
        })
    }
}

/// The first match of `pattern` in the message's text and HTML parts
/// (decoded), with HTML's `&amp;` undone.
fn find_link(pattern: &Regex, raw: &[u8]) -> Option<String> {
    let message = MessageParser::default().parse(raw)?;
    let parts = (0..).map_while(|i| message.body_text(i)).chain((0..).map_while(|i| message.body_html(i)));
    parts.into_iter().find_map(|part| pattern.find(&part).map(|m| m.as_str().replace("&amp;", "&")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(yaml: &str) -> Expect {
        let config: ExpectConfig = serde_saphyr::from_str(yaml).unwrap();
        Expect::new(&config, None, Duration::from_secs(5)).unwrap().unwrap()
    }

    const MAIL: &[u8] = b"From: Shop <no-reply@shop.test>\r\nSubject: =?utf-8?q?Reset_your_password?=\r\n\
        To: a+mc1@b.test\r\nContent-Type: text/html\r\n\r\n<a href=\"https://shop.test/reset?t=1&amp;u=2\">reset</a>\r\n";

    #[test]
    fn headers_are_checked_in_order() {
        let e = expect("{ from: '^no-reply@shop\\.test$', subject: '^Reset your password$' }");
        assert_eq!(e.check_headers(MAIL), None);
        let e = expect("{ from: '^billing@', subject: 'nothing' }");
        assert_eq!(e.check_headers(MAIL), Some(Expectation::From));
        let e = expect("{ subject: 'Welcome' }");
        assert_eq!(e.check_headers(MAIL), Some(Expectation::Subject));
    }

    #[test]
    fn links_are_found_in_html_and_unescaped() {
        let e = expect("{ link: 'https://shop\\.test/reset\\?[^\"]+' }");
        assert_eq!(e.check_body(MAIL), Ok(Some("https://shop.test/reset?t=1&u=2".into())));
        let e = expect("{ link: 'https://other\\.test/\\S+' }");
        assert_eq!(e.check_body(MAIL), Err(Expectation::Link));
    }

    #[test]
    fn nothing_expected_is_none() {
        assert!(Expect::new(&ExpectConfig::default(), None, Duration::from_secs(1)).unwrap().is_none());
    }
}
