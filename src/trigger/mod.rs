//! Application canaries: instead of sending a canary through a provider,
//! mailcanary asks the application to send its own email (a password reset,
//! an order confirmation) to a fresh canary address, with one HTTP request
//! (`trigger:` on a probe). That proves what a provider canary cannot: the
//! application's mailer configuration, templates, queue workers, API keys and
//! sending domain all work. The email is matched by the tag in its address
//! (`tag`), and checked against the route's expectations (`expect`).
//!
//! A trigger is a sending plug-in like a provider: its name is the
//! `provider` label, and its failures map to the same `reason`s.

mod addresses;
pub mod expect;
mod link;
pub mod tag;

use crate::duration;
use crate::http::{Api, status_reason};
use crate::ledger::LedgerThread;
use crate::outcome::{Accepted, SendError, SendReason};
use crate::secret::Secret;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

pub use expect::{Expect, ExpectConfig};

/// What `{{address}}` stands for in the URL, the headers and the body.
pub const ADDRESS: &str = "{{address}}";

/// `probes[].trigger`: the request that makes the application send its email.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfig {
    /// The `provider` label of the route (and its name in provider health).
    pub name: String,
    /// GET, POST, PUT or PATCH.
    #[serde(default = "default_method")]
    pub method: String,
    /// May hold `{{address}}` (URL-encoded there) and `${VAR}` secrets; never printed.
    pub url: Secret,
    /// Header values may hold `{{address}}` and `${VAR}` secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// The request body; `{{address}}` is URL-encoded when the
    /// Content-Type is `application/x-www-form-urlencoded`.
    #[serde(default)]
    pub body: Option<Secret>,
    /// How the canary address is made from the inbox's address.
    #[serde(default)]
    pub address: AddressConfig,
    /// What the email must look like.
    #[serde(default)]
    pub expect: ExpectConfig,
    /// Limit for the request (and for following the link).
    #[serde(default = "default_timeout", deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    /// An extra trusted CA for the application's TLS.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `trigger.address`: sub-addressing on the inbox's own address
/// (`ops.canary+<tag>@example.com`), or a template for catch-all domains.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressConfig {
    /// Between the inbox address's local part and the tag.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// A whole address holding `{{tag}}`, such as `canary-{{tag}}@catchall.example.com`,
    /// that ends in the route's inbox.
    #[serde(default)]
    pub template: Option<String>,
}

impl Default for AddressConfig {
    fn default() -> Self {
        AddressConfig { separator: default_separator(), template: None }
    }
}

fn default_method() -> String {
    "POST".into()
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_separator() -> String {
    "+".into()
}

impl TriggerConfig {
    /// Every problem with this trigger, as (key below `trigger`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        if !["GET", "POST", "PUT", "PATCH"].contains(&self.method.as_str()) {
            out.push(("method", format!("unknown method {:?}: use GET, POST, PUT or PATCH", self.method)));
        }
        let url = self.url.expose().replace(ADDRESS, "canary%2Btag%40example.com");
        match reqwest::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            // The URL may hold a secret: it is not repeated.
            _ => out.push(("url", "is not an http:// or https:// URL".to_string())),
        }
        for name in self.headers.keys() {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                out.push(("headers", format!("{name:?} is not a header name")));
            }
        }
        if self.timeout.is_zero() {
            out.push(("timeout", "timeout must be more than 0s".to_string()));
        }
        match &self.address.template {
            Some(t) if !t.contains(tag::TAG) => {
                out.push(("address.template", format!("{t:?} must hold {}", tag::TAG)));
            }
            Some(t) if t.replace(tag::TAG, &tag::new()).parse::<lettre::Address>().is_err() => {
                out.push(("address.template", format!("{t:?} does not make an email address (user@domain)")));
            }
            Some(_) => {}
            None if !["+", "-", "_", "."].contains(&self.address.separator.as_str()) => out
                .push(("address.separator", format!("separator {:?} must be one of + - _ .", self.address.separator))),
            None => {}
        }
        let mut out: Vec<(String, String)> = out.into_iter().map(|(key, message)| (key.to_string(), message)).collect();
        out.extend(self.expect.problems());
        out
    }

    /// The canary address for `tag`, from the inbox's `address`.
    pub fn canary_address(&self, address: &str, tag: &str) -> String {
        match &self.address.template {
            Some(t) => t.replace(tag::TAG, tag),
            None => match address.rsplit_once('@') {
                Some((local, domain)) => format!("{local}{}{tag}@{domain}", self.address.separator),
                None => address.to_string(),
            },
        }
    }
}

/// A trigger built from its config: the HTTP client it calls the application with.
pub struct Trigger {
    config: TriggerConfig,
    api: Api,
}

impl Trigger {
    pub fn new(config: &TriggerConfig) -> Result<Trigger, String> {
        let base = config.url.expose().replace(ADDRESS, "x");
        // `trusting` names the endpoint in its errors: not this one, it may hold a secret.
        let api = Api::trusting(&base, config.ca_file.as_deref(), config.timeout)
            .map_err(|_| "url is not an http:// or https:// URL, or its client cannot be made".to_string())?;
        Ok(Trigger { config: config.clone(), api })
    }

