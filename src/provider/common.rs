//! The keys every provider kind shares: name, sender, bounce inbox, health,
//! failover, the API endpoint override and the timeout; written once (the
//! `provider_config!` macro declares them in each kind's struct), read
//! through one accessor and checked in one place.

use super::ProviderConfig;
use crate::duration;
use crate::valid;
use serde::Deserialize;
use std::time::Duration;

/// Declares a provider kind's config struct: the keys of its own, and
/// around them the keys every kind shares, in the order every kind lists
/// them (serde names the expected keys, and the first missing one, in that
/// order): `name`, the kind's keys, `from`, `bounce_inbox`, `health`,
/// `failover`, the kind's keys that follow `failover`, `endpoint` (for an
/// API: `with endpoint`), `timeout`. Unknown keys are refused, as by a
/// struct written out (serde's `flatten` cannot refuse them, hence a macro
/// and not an embedded struct).
macro_rules! provider_config {
    (
        $(#[$meta:meta])*
        $kind:ident {
            $( $(#[$own_meta:meta])* $own:ident: $own_ty:ty, )*
        }
        $( after failover {
            $( $(#[$later_meta:meta])* $later:ident: $later_ty:ty, )*
        } )?
        $( with $endpoint:ident )?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $kind {
            /// The `provider` label.
            pub name: String,
            $( $(#[$own_meta])* pub $own: $own_ty, )*
            /// The header sender (and the envelope sender unless a bounce inbox is set).
            pub from: String,
            /// The inbox (by name) where this provider's bounces arrive: DSNs there
            /// resolve canaries as `bounced` at once instead of at their timeout.
            #[serde(default)]
            pub bounce_inbox: Option<String>,
            /// Health thresholds over `global.health`.
            #[serde(default)]
            pub health: Option<$crate::provider::HealthOverrides>,
            /// What Postfix is told while this provider is the best usable one.
            #[serde(default)]
            pub failover: Option<$crate::provider::ProviderFailover>,
            $( $( $(#[$later_meta])* pub $later: $later_ty, )* )?
            $(
                /// The API's base URL, instead of the provider's own.
                #[serde(default)]
                pub $endpoint: Option<String>,
            )?
            /// The limit for one whole submission (for SMTP: connect, TLS, AUTH, DATA).
            #[serde(
                default = "crate::provider::common::default_send_timeout",
                deserialize_with = "crate::duration::deserialize"
            )]
            pub timeout: std::time::Duration,
        }

        impl $kind {
            /// The keys every kind shares.
            pub(super) fn common(&self) -> $crate::provider::common::Common<'_> {
                let endpoint: Option<&str> = None $( .or(self.$endpoint.as_deref()) )?;
                $crate::provider::common::Common {
                    name: &self.name,
                    from: &self.from,
                    bounce_inbox: self.bounce_inbox.as_deref(),
                    endpoint,
                    timeout: self.timeout,
                    health: self.health.as_ref(),
                    failover: self.failover.as_ref(),
                }
            }
        }
    };
}
pub(super) use provider_config;

/// `providers[].health`: any of `global.health`, for one provider.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthOverrides {
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    pub overdue_after: Option<Duration>,
    #[serde(default)]
    pub learn: Option<crate::health::LearnConfig>,
    #[serde(default)]
    pub down_after: Option<u32>,
    #[serde(default)]
    pub up_after: Option<u32>,
    #[serde(default)]
    pub confirmations_per_minute: Option<u32>,
}

/// `providers[].failover`: what Postfix is told while this provider is the best.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFailover {
    /// A Postfix next hop, e.g. `[email-smtp.us-east-1.amazonaws.com]:587`.
    pub nexthop: String,
}

/// The keys every provider kind shares, borrowed from one.
pub(super) struct Common<'a> {
    pub name: &'a str,
    pub from: &'a str,
    pub bounce_inbox: Option<&'a str>,
    pub endpoint: Option<&'a str>,
    pub timeout: Duration,
    pub health: Option<&'a HealthOverrides>,
    pub failover: Option<&'a ProviderFailover>,
}

impl ProviderConfig {
    /// This provider's own health thresholds, if it has any.
    pub fn health_overrides(&self) -> Option<&HealthOverrides> {
        self.common().health
    }

    /// Postfix's next hop for this provider, if failover names one.
    pub fn nexthop(&self) -> Option<&str> {
        self.common().failover.map(|f| f.nexthop.as_str())
    }

    /// The `provider` label.
    pub fn name(&self) -> &str {
        self.common().name
    }

    /// The header sender (and the envelope sender unless a bounce inbox is set).
    pub fn from(&self) -> &str {
        self.common().from
    }

    /// The inbox that receives this provider's bounces (DSNs), if any.
    pub fn bounce_inbox(&self) -> Option<&str> {
        self.common().bounce_inbox
    }

    /// The API base URL override, if any.
    pub fn endpoint(&self) -> Option<&str> {
        self.common().endpoint
    }

    /// The limit for one submission.
    pub fn timeout(&self) -> Duration {
        self.common().timeout
    }
}

/// The problems of one provider's shared keys around those of its kind
/// (`own`), in the order of a provider's keys. The config checks what
/// needs the rest of the file: the name, the sender's address, the bounce
/// inbox.
pub(super) fn problems(common: Common<'_>, own: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(h) = common.health {
        for (key, n) in [("down_after", h.down_after), ("up_after", h.up_after)] {
            if let Some(m) = n.and_then(|n| valid::in_a_row(key, n)) {
                out.push((format!("health.{key}"), m));
            }
        }
    }
    if common.failover.is_some_and(|f| f.nexthop.trim().is_empty() || f.nexthop.contains(char::is_whitespace)) {
        out.push((
            "failover.nexthop".to_string(),
            "a Postfix next hop such as [smtp.example.com]:587, without spaces".to_string(),
        ));
    }
    out.extend(own);
    if common.timeout.is_zero() {
        out.push(("timeout".to_string(), "timeout must be more than 0s".to_string()));
    }
    if let Some(m) = common.endpoint.and_then(valid::url) {
        out.push(("endpoint".to_string(), m));
    }
    out
}

pub(super) fn default_send_timeout() -> Duration {
    Duration::from_secs(30)
}
