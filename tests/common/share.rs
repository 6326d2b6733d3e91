//! Two instances on the same inboxes, under load: neither consumes nor
//! counts the other's canaries. Shared by `tests/share.rs` (a short run)
//! and the benchmark's `share` part (docs/performance.md).
//!
//! Each instance runs 50 routes (5 providers × 10 inboxes) every 5 s into
//! the same 10 mailboxes: 5 whose canaries are deleted once seen, 5 where
//! they are kept. Then the stack holds every new canary in its queue, so
//! the mailboxes stop changing; once both instances have seen everything
//! (each kept inbox holds exactly the canaries the two count delivered
//! there, the deleting ones are empty), both are stopped and their ledgers
//! read. Then:
//!
//! - each instance's canaries are all delivered or in flight: none refused,
//!   lost, late or bounced, and its delivered counter is its ledger's;
//! - every canary in flight (both instances) is one the queue holds: none
//!   went missing, so none was deleted by the other instance;
//! - on a kept inbox, each instance counted as `foreign` exactly the
//!   canaries the other delivered there (on a deleting inbox, at most
//!   those: the other may delete its own before this one looks), and
//!   nothing as forged, duplicate or expired.

use super::*;

const PROVIDERS: usize = 5;
const INBOXES: usize = 10;
/// Inboxes `i0`..`i4` delete seen canaries, `i5`..`i9` keep them.
const DELETING: usize = 5;

/// What one run found.
pub struct Shared {
    pub seconds: f64,
    pub routes_each: usize,
    /// Per instance, from its ledger: (sent, delivered, in flight at the
    /// end), and the foreign canaries it counted.
    pub counts: [(f64, f64, f64, f64); 2],
    /// Canaries held in the queue at the end (= both instances' in flight,
    /// but for a submission the stop cut short).
    pub held: usize,
    /// Foreign canaries counted on kept inboxes, and the other's deliveries there.
    pub foreign_kept: [(f64, f64); 2],
}

fn config(instance: &str, dir: &Path, port: u16) -> String {
    let mut providers = String::new();
    for p in 0..PROVIDERS {
        providers += &relay(&format!("p{p}"));
    }
    let mut inboxes = String::new();
    for i in 0..INBOXES {
        inboxes += &inbox(&format!("i{i}"), &format!("t-share-i{i}"));
        inboxes += if i < DELETING { "    cleanup: delete\n" } else { "    cleanup: keep\n" };
    }
    let names = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>().join(", ");
    format!(
        "{}providers:\n{providers}inboxes:\n{inboxes}probes:\n  - matrix: {{ providers: [{}], inboxes: [{}] }}\n",
        global(instance, port, dir, "5s", "10m").replace("jitter: 0%", "jitter: 10%"),
        names("p", PROVIDERS),
        names("i", INBOXES),
    )
}

/// Messages to this run's mailboxes in the stack's queue: (held, anywhere
/// else: on their way to a mailbox).
fn queued() -> (usize, usize) {
    let out = Command::new("postqueue").arg("-c").arg(stack().dir.join("postfix")).arg("-j").output().unwrap();
    let suffix = format!("-{}@", std::process::id());
    let ours: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("t-share-i") && l.contains(&suffix))
        .map(str::to_owned)
        .collect();
    let held = ours.iter().filter(|l| l.contains("\"queue_name\": \"hold\"")).count();
    (held, ours.len() - held)
}

/// Stops holding and delivers what was held, even on the way out of a
/// failed run (errors ignored: a panic here would abort).
struct Hold;

impl Drop for Hold {
    fn drop(&mut self) {
        let script = repo().join("scripts/mailstack.sh");
        let _ = Command::new(&script).arg("unhold").output();
        let _ = Command::new(&script).arg("release").output();
    }
}

/// Why the mailboxes are not (yet) settled, or None: nothing of this run
/// still on its way to a mailbox (a message accepted just before the hold
/// is delivered after it), every message in a kept inbox counted delivered
/// by its instance and foreign by the other, the deleting inboxes empty.
fn unsettled(m: [&Metrics; 2]) -> Option<String> {
    let (_, moving) = queued();
    if moving > 0 {
        return Some(format!("{moving} messages still on their way"));
    }
    for i in 0..INBOXES {
        let inbox = format!("i{i}");
        let delivered = |n: usize| m[n].value("mailcanary_canaries_delivered_total", &[("inbox", &inbox)]);
        let foreign =
            |n: usize| m[n].value("mailcanary_unmatched_messages_total", &[("inbox", &inbox), ("reason", "foreign")]);
        let messages = stack().messages(&format!("t-share-i{i}"), "").len() as f64;
        if i < DELETING && messages > 0.0 {
            return Some(format!("{inbox}: {messages} messages left"));
        }
        if i >= DELETING
            && (delivered(0) + delivered(1) != messages || foreign(0) != delivered(1) || foreign(1) != delivered(0))
        {
            return Some(format!(
                "{inbox}: {messages} messages; delivered {} + {}; foreign {} + {}",
                delivered(0),
                delivered(1),
                foreign(0),
                foreign(1)
            ));
        }
    }
    None
}

