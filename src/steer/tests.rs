//! The steering rules on ranked providers made by hand.

use super::*;

fn p(name: &str, state: State, newest_failing: usize, p95: f64) -> ProviderHealth {
    ProviderHealth {
        provider: name.into(),
        state,
        since_ms: 0,
        reason: String::new(),
        p95_latency_seconds: Some(p95),
        newest_failing_routes: newest_failing,
        routes: Vec::new(),
        nexthop: Some(format!("[{name}.example]:587")),
        application: false,
    }
}

fn ranked(mut ps: Vec<ProviderHealth>) -> Vec<std::sync::Arc<ProviderHealth>> {
    ps.sort_by(|a, b| {
        let (ka, kb) = (a.rank_key(), b.rank_key());
        (ka.0, ka.1, ka.2).cmp(&(kb.0, kb.1, kb.2)).then(ka.3.total_cmp(&kb.3))
    });
    ps.into_iter().map(std::sync::Arc::new).collect()
}

#[test]
fn a_down_provider_is_drained_and_postfix_is_pointed_elsewhere() {
    let s = decide(&ranked(vec![p("a", State::Down, 1, 0.1), p("b", State::Healthy, 0, 1.0)]), None);
    assert_eq!(s.get("a"), Some(&Steer { provider: "a".into(), drain: true, weight_percent: 0 }));
    assert_eq!(s.get("b").unwrap().weight_percent, 100);
    assert_eq!(s.nexthop.as_deref(), Some("[b.example]:587"));
    assert_eq!(agent::answer(&s, "a"), "drain");
    assert_eq!(agent::answer(&s, "b"), "ready 100%");
}

#[test]
fn the_last_provider_is_never_drained() {
    let s = decide(&ranked(vec![p("a", State::Down, 2, 0.1), p("b", State::Down, 2, 1.0)]), None);
    assert!(s.providers.iter().all(|s| !s.drain && s.weight_percent == 100), "{s:?}");
    assert!(s.nexthop.is_some(), "Postfix keeps a next hop");
    let alone = decide(&[std::sync::Arc::new(p("a", State::Down, 1, 0.1))], None);
    assert_eq!(agent::answer(&alone, "a"), "ready 100%");
    assert_eq!(alone.nexthop.as_deref(), Some("[a.example]:587"));
}

#[test]
fn a_provider_whose_newest_canaries_fail_gets_a_token_share_while_another_delivers() {
    let s = decide(&ranked(vec![p("a", State::Healthy, 1, 0.1), p("b", State::Healthy, 0, 1.0)]), None);
    assert_eq!(agent::answer(&s, "a"), format!("ready {SUSPECT_WEIGHT_PERCENT}%"));
    assert_eq!(s.nexthop.as_deref(), Some("[b.example]:587"), "never preferred over one whose newest arrived");
    // Every provider's newest failing says nothing to choose between them.
    let all = decide(&ranked(vec![p("a", State::Healthy, 1, 0.1), p("b", State::Degraded, 1, 1.0)]), None);
    assert!(all.providers.iter().all(|s| s.weight_percent == 100), "{all:?}");
}

#[test]
fn the_postfix_next_hop_stays_while_its_provider_is_as_good_as_the_best() {
    let first = decide(&ranked(vec![p("a", State::Healthy, 0, 0.5), p("b", State::Healthy, 0, 1.0)]), None);
    assert_eq!(first.nexthop.as_deref(), Some("[a.example]:587"));
    // b becomes faster: a is still in the best class, so nothing moves.
    let next = decide(&ranked(vec![p("a", State::Healthy, 0, 2.0), p("b", State::Healthy, 0, 1.0)]), Some(&first));
    assert_eq!(next.nexthop.as_deref(), Some("[a.example]:587"));
    // a's newest canary fails: it moves.
    let moved = decide(&ranked(vec![p("a", State::Healthy, 1, 2.0), p("b", State::Healthy, 0, 1.0)]), Some(&next));
    assert_eq!(moved.nexthop.as_deref(), Some("[b.example]:587"));
}

#[test]
fn applications_are_never_steered_to() {
    let app = ProviderHealth { nexthop: None, application: true, ..p("shop", State::Healthy, 0, 0.01) };
    let s = decide(&ranked(vec![app, p("a", State::Down, 1, 1.0)]), None);
    assert_eq!(s.get("shop"), None);
    assert_eq!(agent::answer(&s, "a"), "ready 100%", "a is the only sending provider: never drained");
    assert!(agent::answer(&s, "shop").starts_with("#unknown provider"));
}

#[test]
fn no_evidence_informs_nothing() {
    let s = decide(&ranked(vec![p("a", State::Unknown, 0, 0.1), p("b", State::Unknown, 0, 1.0)]), None);
    assert!(!s.informed, "a fresh start keeps the last table");
    assert!(decide(&[std::sync::Arc::new(p("a", State::Healthy, 0, 0.1))], None).informed);
}

#[test]
fn the_postfix_table_is_a_cdb_postfix_can_read() {
    // Format: a 2048-byte header of 256 (position, length) pairs, the
    // records, then the hash tables (cdb, as tinycdb and Postfix read it).
    let db = postfix_map::cdb(&[(b"*", b":[b.example]:587")]);
    let word = |at: usize| u32::from_le_bytes(db[at..at + 4].try_into().unwrap()) as usize;
    let h = b"*".iter().fold(5381u32, |h, &c| (h << 5).wrapping_add(h) ^ u32::from(c));
    let (table, len) = (word((h as usize & 0xff) * 8), word((h as usize & 0xff) * 8 + 4));
    assert_eq!(len, 2);
    let slot = table + ((h as usize >> 8) % len) * 8;
    assert_eq!(word(slot) as u32, h);
    let record = word(slot + 4);
    assert_eq!((word(record), word(record + 4)), (1, 16));
    assert_eq!(&db[record + 8..record + 9], b"*");
    assert_eq!(&db[record + 9..record + 25], b":[b.example]:587");
    assert_eq!(postfix_map::cdb(&[]).len(), 2048, "an empty table: a header of empty tables");
}

#[tokio::test]
async fn haproxy_asks_by_name_and_is_answered_one_line() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = decide(&ranked(vec![p("a", State::Down, 1, 0.1), p("b", State::Healthy, 0, 1.0)]), None);
    let (_tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(s));
    let (_stop, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(agent::serve(listener, rx, stop));
    for (send, want) in [("a\n", "drain\n"), ("b\n", "ready 100%\n"), ("b\r\n", "ready 100%\n")] {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(send.as_bytes()).await.unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, want, "{send:?}");
    }
}
