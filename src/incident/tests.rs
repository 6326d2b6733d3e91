//! The rules of crate::incident, each on a ledger built by hand.

use super::*;
use crate::health::State as HealthState;
use crate::ledger::State;
use crate::outcome::Observed;
use crate::outcome::OutcomeKind;
use std::collections::HashMap;

const S: i64 = 1000;

fn row(probe: &str, inbox: &str, t: i64, state: State) -> Row {
    Row {
        id: format!("{probe}{t}"),
        probe: probe.into(),
        provider: "p".into(),
        inbox: inbox.into(),
        state,
        created_ms: t,
        accepted_ms: Some(t),
        deadline_ms: t + 1000,
        provider_id: None,
        failure_reason: None,
        seen_ms: (state == State::Settled(OutcomeKind::Delivered)).then_some(t + 10),
        latency_ms: (state == State::Settled(OutcomeKind::Delivered)).then_some(10),
        placement: (state == State::Settled(OutcomeKind::Delivered)).then(|| "inbox".into()),
        bounce_status: None,
        bounce_detail: None,
        hops: Vec::new(),
        observed: Default::default(),
        expectation: None,
    }
}

/// A canary of `probe` sent at `t` and seen `latency` later (Late when
/// past `timeout`).
fn seen(probe: &str, t: i64, latency: i64, timeout: i64) -> Row {
    let mut r = row(
        probe,
        "x",
        t,
        if latency > timeout { State::Settled(OutcomeKind::Late) } else { State::Settled(OutcomeKind::Delivered) },
    );
    r.latency_ms = Some(latency);
    r.seen_ms = Some(t + latency);
    r.placement = Some("inbox".into());
    r
}

fn judge(slow_s: u64, now_ms: i64) -> Judge {
    Judge { slow: Duration::from_secs(slow_s), now_ms }
}

/// Relay B held from `t0` for 136 s: every 10 s a canary on each of its
/// two routes, all released at `t0` + 136 s; timeout 120 s. Those sent
/// before `now` only, and in flight when not yet released.
fn black_hole(t0: i64, now: i64) -> Vec<Row> {
    let release = t0 + 136 * S;
    let mut rows = Vec::new();
    for (probe, offset) in [("b-to-x", 0), ("b-to-y", 5 * S)] {
        for k in -3..20 {
            let t = t0 + offset + k * 10 * S;
            if t > now {
                continue;
            }
            let held = (t0..release).contains(&t);
            let arrives = if held { release } else { t + S };
            rows.push(if arrives > now {
                row(probe, "x", t, State::Sent)
            } else {
                seen(probe, t, arrives - t, 120 * S)
            });
        }
    }
    rows.sort_by_key(|r| r.created_ms);
    rows
}

#[test]
fn a_black_hole_with_held_canaries_is_one_incident_from_the_first_bad_canary_to_the_first_good_one_seen() {
    let t0 = 1_000_000 * S;
    let after = black_hole(t0, t0 + 400 * S);
    let review = review(&after, &[], judge(90, t0 + 400 * S));
    assert_eq!(review.incidents.len(), 1, "{:#?}", review.incidents);
    let i = &review.incidents[0];
    assert_eq!((i.from_ms, i.to_ms), (t0, Some(t0 + 136 * S)), "{i:#?}");
    // Held ~80 s and delivered in time: not counted, but the window waits for them.
    assert_eq!(i.canaries().get("delayed"), Some(&6), "{:?}", i.canaries());
    assert_eq!(i.canaries().get("late"), Some(&4), "{:?}", i.canaries());

    // Relay B's health spell, down from 40 s to 150 s, is the same incident.
    let t = |to, at_ms| Transition { provider: "p".into(), from: HealthState::Healthy, to, at_ms, reason: "".into() };
    let changes = [t(HealthState::Down, t0 + 40 * S), t(HealthState::Healthy, t0 + 150 * S)];
    let with_spell = super::review(&after, &changes, judge(90, t0 + 400 * S));
    assert_eq!(with_spell.incidents.len(), 1, "{:#?}", with_spell.incidents);
    assert_eq!((with_spell.incidents[0].from_ms, with_spell.incidents[0].to_ms), (t0, Some(t0 + 150 * S)));

    // During the hold: the canaries in flight past the threshold make it an open incident.
    let during = black_hole(t0, t0 + 100 * S);
    let open = super::review(&during, &[], judge(90, t0 + 100 * S));
    assert_eq!(open.incidents.len(), 1, "{:#?}", open.incidents);
    assert!(open.incidents[0].is_open() && open.incidents[0].from_ms == t0, "{:#?}", open.incidents);
    assert_eq!(open.incidents[0].canaries().get("overdue"), Some(&2), "{:?}", open.incidents[0].canaries());
    // Before the threshold, nothing is known to be wrong yet.
    let early = black_hole(t0, t0 + 60 * S);
    assert!(super::review(&early, &[], judge(90, t0 + 60 * S)).incidents.is_empty());
}

#[test]
fn the_threshold_decides_what_is_delayed_and_is_said_exactly() {
    let rows = [seen("a", 0, 95 * S, 600 * S), seen("a", 60 * S, S, 600 * S)];
    for (slow, delayed) in [(90, true), (100, false)] {
        let mut t = Trackers::new();
        track(&mut t, &rows, judge(slow, 600 * S));
        assert_eq!(!t["a"].windows.is_empty(), delayed, "--slow {slow}s");
    }
    assert!(delayed_rule(Duration::from_secs(100)).starts_with("A delivery slower than 100 s counts as delayed"));
}