    /// The `provider` label.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Asks the application to send its email to `address`. A 2xx is the
    /// application's acceptance; anything else is a send failure with the
    /// `reason` its status maps to.
    pub async fn fire(&self, address: &str) -> Result<Accepted, SendError> {
        let encoded = urlencode(address);
        let url = self.config.url.expose().replace(ADDRESS, &encoded);
        let method = reqwest::Method::from_bytes(self.config.method.as_bytes())
            .map_err(|_| SendError::new(SendReason::Other, "bad method"))?;
        let mut request = self.api.client().request(method, url);
        let mut form = false;
        for (name, value) in &self.config.headers {
            form |= name.eq_ignore_ascii_case("content-type")
                && value.expose().starts_with("application/x-www-form-urlencoded");
            request = request.header(name.as_str(), value.expose().replace(ADDRESS, address));
        }
        if let Some(body) = &self.config.body {
            request = request.body(body.expose().replace(ADDRESS, if form { &encoded } else { address }));
        }
        let reply = self.api.call(request).await?;
        if reply.status.is_success() {
            return Ok(Accepted { provider_id: None });
        }
        // The application's answer is not quoted: it may echo what was sent.
        Err(SendError::new(status_reason(reply.status), crate::http::detail(reply.status, None, None)))
    }
}

/// `address` as a URL query or form value (`+` and `@` escaped).
fn urlencode(address: &str) -> String {
    address
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One route's right to fire its trigger: while it is held, nobody else
/// fires that route, and it is not given out sooner than an interval after
/// the last firing, whatever the jitter or a reload does, nor after a
/// restart (the last firing is then read from the ledger).
pub struct Turn {
    _last: tokio::sync::OwnedMutexGuard<Option<Instant>>,
}

/// Waits for `route`'s next turn to fire, `interval` after its last one;
/// the first time in this process, after the last one `ledger` has.
pub async fn turn(route: &str, interval: Duration, ledger: Option<&LedgerThread>) -> Turn {
    type Turns = Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Instant>>>>>;
    static TURNS: OnceLock<Turns> = OnceLock::new();
    let slot = {
        let mut turns = TURNS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        turns.entry(route.to_string()).or_default().clone()
    };
    let mut last = slot.lock_owned().await;
    if last.is_none()
        && let Some(ledger) = ledger
    {
        let probe = route.to_string();
        if let Ok(Some(last_ms)) = ledger.call(move |l| l.last_created(&probe)).await {
            let ago = chrono::Utc::now().timestamp_millis().saturating_sub(last_ms).max(0);
            *last = Instant::now().checked_sub(Duration::from_millis(ago as u64));
        }
    }
    if let Some(at) = *last {
        tokio::time::sleep_until(at + interval).await;
    }
    *last = Some(Instant::now());
    Turn { _last: last }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> TriggerConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn canary_addresses_by_sub_address_or_template() {
        let c = config("{ name: shop, url: 'https://shop.test/reset' }");
        assert_eq!(c.canary_address("ops.canary@example.com", "mcab"), "ops.canary+mcab@example.com");
        let c = config("{ name: shop, url: 'https://shop.test/r', address: { template: 'c-{{tag}}@any.test' } }");
        assert_eq!(c.canary_address("ops.canary@example.com", "mcab"), "c-mcab@any.test");
    }

    #[test]
    fn problems_name_the_key() {
        let c = config(
            "{ name: shop, method: DELETE, url: 'ftp://x', address: { separator: '#' }, timeout: 0s, \
             expect: { subject: '(', follow_link: true } }",
        );
        let keys: Vec<_> = c.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["method", "url", "timeout", "address.separator", "expect.subject", "expect.follow_link"]);
    }

    #[test]
    fn addresses_are_url_encoded_in_urls() {
        assert_eq!(urlencode("ops.canary+mc1@example.com"), "ops.canary%2Bmc1%40example.com");
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_waits_an_interval_after_the_last() {
        let interval = Duration::from_secs(60);
        let start = Instant::now();
        drop(turn("turn-test", interval, None).await);
        assert_eq!(start.elapsed(), Duration::ZERO);
        drop(turn("turn-test", interval, None).await);
        assert!(start.elapsed() >= interval);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_restart_the_first_turn_waits_for_the_last_one_in_the_ledger() {
        let ledger = LedgerThread::spawn(crate::ledger::Ledger::in_memory().unwrap());
        let route = crate::config::Route {
            name: "turn-restart".into(),
            provider: "shop".into(),
            inbox: "i".into(),
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(60),
            jitter: 0.0,
            trigger: None,
        };
        let key = crate::canary::SigningKey::new(Secret::new("0123456789abcdef"));
        let canary = crate::canary::Canary::new(&route, "", "a@x.test", "i", None, &key, chrono::Utc::now());
        ledger.call(move |l| l.record_sending(&canary, 0)).await.unwrap();
        let start = Instant::now();
        drop(turn("turn-restart", route.interval, Some(&ledger)).await);
        // The wall clock is not paused: allow the test's own run time.
        assert!(start.elapsed() >= route.interval - Duration::from_secs(5), "{:?}", start.elapsed());
        let other = Instant::now();
        drop(turn("turn-never-run", route.interval, Some(&ledger)).await);
        assert_eq!(other.elapsed(), Duration::ZERO);
    }
}
