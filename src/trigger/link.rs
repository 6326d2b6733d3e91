//! Following the link found in an application's email (`follow_link`): a
//! GET that proves the reset link works, made so that whoever wrote the
//! email cannot aim it. Every hop stays on the link's own origin (scheme,
//! host and port: a redirect elsewhere, https to http included, is not
//! taken), no `Referer` is sent, the body is never read, and the address
//! actually connected to is checked against [`addresses::Policy`]: the
//! resolver hands the connector only permitted addresses (so a name that
//! resolves to a public address once and to 127.0.0.1 the next time gets
//! nowhere), and an address written in the URL is checked before sending.
//! No proxy is used: the connection must go to the address checked.

use super::addresses::Policy;
use crate::http::Redirects;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Redirects followed from the link (a reset link often redirects once or
/// twice), each on the link's own origin.
const MAX_REDIRECTS: usize = 5;

/// Why a link did not prove to work; each is the `link_dead` expectation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dead {
    #[error("not an http:// or https:// URL")]
    NotHttp,
    #[error("its address is {0} and not in expect.allow_addresses: not followed")]
    Refused(&'static str),
    #[error("redirected (HTTP {0}) to another origin, or too many times: not followed")]
    Redirected(u16),
    #[error("answered HTTP {0}")]
    Status(u16),
    /// No answer: the error chain, without the URL (it holds the link's token).
    #[error("no answer: {0}")]
    NoAnswer(String),
}

/// A route's link follower.
#[derive(Debug)]
pub struct Follower {
    client: reqwest::Client,
    policy: Arc<Policy>,
}

impl Follower {
    pub fn new(policy: Policy, ca_file: Option<&std::path::Path>, timeout: Duration) -> Result<Follower, String> {
        let policy = Arc::new(policy);
        let client = crate::http::builder(ca_file, timeout, Redirects::SameOrigin(MAX_REDIRECTS))?
            .dns_resolver(Checked(policy.clone()))
            .no_proxy()
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Follower { client, policy })
    }

    /// GETs `link`; Ok on a 2xx answer. The answer's body is not read.
    pub async fn follow(&self, link: &str) -> Result<(), Dead> {
        let url = reqwest::Url::parse(link).map_err(|_| Dead::NotHttp)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Dead::NotHttp);
        }
        if let Some(ip) = literal(&url) {
            self.policy.check(ip).map_err(Dead::Refused)?;
        }
        let response = self.client.get(url).send().await.map_err(|e| match refusal(&e) {
            Some(kind) => Dead::Refused(kind),
            None => Dead::NoAnswer(crate::quote::error_chain(&e.without_url())),
        })?;
        let status = response.status();
        drop(response);
        match status.as_u16() {
            200..=299 => Ok(()),
            300..=399 => Err(Dead::Redirected(status.as_u16())),
            code => Err(Dead::Status(code)),
        }
    }
}

/// The address a URL names directly, if it does (connectors skip the
/// resolver for those).
fn literal(url: &reqwest::Url) -> Option<IpAddr> {
    url.host_str()?.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// The refusal inside a request error, when the resolver refused.
fn refusal(e: &reqwest::Error) -> Option<&'static str> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(RefusedAddresses(kind)) = s.downcast_ref::<RefusedAddresses>() {
            return Some(kind);
        }
        source = s.source();
    }
    None
}

/// Every address a name resolved to is refused; the first one's kind.
#[derive(Debug, thiserror::Error)]
#[error("every address of the link's host is refused ({0})")]
struct RefusedAddresses(&'static str);

/// A resolver that passes on only the addresses the policy permits.
struct Checked(Arc<Policy>);

impl Resolve for Checked {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_refusal = None;
            let permitted: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(kind) => {
                        first_refusal.get_or_insert(kind);
                        false
                    }
                })
                .collect();
            match (permitted.is_empty(), first_refusal) {
                (true, Some(kind)) => Err(Box::new(RefusedAddresses(kind)) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(permitted.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn metadata_and_internal_addresses_are_refused_before_connecting() {
        let policy = Policy::allowing(&["127.0.0.0/8".into()]).unwrap();
        let f = Follower::new(policy, None, Duration::from_secs(1)).unwrap();
        let refused = |kind| Err(Dead::Refused(kind));
        assert_eq!(f.follow("http://169.254.169.254/latest/meta-data/").await, refused("link-local (cloud metadata)"));
        assert_eq!(f.follow("http://[fd00:ec2::254]/").await, refused("private (ULA)"));
        assert_eq!(f.follow("https://10.0.0.1:8443/reset").await, refused("private"));
        assert_eq!(f.follow("http://0.0.0.0:80/").await, refused("unspecified"));
        assert_eq!(f.follow("ftp://127.0.0.1/").await, Err(Dead::NotHttp));
        assert_eq!(f.follow("not a url").await, Err(Dead::NotHttp));
    }
}
