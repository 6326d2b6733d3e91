//! `health.learn` as a config writes it (global, or a provider's): every
//! key optional, checked when the config is read, laid over the defaults
//! of [`Learning`].

use super::learn::Learning;
use crate::duration;
use serde::Deserialize;
use std::time::Duration;

/// `health.learn`: every key optional, over the defaults of
/// [`crate::health::Learning`] (the ceiling's default is `overdue_after`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(try_from = "RawLearn")]
pub struct LearnConfig {
    pub quantile: Option<f64>,
    pub margin: Option<f64>,
    pub floor: Option<Duration>,
    pub ceiling: Option<Duration>,
    pub window: Option<usize>,
    pub min_deliveries: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLearn {
    #[serde(default)]
    quantile: Option<f64>,
    #[serde(default)]
    margin: Option<f64>,
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    floor: Option<Duration>,
    #[serde(default, deserialize_with = "duration::deserialize_opt")]
    ceiling: Option<Duration>,
    #[serde(default)]
    window: Option<usize>,
    #[serde(default)]
    min_deliveries: Option<usize>,
}

impl TryFrom<RawLearn> for LearnConfig {
    type Error = String;

    /// What `run` could not learn with is refused when the config is read.
    fn try_from(r: RawLearn) -> Result<Self, String> {
        if let Some(q) = r.quantile.filter(|q| !(q.is_finite() && *q > 0.0 && *q <= 1.0)) {
            return Err(format!("health.learn.quantile {q} must be above 0 and at most 1, e.g. 0.99"));
        }
        if let Some(m) = r.margin.filter(|m| !(m.is_finite() && *m >= 1.0)) {
            return Err(format!("health.learn.margin {m} must be at least 1: the bound is above the latencies seen"));
        }
        if let (Some(f), Some(c)) = (r.floor, r.ceiling)
            && f > c
        {
            return Err("health.learn.floor must not be above health.learn.ceiling".into());
        }
        if r.window == Some(0) {
            return Err("health.learn.window counts deliveries: at least 1".into());
        }
        if let (Some(m), w) = (r.min_deliveries, r.window.unwrap_or(Learning::default().window))
            && m > w
        {
            return Err(format!("health.learn.min_deliveries {m} is more than the window ({w}) ever holds"));
        }
        Ok(LearnConfig {
            quantile: r.quantile,
            margin: r.margin,
            floor: r.floor,
            ceiling: r.ceiling,
            window: r.window,
            min_deliveries: r.min_deliveries,
        })
    }
}

impl LearnConfig {
    /// These settings over `base`; the ceiling defaults to `fixed`.
    pub fn over(&self, base: Option<&LearnConfig>, fixed: Duration) -> Learning {
        let d = Learning::default();
        let b = base.copied().unwrap_or_default();
        Learning {
            quantile: self.quantile.or(b.quantile).unwrap_or(d.quantile),
            margin: self.margin.or(b.margin).unwrap_or(d.margin),
            floor: self.floor.or(b.floor).unwrap_or(d.floor),
            ceiling: self.ceiling.or(b.ceiling).unwrap_or(fixed),
            window: self.window.or(b.window).unwrap_or(d.window),
            min_deliveries: self.min_deliveries.or(b.min_deliveries).unwrap_or(d.min_deliveries),
        }
    }
}
