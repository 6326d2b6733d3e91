//! Human durations (`500ms`, `30s`, `10m`, `1h30m`) and percentages (`10%`)
//! as they are written in `probes.yaml`, for whichever part of the config
//! reads one (a provider's, a trigger's, the ledger's): it imports nothing
//! of the crate, so every layer may use it.

use serde::{Deserialize, Deserializer, de};
use std::time::Duration;

/// Parses `1h30m`, `45s`, `250ms`, `2d`: one or more number-unit pairs.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration {text:?}: expected a number, e.g. 30s or 10m"));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            "" => return Err(format!("invalid duration {text:?}: missing unit (ms, s, m, h or d)")),
            other => {
                return Err(format!("invalid duration {text:?}: unknown unit {other:?} (use ms, s, m, h or d)"));
            }
        };
        rest = &rest[unit_len..];
        let part = unit
            .checked_mul(u32::try_from(number).map_err(|_| format!("invalid duration {text:?}: number too large"))?)
            .ok_or_else(|| format!("invalid duration {text:?}: too long"))?;
        total = total.checked_add(part).ok_or_else(|| format!("invalid duration {text:?}: too long"))?;
    }
    Ok(total)
}

/// Deserializes a duration written as a string.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(de::Error::custom)
}

/// Deserializes an optional duration written as a string.
pub fn deserialize_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<String>::deserialize(d)?.map(|text| parse_duration(&text).map_err(de::Error::custom)).transpose()
}

/// A fraction written as a percentage, `10%` → 0.1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let number = text
            .trim()
            .strip_suffix('%')
            .ok_or_else(|| de::Error::custom(format!("invalid percentage {text:?}: write it like 10%")))?;
        let value: f64 = number
            .trim()
            .parse()
            .map_err(|_| de::Error::custom(format!("invalid percentage {text:?}: write it like 10%")))?;
        Ok(Percent(value / 100.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_bad_durations_with_a_hint() {
        assert!(parse_duration("10").unwrap_err().contains("missing unit"));
        assert!(parse_duration("10x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("s").unwrap_err().contains("expected a number"));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for text in ["1h", "10m", "30s", "250ms", "0s"] {
            assert_eq!(crate::words::as_configured(parse_duration(text).unwrap()), text);
        }
    }
}
