//! Where a followed link may lead. The link comes from an email: anyone who
//! can get a message with a live tag into the watched folder chooses it, so
//! without a check the follower is a way into the prober's own network
//! (an SSRF): its loopback services, the private network, the cloud's
//! metadata endpoint at 169.254.169.254. Those addresses are refused unless
//! the route's config allows a range by name (`expect.allow_addresses`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address range, `10.0.0.0/8` or `fd00::/8` (a bare address is one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    network: IpAddr,
    prefix: u8,
}

impl Range {
    /// Parses CIDR notation; the address must have no bits set past the prefix.
    pub fn parse(text: &str) -> Result<Range, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().map_err(|_| format!("{address:?} is not an IP address"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("prefix length {p:?} is not a number from 0 to {max}")),
            },
        };
        let range = Range { network, prefix };
        if !range.contains(network) || range.first() != network {
            return Err(format!("{text:?} has bits set past its prefix: write {}/{prefix}", range.first()));
        }
        Ok(range)
    }

    fn first(&self) -> IpAddr {
        match self.network {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(self.prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(self.prefix))),
        }
    }

    /// Whether `ip` lies in the range (IPv4 in IPv4 ranges, IPv6 in IPv6 ones).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => (u32::from(n) ^ u32::from(a)) & mask32(self.prefix) == 0,
            (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n) ^ u128::from(a)) & mask128(self.prefix) == 0,
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// The addresses a link may reach: any but the refused kinds, and of those
/// the allowed ranges.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allowed: Vec<Range>,
}

impl Policy {
    /// A policy allowing `ranges` (already validated) besides public addresses.
    pub fn allowing(ranges: &[String]) -> Result<Policy, String> {
        Ok(Policy { allowed: ranges.iter().map(|r| Range::parse(r)).collect::<Result<_, _>>()? })
    }

    /// Ok, or the kind of address it is and why it is refused.
    pub fn check(&self, ip: IpAddr) -> Result<(), &'static str> {
        let ip = canonical(ip);
        match refused(ip) {
            Some(kind) if !self.allowed.iter().any(|r| r.contains(ip)) => Err(kind),
            _ => Ok(()),
        }
    }
}

/// An IPv4 address written as IPv6 (mapped, compatible, NAT64 or 6to4)
/// is judged as the IPv4 address it reaches.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let bits = u128::from(v6);
    let low = Ipv4Addr::from(bits as u32);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    match v6.segments() {
        // ::a.b.c.d (IPv4-compatible, deprecated), but not :: and ::1.
        [0, 0, 0, 0, 0, 0, _, _] if bits > 1 => IpAddr::V4(low),
        // 64:ff9b::/96, the well-known NAT64 prefix.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => IpAddr::V4(low),
        // 2002::/16, 6to4: the IPv4 address follows the prefix.
        [0x2002, hi, lo, ..] => IpAddr::V4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
        _ => ip,
    }
}

/// The kind of a refused address, or None for one reachable on the internet.
fn refused(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            Some(match o {
                [0, ..] => "unspecified",
                [127, ..] => "loopback",
                [10, ..] | [172, 16..=31, ..] | [192, 168, ..] => "private",
                [100, 64..=127, ..] => "shared (CGNAT)",
                [169, 254, ..] => "link-local (cloud metadata)",
                [192, 0, 0, _] | [198, 18..=19, ..] => "reserved",
                [224..=239, ..] => "multicast",
                [240..=255, ..] => "reserved",
                _ => return None,
            })
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            Some(match s[0] {
                _ if a.is_unspecified() => "unspecified",
                _ if a.is_loopback() => "loopback",
                0xfc00..=0xfdff => "private (ULA)",
                0xfe80..=0xfebf => "link-local",
                0xfec0..=0xfeff => "private (site-local)",
                0xff00..=0xffff => "multicast",
                // 64:ff9b:1::/48, NAT64 for local use; 100::/64, discard.
                0x64 if s[1] == 0xff9b && s[2] == 1 => "private",
                0x100 if s[1..4] == [0, 0, 0] => "reserved",
                _ => return None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused_by_kind() {
        let p = Policy::default();
        for (address, kind) in [
            ("127.0.0.2", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.31.255.1", "private"),
            ("192.168.0.1", "private"),
            ("fd00:ec2::254", "private (ULA)"),
            ("169.254.169.254", "link-local (cloud metadata)"),
            ("fe80::1", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("100.100.100.200", "shared (CGNAT)"),
            ("::ffff:169.254.169.254", "link-local (cloud metadata)"),
            ("::ffff:127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local (cloud metadata)"),
            ("2002:7f00:1::", "loopback"),
            ("255.255.255.255", "reserved"),
        ] {
            assert_eq!(p.check(ip(address)), Err(kind), "{address}");
        }
        for public in ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "172.32.0.1", "100.128.0.1"] {
            assert_eq!(p.check(ip(public)), Ok(()), "{public}");
        }
    }

    #[test]
    fn an_allowed_range_lets_its_addresses_through_and_no_others() {
        let p = Policy::allowing(&["127.0.0.0/8".into(), "fd00::/8".into(), "10.9.8.7".into()]).unwrap();
        assert_eq!(p.check(ip("127.0.0.2")), Ok(()));
        assert_eq!(p.check(ip("::ffff:127.0.0.1")), Ok(()), "mapped IPv4 is judged as IPv4");
        assert_eq!(p.check(ip("fd12::1")), Ok(()));
        assert_eq!(p.check(ip("10.9.8.7")), Ok(()));
        assert_eq!(p.check(ip("10.9.8.8")), Err("private"));
        assert_eq!(p.check(ip("169.254.169.254")), Err("link-local (cloud metadata)"));
        assert_eq!(p.check(ip("::1")), Err("loopback"));
    }

    #[test]
    fn ranges_are_checked_strictly() {
        assert_eq!(Range::parse("0.0.0.0/0").unwrap().prefix, 0);
        assert!(Range::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert_eq!(Range::parse("::/0").unwrap().prefix, 0);
        assert_eq!(
            Range::parse("127.0.0.1/8").unwrap_err(),
            "\"127.0.0.1/8\" has bits set past its prefix: write 127.0.0.0/8"
        );
        assert_eq!(Range::parse("10.0.0.0/33").unwrap_err(), "prefix length \"33\" is not a number from 0 to 32");
        assert_eq!(Range::parse("localhost/8").unwrap_err(), "\"localhost\" is not an IP address");
        assert!(Range::parse("fd00::/129").is_err());
        assert!(Range::parse("10.0.0.0/-1").is_err());
    }
}