/// Runs both instances for `seconds`, then checks the end state (above);
/// panics with what is wrong.
pub fn run(seconds: u64) -> Shared {
    stack();
    let dir = temp_dir("share");
    let (dirs, ports) = ([dir.join("a"), dir.join("b")], [free_port(), free_port()]);
    let mut instances = Vec::new();
    for (n, (d, port)) in dirs.iter().zip(ports).enumerate() {
        std::fs::create_dir_all(d).unwrap();
        instances.push(Mailcanary::start(d, port, &config(&format!("t-share-{n}"), d, port)));
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
    }
    let loaded = start.elapsed().as_secs_f64();
    let _hold = Hold;
    mailstack(&["hold", &format!("^t-share-i[0-9]+-{}@", std::process::id())]);
    let limit = Duration::from_secs(120);
    let settling = Instant::now();
    // Settled, and still so with the same counts a moment later: a verdict
    // being made while the mailboxes were read (counted after the scrape,
    // its message already deleted) shows in the second scrape.
    let counts = |m: &Metrics| {
        (m.value("mailcanary_canaries_delivered_total", &[]), m.value("mailcanary_unmatched_messages_total", &[]))
    };
    let mut settled: Option<[(f64, f64); 2]> = None;
    let (a, b) = loop {
        let (a, b) = (instances[0].metrics().expect("a answers"), instances[1].metrics().expect("b answers"));
        match unsettled([&a, &b]) {
            None if settled == Some([counts(&a), counts(&b)]) => break (a, b),
            None => settled = Some([counts(&a), counts(&b)]),
            Some(why) if settling.elapsed() > limit => panic!("not settled {limit:?} after the hold: {why}"),
            Some(_) => settled = None,
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    for mc in &mut instances {
        assert!(mc.stop().success(), "{}", mc.log());
    }
    let seconds = start.elapsed().as_secs_f64();
    let (held, moving) = queued();
    assert_eq!(moving, 0, "messages delivered past the hold");
    let m = [&a, &b];
    // A canary whose submission the stop cut short is `sending` in the
    // ledger and may or may not have reached the queue.
    let mut submitting = [0.0; 2];
    let mut counts = [(0.0, 0.0, 0.0, 0.0); 2];
    for (n, m) in m.iter().enumerate() {
        let rows = mailcanary::ledger::Ledger::open(&dirs[n].join("state")).unwrap().since(0).unwrap();
        let state = |s: mailcanary::ledger::State| rows.iter().filter(|r| r.state == s).count() as f64;
        use mailcanary::{ledger::State::*, outcome::OutcomeKind};
        let (delivered, in_flight) = (state(Settled(OutcomeKind::Delivered)), state(Sent) + state(Sending));
        submitting[n] = state(Sending);
        assert_eq!(delivered + in_flight, rows.len() as f64, "instance {n}: canaries neither delivered nor in flight");
        assert_eq!(m.value("mailcanary_canaries_delivered_total", &[]), delivered, "instance {n}: delivered");
        for name in
            ["mailcanary_canaries_lost_total", "mailcanary_canaries_late_total", "mailcanary_send_failures_total"]
        {
            assert_eq!(m.value(name, &[]), 0.0, "instance {n}: {name}");
        }
        for reason in ["forged", "duplicate", "expired"] {
            assert_eq!(
                m.value("mailcanary_unmatched_messages_total", &[("reason", reason)]),
                0.0,
                "instance {n}: {reason}"
            );
        }
        let foreign = m.value("mailcanary_unmatched_messages_total", &[("reason", "foreign")]);
        counts[n] = (rows.len() as f64, delivered, in_flight, foreign);
    }
    for (me, other) in [(0, 1), (1, 0)] {
        for i in 0..DELETING {
            let inbox = format!("i{i}");
            let foreign =
                m[me].value("mailcanary_unmatched_messages_total", &[("inbox", &inbox), ("reason", "foreign")]);
            let theirs = m[other].value("mailcanary_canaries_delivered_total", &[("inbox", &inbox)]);
            assert!(
                foreign <= theirs,
                "instance {me} counted {foreign} foreign in {inbox}; the other delivered {theirs}"
            );
        }
    }
    let in_flight = counts[0].2 + counts[1].2;
    let lowest = in_flight - submitting[0] - submitting[1];
    assert!(
        lowest <= held as f64 && held as f64 <= in_flight,
        "canaries in flight {in_flight} ({lowest} surely submitted), and held in the queue {held}"
    );
    let kept = |me: usize, other: usize| {
        (DELETING..INBOXES).fold((0.0, 0.0), |(f, t), i| {
            let inbox = format!("i{i}");
            (
                f + m[me].value("mailcanary_unmatched_messages_total", &[("inbox", &inbox), ("reason", "foreign")]),
                t + m[other].value("mailcanary_canaries_delivered_total", &[("inbox", &inbox)]),
            )
        })
    };
    let shared =
        Shared { seconds, routes_each: PROVIDERS * INBOXES, counts, held, foreign_kept: [kept(0, 1), kept(1, 0)] };
    for (n, (sent, ..)) in shared.counts.iter().enumerate() {
        // Every route sends every 5 s: at least half of that before the hold.
        let expected = (loaded / 5.0) * (PROVIDERS * INBOXES) as f64 * 0.5;
        assert!(*sent >= expected, "instance {n} sent only {sent} canaries in {loaded:.0} s: not under load");
    }
    shared
}
