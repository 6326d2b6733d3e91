//! SNS signing certificates: fetched over HTTPS only from a trusted host
//! (`sns.<region>.amazonaws.com` of the topic's region, or a host the
//! config names), with no redirect followed and no Referer sent (the one
//! client builder, crate::http), read within a cap and a timeout, and
//! cached by URL. Whoever can reach the webhook can name a certificate URL
//! in an unsigned POST (the signature is checked with the certificate), so
//! a failed fetch is remembered for a minute, at most two fetches run at
//! once (deliveries wait for a slot, then find what the one before them
//! fetched) and at most 30 a minute start: a flood of such POSTs is
//! refused (503, which SNS retries), never turned into a flood of fetches. Their
//! public key checks SignatureVersion 1 (SHA1withRSA) and 2 (SHA256withRSA).
//!
//! Trust in the certificate comes from where it was fetched: a host of
//! SNS, over TLS verified against the system's roots (and the configured
//! CA), as the AWS SDKs' message validators do.

use super::refusal::{PerMinute, Refusal};
use reqwest::Url;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm, alg_id};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest certificate file read.
const MAX_PEM: usize = 64 * 1024;
/// Certificates kept; SNS rotates its certificate rarely.
const CACHE: usize = 32;
/// Failed URLs remembered, and for how long.
const FAILED: usize = 256;
const FAILED_FOR: Duration = Duration::from_secs(60);
/// Fetches at once, and begun per minute, at most.
const AT_ONCE: usize = 2;
/// How long a fetch may take (and a delivery wait for a slot to fetch in).
const TIMEOUT: Duration = Duration::from_secs(10);
const PER_MINUTE: u32 = 30;

/// Fetches and caches signing certificates, from trusted hosts only.
pub struct Certificates {
    client: reqwest::Client,
    /// Hosts trusted besides the SNS host of the topic's region.
    extra_hosts: Vec<String>,
    cache: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    /// URLs whose fetch failed, and when.
    failed: Mutex<HashMap<String, Instant>>,
    running: tokio::sync::Semaphore,
    begun: PerMinute,
    /// Fetches begun, ever.
    fetches: AtomicU64,
}