#[test]
fn a_canary_in_flight_within_the_threshold_neither_opens_nor_closes_a_window() {
    let mut t = Trackers::new();
    let rows = [
        row("a", "i", 0, State::Settled(OutcomeKind::Lost)),
        row("a", "i", 10, State::Sent),
        row("a", "i", 20, State::Settled(OutcomeKind::Lost)),
        row("a", "i", 30, State::Sending),
    ];
    track(&mut t, &rows, judge(90, 1000));
    let w = &t["a"].windows;
    assert_eq!((w.len(), w[0].from_ms, w[0].to_ms, w[0].closed_ms), (1, 0, 20, None));
    track(&mut t, &[row("a", "i", 40, State::Settled(OutcomeKind::Delivered))], judge(90, 1000));
    assert_eq!(t["a"].windows[0].closed_ms, Some(50), "closed when the good canary was seen");
}

#[test]
fn overlapping_windows_and_spells_are_one_incident_and_apart_are_two() {
    let j = judge(90, 1000);
    let mut t = Trackers::new();
    let rows = [
        row("a", "x", 0, State::Settled(OutcomeKind::Lost)),
        row("b", "y", 5, State::Settled(OutcomeKind::Refused)),
        row("a", "x", 10, State::Settled(OutcomeKind::Delivered)),
        row("b", "y", 15, State::Settled(OutcomeKind::Delivered)),
        row("a", "x", 100, State::Settled(OutcomeKind::Late)),
    ];
    track(&mut t, &rows, j);
    let spell =
        || Spell { provider: "q".into(), state: HealthState::Down, from_ms: 12, to_ms: Some(20), reason: "".into() };
    let all = incidents(&t, &[spell()], Duration::from_millis(40), 1);
    assert_eq!(all.len(), 2);
    assert!(all[0].is_open() && all[0].from_ms == 100);
    let past = &all[1];
    assert_eq!((past.from_ms, past.to_ms), (0, Some(25)));
    assert_eq!(past.providers.iter().collect::<Vec<_>>(), ["p", "q"]);
    assert_eq!(past.inboxes.iter().collect::<Vec<_>>(), ["x", "y"]);
    assert_eq!((past.canaries().get("lost"), past.canaries().get("refused")), (Some(&1), Some(&1)));
    assert_eq!(incidents(&t, &[spell()], Duration::from_millis(80), 1).len(), 1, "within the gap: one incident");
    let without_singles = incidents(&t, &[spell()], Duration::from_millis(40), 2);
    assert_eq!(without_singles.len(), 1, "single canaries are no incident, the spell is: {without_singles:?}");
    assert_eq!(without_singles[0].providers.iter().collect::<Vec<_>>(), ["q"]);
}

#[test]
fn spells_run_from_a_change_into_down_or_degraded_to_the_next_change() {
    let t =
        |to, at_ms| Transition { provider: "p".into(), from: HealthState::Unknown, to, at_ms, reason: "why".into() };
    let s = spells(&[
        t(HealthState::Healthy, 0),
        t(HealthState::Down, 10),
        t(HealthState::Healthy, 20),
        t(HealthState::Degraded, 30),
    ]);
    assert_eq!(s.len(), 2);
    assert_eq!((s[0].from_ms, s[0].to_ms, s[1].from_ms, s[1].to_ms), (10, Some(20), 30, None));
}

#[test]
fn a_silence_of_every_route_is_a_gap_not_health() {
    // Route a every 10 s, route slow every hour; nothing sent from 30 s to 71 s.
    let mut rows: Vec<Row> =
        [0, 10, 20, 30, 71, 81].iter().map(|s| row("a", "x", s * S, State::Settled(OutcomeKind::Delivered))).collect();
    rows.push(row("slow", "x", 25 * S, State::Settled(OutcomeKind::Delivered)));
    rows.push(row("slow", "x", 3625 * S, State::Settled(OutcomeKind::Delivered)));
    rows.sort_by_key(|r| r.created_ms);
    let review = review(&rows[..rows.len() - 1], &[], judge(90, 90 * S));
    assert_eq!(review.gaps, [Gap { from_ms: 30 * S, to_ms: Some(71 * S), inbox: None }]);
    assert!(review.incidents.is_empty(), "a gap is no incident: {:?}", review.incidents);

    let intervals: HashMap<String, Duration> = [("a".to_string(), Duration::from_secs(10))].into();
    let mut a = Activity::new(&intervals);
    for s in [0, 10, 25, 40] {
        a.saw("a", s * S);
    }
    assert!(a.gaps.is_empty(), "15 s is within two intervals: {:?}", a.gaps);
    assert_eq!(a.ongoing(55 * S), None);
    assert_eq!(a.ongoing(61 * S), Some(Gap { from_ms: 40 * S, to_ms: None, inbox: None }), "still not sending");
}

#[test]
fn canaries_found_after_their_inbox_was_not_watched_make_a_gap_for_that_inbox() {
    let unwatched = |t: i64, arrived: i64, seen: i64| {
        let mut r = row("a", "x", t, State::Settled(OutcomeKind::Delivered));
        r.latency_ms = Some(arrived - t);
        r.seen_ms = Some(seen);
        r.observed = Observed::AfterGap;
        r
    };
    let rows = [unwatched(0, S, 100 * S), unwatched(10 * S, 11 * S, 100 * S), unwatched(200 * S, 201 * S, 205 * S)];
    let intervals: HashMap<String, Duration> = [("a".to_string(), Duration::from_secs(10))].into();
    let gaps = gap::unwatched(&rows, &intervals);
    assert_eq!(gaps, [Gap { from_ms: S, to_ms: Some(100 * S), inbox: Some("x".into()) }], "4 s is no gap at 10 s");
}