impl Certificates {
    pub fn new(extra_hosts: Vec<String>, ca_file: Option<&Path>) -> Result<Certificates, String> {
        let client = crate::http::builder(ca_file, TIMEOUT, crate::http::Redirects::None)?
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Certificates {
            client,
            extra_hosts,
            cache: Mutex::default(),
            failed: Mutex::default(),
            running: tokio::sync::Semaphore::new(AT_ONCE),
            begun: PerMinute::new(PER_MINUTE),
            fetches: AtomicU64::new(0),
        })
    }

    /// Fetches begun so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// `url` if it is HTTPS on a host trusted for a topic of `region`:
    /// what certificates and subscription confirmations are fetched from.
    pub fn trusted(&self, url: &str, region: &str) -> Result<Url, Refusal> {
        let parsed = Url::parse(url).map_err(|_| Refusal::forged("the URL is not a URL"))?;
        let host = parsed.host_str().unwrap_or("").to_ascii_lowercase();
        let with_port = match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let sns = parsed.port().is_none()
            && (host == format!("sns.{region}.amazonaws.com") || host == format!("sns.{region}.amazonaws.com.cn"));
        let extra = self.extra_hosts.iter().any(|h| h.eq_ignore_ascii_case(&with_port));
        if parsed.scheme() != "https" || !(sns || extra) || parsed.username() != "" || parsed.password().is_some() {
            return Err(Refusal::forged(format!("{with_port} is not an SNS host of {region} nor a configured one")));
        }
        Ok(parsed)
    }

    /// The DER certificate at `url` (already [`trusted`](Self::trusted)),
    /// from the cache or fetched now.
    pub async fn get(&self, url: &Url) -> Result<Arc<Vec<u8>>, Refusal> {
        if !url.path().ends_with(".pem") {
            return Err(Refusal::forged("the signing certificate URL does not name a .pem file"));
        }
        if let Some(der) = self.cached(url)? {
            return Ok(der);
        }
        // Wait for a slot, then look again: deliveries that came together
        // on a cold cache find the certificate the first of them fetched.
        let _slot = self.slot().await?;
        if let Some(der) = self.cached(url)? {
            return Ok(der);
        }
        self.begin()?;
        let fetched = self.fetch_now(url).await.and_then(|pem| {
            let der = CertificateDer::pem_slice_iter(&pem)
                .next()
                .and_then(Result::ok)
                .ok_or_else(|| Refusal::certificate("the signing certificate is not a PEM certificate"))?;
            webpki::EndEntityCert::try_from(&der)
                .map_err(|e| Refusal::certificate(format!("the signing certificate: {e}")))?;
            Ok(Arc::new(der.to_vec()))
        });
        match fetched {
            Ok(der) => {
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= CACHE {
                    cache.clear();
                }
                cache.insert(url.to_string(), der.clone());
                Ok(der)
            }
            Err(e) => {
                let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
                failed.retain(|_, at| at.elapsed() < FAILED_FOR);
                if failed.len() < FAILED {
                    failed.insert(url.to_string(), Instant::now());
                }
                Err(e)
            }
        }
    }

    /// The certificate of `url` if it is cached; refused if its fetch
    /// failed less than [`FAILED_FOR`] ago.
    fn cached(&self, url: &Url) -> Result<Option<Arc<Vec<u8>>>, Refusal> {
        if let Some(der) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(url.as_str()) {
            return Ok(Some(der.clone()));
        }
        let failed_at = self.failed.lock().unwrap_or_else(|p| p.into_inner()).get(url.as_str()).copied();
        if failed_at.is_some_and(|at| at.elapsed() < FAILED_FOR) {
            return Err(Refusal::certificate("fetching the signing certificate failed less than a minute ago"));
        }
        Ok(None)
    }

    /// One of the [`AT_ONCE`] slots to fetch in, waited for as long as a
    /// fetch may take.
    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Refusal> {
        let busy = || Refusal::certificate("other signing certificates are being fetched; try again");
        match tokio::time::timeout(TIMEOUT, self.running.acquire()).await {
            Ok(Ok(slot)) => Ok(slot),
            _ => Err(busy()),
        }
    }

    /// Refused when [`PER_MINUTE`] fetches began in the last minute.
    fn begin(&self) -> Result<(), Refusal> {
        if !self.begun.admit(Instant::now()).0 {
            return Err(Refusal::certificate("too many signing certificate fetches this minute; try again"));
        }
        Ok(())
    }

    /// GETs `url` (trusted: a subscription's confirmation) and reads at
    /// most [`MAX_PEM`] bytes, in a slot and within the rate.
    pub async fn fetch(&self, url: &Url) -> Result<Vec<u8>, Refusal> {
        let _slot = self.slot().await?;
        self.begin()?;
        self.fetch_now(url).await
    }

    async fn fetch_now(&self, url: &Url) -> Result<Vec<u8>, Refusal> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let what = format!("{}{}", url.host_str().unwrap_or(""), url.path());
        let mut response = self.client.get(url.clone()).send().await.map_err(|e| {
            Refusal::certificate(format!("GET {what}: {}", crate::quote::error_chain(&e.without_url())))
        })?;
        if !response.status().is_success() {
            return Err(Refusal::certificate(format!("GET {what}: HTTP {}", response.status().as_u16())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| Refusal::certificate(format!("GET {what}: {e}")))? {
            if body.len() + chunk.len() > MAX_PEM {
                return Err(Refusal::certificate(format!("GET {what}: more than {MAX_PEM} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Verifies `signature` over `message` with the certificate's key, by
/// SNS's SignatureVersion.
pub fn verify(der: &[u8], version: &str, message: &[u8], signature: &[u8]) -> Result<(), Refusal> {
    let alg: &dyn SignatureVerificationAlgorithm = match version {
        "1" => &RSA_PKCS1_SHA1,
        "2" => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        other => return Err(Refusal::malformed(format!("SignatureVersion {other:?} is neither 1 nor 2"))),
    };
    let der = CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| Refusal::certificate(format!("the signing certificate: {e}")))?;
    cert.verify_signature(alg, message, signature)
        .map_err(|_| Refusal::forged("the signature does not verify with the signing certificate"))
}

/// SHA1withRSA (PKCS #1 v1.5), which SNS's SignatureVersion 1 still uses:
/// webpki leaves SHA-1 out, ring keeps it for such legacy use.
#[derive(Debug)]
struct RsaPkcs1Sha1;
static RSA_PKCS1_SHA1: RsaPkcs1Sha1 = RsaPkcs1Sha1;

impl SignatureVerificationAlgorithm for RsaPkcs1Sha1 {
    fn verify_signature(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature> {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            public_key,
        )
        .verify(message, signature)
        .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        // sha1WithRSAEncryption, NULL parameters (RFC 3279); webpki only
        // compares it with a certificate's own signature algorithm.
        AlgorithmIdentifier::from_slice(&[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback port that accepts connections and counts them, holding
    /// each open without a word (no TLS handshake ever completes).
    async fn silent_host() -> (String, Arc<AtomicU64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicU64::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                held.push(conn);
            }
        });
        (host, accepted)
    }

    #[tokio::test]
    async fn a_failed_fetch_is_not_tried_again_for_a_minute() {
        // A port nobody listens on: the fetch fails at once.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let c = Certificates::new(vec![closed.clone()], None).unwrap();
        let url = c.trusted(&format!("https://{closed}/cert.pem"), "us-east-1").unwrap();
        for _ in 0..5 {
            assert!(c.get(&url).await.is_err());
        }
        assert_eq!(c.fetches(), 1, "one fetch for five deliveries naming it");
    }

    #[tokio::test]
    async fn at_most_two_fetches_run_at_once() {
        let (host, accepted) = silent_host().await;
        let c = Arc::new(Certificates::new(vec![host.clone()], None).unwrap());
        let url = |n: u32| c.trusted(&format!("https://{host}/{n}.pem"), "us-east-1").unwrap();
        let running: Vec<_> = (0..2)
            .map(|n| {
                let (c, u) = (c.clone(), url(n));
                tokio::spawn(async move { c.get(&u).await })
            })
            .collect();
        let both = async {
            while accepted.load(Ordering::SeqCst) < 2 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), both).await.expect("two fetches began");
        // A third waits for a slot: no fetch begins until one of the two ends.
        let third = {
            let (c, u) = (c.clone(), url(3));
            tokio::spawn(async move { c.get(&u).await })
        };
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!((c.fetches(), accepted.load(Ordering::SeqCst)), (2, 2), "the third waits");
        running[0].abort();
        let three = async {
            while accepted.load(Ordering::SeqCst) < 3 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), three).await.expect("the third fetched once a slot was free");
        assert_eq!(c.fetches(), 3);
        third.abort();
        for task in running {
            task.abort();
        }
    }

    #[test]
    fn only_https_on_the_regions_sns_host_or_a_configured_one_is_trusted() {
        let c = Certificates::new(vec!["127.0.0.1:8443".into()], None).unwrap();
        let ok = |u: &str| c.trusted(u, "us-east-1").is_ok();
        assert!(ok("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem"));
        assert!(ok("https://SNS.us-east-1.amazonaws.com/x.pem"));
        assert!(ok("https://127.0.0.1:8443/cert.pem"));
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.eu-west-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://user@sns.us-east-1.amazonaws.com/x.pem",
            "https://127.0.0.1:8444/cert.pem",
            "https://127.0.0.1/cert.pem",
            "not a url",
        ] {
            assert!(!ok(bad), "{bad}");
        }
    }
}
