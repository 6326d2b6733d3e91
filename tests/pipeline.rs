//! The canary pipeline against a real Postfix and Dovecot: every outcome a
//! route can have, as /metrics, the status API and the mailbox show it.

mod common;

use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// The exposition passes `promtool check metrics` when it is installed (CI installs it).
fn promtool_accepts(m: &Metrics) {
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(m.0.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "promtool check metrics: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// How many series carry route `probe`.
fn route_series(m: &Metrics, probe: &str) -> usize {
    let label = format!("probe=\"{probe}\"");
    m.0.lines().filter(|l| !l.starts_with('#') && l.contains(&label)).count()
}

#[test]
fn delivered_to_the_inbox_with_latency_and_cleaned_up() {
    let s = stack();
    let dir = temp_dir("deliver");
    let port = free_port();
    let config = format!(
        "{}providers:\n{}inboxes:\n{}probes:\n  - {{ name: deliver, provider: relay, inbox: box }}\n",
        global("t-deliver", port, &dir, "2s", "1m"),
        relay("relay"),
        inbox("box", "t-deliver"),
    );
    let mut mc = Mailcanary::start(&dir, port, &config);
    let labels = route("deliver", "relay", "box");
    let inbox_labels = [labels.as_slice(), &[("placement", "inbox")]].concat();
    let m = mc.wait_until("two canaries delivered", WAIT, |m| {
        m.value("mailcanary_canaries_delivered_total", &inbox_labels) >= 2.0
    });
    assert!(m.value("mailcanary_canaries_sent_total", &labels) >= 2.0);
    assert!(m.value("mailcanary_delivery_latency_seconds_count", &labels) >= 2.0);
    let sum = m.value("mailcanary_delivery_latency_seconds_sum", &labels);
    assert!(sum > 0.0 && sum < 10.0, "latency sum {sum}");
    assert_eq!(m.get("mailcanary_inbox_up", &[("inbox", "box")]), Some(1.0));
    assert!(m.value("mailcanary_last_delivery_timestamp_seconds", &labels) > 1.7e9);
    for reason in ["rejected", "auth", "tls", "connect", "timeout", "throttled", "other"] {
        let l = [labels.as_slice(), &[("reason", reason)]].concat();
        assert_eq!(m.get("mailcanary_send_failures_total", &l), Some(0.0), "{reason} exists at 0");
    }
    assert_eq!(m.get("mailcanary_canaries_lost_total", &labels), Some(0.0));
    assert_eq!(m.get("mailcanary_canaries_late_total", &labels), Some(0.0));
    // What a route costs by default (docs/metrics.md), its two hops seen.
    assert_eq!(route_series(&m, "deliver"), 32, "{}", m.0);

    let status = mc.status();
    let r = &status["routes"][0];
    assert_eq!(r["probe"], "deliver");
    assert!(r["last_outcome"] == "delivered", "{status}");
    assert!(r["last_latency_seconds"].as_f64().unwrap() > 0.0);

    promtool_accepts(&m);

    assert!(mc.stop().success());
    // Logs that go to a file (not a terminal) carry no colour codes.
    let log = mc.log();
    assert!(log.lines().count() > 1 && !log.contains('\x1b'), "{log}");
    // The ledger holds each canary with the server's queue id and its latency.
    let ledger = mailcanary::ledger::Ledger::open(&dir.join("state")).unwrap();
    let rows = ledger.since(0).unwrap();
    let delivered: Vec<_> = rows
        .iter()
        .filter(|r| r.state == mailcanary::ledger::State::Settled(mailcanary::outcome::OutcomeKind::Delivered))
        .collect();
    assert!(delivered.len() >= 2, "{rows:?}");
    for row in &delivered {
        assert_eq!(row.probe, "deliver");
        assert!(row.provider_id.as_ref().is_some_and(|id| id.len() >= 6), "Postfix queue id kept: {row:?}");
        assert_eq!(row.placement.as_deref(), Some("inbox"));
        assert!(row.latency_ms.is_some() && row.accepted_ms.is_some() && row.seen_ms.is_some());
    }
    // Verified canaries were deleted: the mailbox holds at most one that
    // arrived after the last scan.
    assert!(s.messages("t-deliver", "").len() <= 1, "canaries left behind");
}

/// Canaries close together into one inbox are cleaned up together
/// (src/inbox/cleanup.rs): while more are on their way a resolved one waits
/// for them, and whatever waits is cleaned up before the watcher waits
/// itself: none is left behind once sends stop.
#[test]
fn canaries_close_together_are_cleaned_up_and_none_is_left() {
    let s = stack();
    let dir = temp_dir("close");
    let port = free_port();
    let relays: String = (0..6).map(|i| relay(&format!("r{i}"))).collect();
    let names: Vec<String> = (0..6).map(|i| format!("r{i}")).collect();
    let config = format!(
        "{}providers:\n{relays}inboxes:\n{}probes:\n  - matrix: {{ providers: [{}], inboxes: [box] }}\n",
        global("t-close", port, &dir, "1s", "1m"),
        inbox("box", "t-close"),
        names.join(", "),
    );
    let mut mc = Mailcanary::start(&dir, port, &config);
    let m = mc.wait_until("60 canaries delivered", WAIT, |m| m.sum("mailcanary_canaries_delivered_total{") >= 60.0);
    assert_eq!(m.sum("mailcanary_canaries_lost_total{"), 0.0, "{}", m.0);
    // The stop waits for the canaries in flight, and the last one resolved
    // cleans up those that waited for it.
    assert!(mc.stop().success());
    let left = s.messages("t-close", "").len();
    assert!(left <= 1, "{left} canaries left behind");
}

#[test]
fn spam_placement_is_reported() {
    let dir = temp_dir("spam");
    let port = free_port();
    let config = format!(
        "{}providers:\n{}inboxes:\n{}probes:\n  - {{ name: to-spam, provider: relay, inbox: junky }}\n",
        global("t-spam", port, &dir, "1h", "1m"),
        relay("relay"),
        inbox("junky", "spam-t-spam"),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let labels = route("to-spam", "relay", "junky");
    let spam = [labels.as_slice(), &[("placement", "spam")]].concat();
    let inbox = [labels.as_slice(), &[("placement", "inbox")]].concat();
    let m = mc.wait_until("a canary in spam", WAIT, |m| m.value("mailcanary_canaries_delivered_total", &spam) >= 1.0);
    assert_eq!(m.value("mailcanary_canaries_delivered_total", &inbox), 0.0);
    // One meaning of "delivered" everywhere: seen, in any folder; spam is where.
    let status = mc.status();
    let r = &status["routes"][0];
    assert_eq!((&r["last_outcome"], &r["last_placement"]), (&"delivered".into(), &"spam".into()), "{status}");
    assert!(r["delivered"].as_u64() >= Some(1) && r["delivered"] == r["spam"], "{status}");
}

/// The spam folders are looked at while a canary is awaited, and at least
/// every `poll_interval` otherwise (src/inbox/scan.rs): what comes into
/// them when none is awaited is seen too.
#[test]
fn what_comes_into_the_spam_folder_when_no_canary_is_awaited_is_seen() {
    let s = stack();
    let dir = temp_dir("junkidle");
    let port = free_port();
    let base = "spam-t-junkidle";
    let config = format!(
        "{}providers:\n{}inboxes:\n{}probes:\n  - {{ name: junk-idle, provider: relay, inbox: junky }}\n",
        global("t-junkidle", port, &dir, "1h", "1m"),
        relay("relay"),
        inbox("junky", base).replace("tls: tls,", "tls: tls, poll_interval: 2s,"),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let spam = [route("junk-idle", "relay", "junky").as_slice(), &[("placement", "spam")]].concat();
    mc.wait_until("the canary in spam", WAIT, |m| m.value("mailcanary_canaries_delivered_total", &spam) >= 1.0);
    // The next canary is an hour away: none is awaited now.
    let forged = signed_token("t-junkidle", "junk-idle", "AAAAAAAAAAAAAAAA", "not the instance's key at all");
    s.inject(
        &format!("{}@mailcanary.test", user(base)),
        &format!("Subject: forged\nX-Mailcanary-Token: {forged}\n\nforged\n"),
    );
    let forged = [("inbox", "junky"), ("reason", "forged")];
    mc.wait_until("the forged message in the spam folder counted", WAIT, |m| {
        m.value("mailcanary_unmatched_messages_total", &forged) >= 1.0
    });
}

#[test]
fn send_failures_carry_their_reason() {
    let s = stack();
    let dir = temp_dir("fail");
    let port = free_port();
    let config = format!(
        "{}providers:\n{}  - name: badpass\n    type: smtp\n    host: localhost\n    port: {}\n    tls: starttls\n    username: t-fail@mailcanary.test\n    password: not-the-password\n    ca_file: \"{}\"\n    from: t-fail@mailcanary.test\n\
         inboxes:\n{}{}{}probes:\n\
         \x20 - {{ name: rejected, provider: relay, inbox: nobody }}\n\
         \x20 - {{ name: throttled, provider: relay, inbox: throttle }}\n\
         \x20 - {{ name: wrong-password, provider: badpass, inbox: ok }}\n",
        global("t-fail", port, &dir, "1h", "1m"),
        relay("relay"),
        s.submission,
        s.ca,
        inbox("nobody", "nobody").replace(&user("nobody"), "nobody"),
        inbox("throttle", "throttle-t-fail"),
        inbox("ok", "t-fail"),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let reason = |probe: &'static str, provider: &'static str, inbox: &'static str, reason: &'static str| {
        [route(probe, provider, inbox).as_slice(), &[("reason", reason)]].concat()
    };
    let rejected = reason("rejected", "relay", "nobody", "rejected");
    let throttled = reason("throttled", "relay", "throttle", "throttled");
    let auth = reason("wrong-password", "badpass", "ok", "auth");
    let m = mc.wait_until("three failures", WAIT, |m| {
        m.value("mailcanary_send_failures_total", &rejected) >= 1.0
            && m.value("mailcanary_send_failures_total", &throttled) >= 1.0
            && m.value("mailcanary_send_failures_total", &auth) >= 1.0
    });
    for (probe, provider, inbox) in [("rejected", "relay", "nobody"), ("wrong-password", "badpass", "ok")] {
        assert_eq!(m.value("mailcanary_canaries_sent_total", &route(probe, provider, inbox)), 0.0);
        assert_eq!(m.value("mailcanary_canaries_lost_total", &route(probe, provider, inbox)), 0.0);
    }
    // Nothing secret in what the service says about it.
    for text in [m.0.clone(), mc.status().to_string(), mc.log()] {
        assert!(!text.contains("not-the-password"));
        assert!(!text.contains(&s.password));
    }
}

#[test]
fn wrong_imap_password_marks_the_inbox_down() {
    let s = stack();
    let dir = temp_dir("imapauth");
    let port = free_port();
    let bad_inbox = inbox("locked", "t-imapauth").replace(&s.password, "wrong-imap-password");
    let config = format!(
        "{}providers:\n{}inboxes:\n{}probes:\n  - {{ name: locked-out, provider: relay, inbox: locked }}\n",
        global("t-imapauth", port, &dir, "1h", "1m"),
        relay("relay"),
        bad_inbox,
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let auth = [("inbox", "locked"), ("reason", "auth")];
    let m = mc.wait_until("an IMAP auth error", WAIT, |m| m.value("mailcanary_inbox_errors_total", &auth) >= 1.0);
    assert_eq!(m.get("mailcanary_inbox_up", &[("inbox", "locked")]), Some(0.0));
    assert!(!mc.log().contains("wrong-imap-password"), "the password reached the log");
}

#[test]
fn a_held_canary_is_lost_then_late_and_counted_once() {
    let dir = temp_dir("held");
    let port = free_port();
    let config = format!(
        "{}providers:\n{}inboxes:\n{}probes:\n  - {{ name: held, provider: relay, inbox: hold }}\n",
        global("t-held", port, &dir, "1h", "3s"),
        relay("relay"),
        inbox("hold", "hold-t-held"),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let labels = route("held", "relay", "hold");
    mc.wait_until("the canary in flight", WAIT, |m| m.value("mailcanary_canaries_sent_total", &labels) >= 1.0);
    let m = mc.wait_until("the canary lost", WAIT, |m| m.value("mailcanary_canaries_lost_total", &labels) >= 1.0);
    assert_eq!(m.value("mailcanary_canaries_in_flight", &labels), 0.0);
    mailstack(&["release"]);
    let m = mc.wait_until("the canary late", WAIT, |m| m.value("mailcanary_canaries_late_total", &labels) >= 1.0);
    assert_eq!(m.value("mailcanary_canaries_lost_total", &labels), 1.0, "lost stays counted once");
    let delivered = [labels.as_slice(), &[("placement", "inbox")]].concat();
    assert_eq!(m.value("mailcanary_canaries_delivered_total", &delivered), 0.0, "a late canary is not delivered");
    std::thread::sleep(Duration::from_secs(2));
    let m = mc.metrics().unwrap();
    assert_eq!(m.value("mailcanary_canaries_late_total", &labels), 1.0, "late is counted once");
    assert_eq!(m.value("mailcanary_unmatched_messages_total", &[("inbox", "hold"), ("reason", "duplicate")]), 0.0);

    // The post-incident review lists the route and the late canary with its queue id.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailcanary"))
        .args(["report", "--canaries", "--since", "1h", "--config"])
        .arg(dir.join("probes.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let line = text.lines().find(|l| l.starts_with("held ")).unwrap_or_else(|| panic!("{text}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&columns[1..7], ["1", "0", "0", "1", "0", "0"], "sent delivered spam late lost refused: {text}");
    assert!(text.contains("1 canary 1 late"), "{text}");
    assert!(text.lines().any(|l| l.contains(" late ") && l.contains("id ")), "{text}");
}

#[test]
fn forged_and_foreign_messages_are_counted_and_left_alone() {
    let s = stack();
    let dir = temp_dir("hostile");
    let port = free_port();
    let config = format!(
        "{}providers:\n{}inboxes:\n{}probes:\n  - {{ name: hostile, provider: relay, inbox: target }}\n",
        global("t-hostile", port, &dir, "1h", "1m"),
        relay("relay"),
        inbox("target", "t-hostile"),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let labels = route("hostile", "relay", "target");
    let inbox_labels = [labels.as_slice(), &[("placement", "inbox")]].concat();
    mc.wait_until("the genuine canary", WAIT, |m| m.value("mailcanary_canaries_delivered_total", &inbox_labels) >= 1.0);

    let forged = signed_token("t-hostile", "hostile", "AAAAAAAAAAAAAAAA", "not the instance's key at all");
    let foreign = signed_token("somebody-else", "hostile", "BBBBBBBBBBBBBBBB", "another instance's own key");
    let to = format!("{}@mailcanary.test", user("t-hostile"));
    s.inject(&to, &format!("Subject: forged\nX-Mailcanary-Token: {forged}\n\nforged\n"));
    s.inject(&to, &format!("Subject: foreign\nX-Mailcanary-Token: {foreign}\n\nforeign\n"));
    s.inject(&to, "Subject: garbage\nX-Mailcanary-Token: mc1.%%%not-a-token\n\ngarbage\n");
    s.inject(&to, "Subject: ordinary mail\n\nhello\n");
    let m = mc.wait_until("hostile messages counted", WAIT, |m| {
        m.value("mailcanary_unmatched_messages_total", &[("inbox", "target"), ("reason", "forged")]) >= 2.0
            && m.value("mailcanary_unmatched_messages_total", &[("inbox", "target"), ("reason", "foreign")]) >= 1.0
    });
    assert_eq!(m.value("mailcanary_unmatched_messages_total", &[("inbox", "target"), ("reason", "forged")]), 2.0);
    assert_eq!(m.value("mailcanary_canaries_delivered_total", &inbox_labels), 1.0, "nothing hostile matched");
    let left = s.wait_messages("t-hostile", "", 4);
    assert_eq!(left.len(), 4, "the four hostile or ordinary messages, and nothing else");
    for subject in ["forged", "foreign", "garbage", "ordinary mail"] {
        assert!(left.iter().any(|m| m.contains(&format!("Subject: {subject}"))), "{subject} was not left alone");
    }
    assert!(!left.iter().any(|m| m.contains("Subject: mailcanary hostile")), "the genuine canary was cleaned up");
}

#[test]
fn tls_verifies_against_the_given_ca_and_refuses_without_it() {
    let s = stack();
    let dir = temp_dir("tls");
    let port = free_port();
    let submission = |name: &str, ca: bool| {
        format!(
            "  - name: {name}\n    type: smtp\n    host: localhost\n    port: {}\n    tls: starttls\n    username: t-tls@mailcanary.test\n    password: \"{}\"\n{}    from: t-tls@mailcanary.test\n",
            s.submission,
            s.password,
            if ca { format!("    ca_file: \"{}\"\n", s.ca) } else { String::new() }
        )
    };
    let no_ca_inbox = inbox("untrusted", "t-tls-noca").replace(&format!(", ca_file: \"{}\"", s.ca), "");
    let config = format!(
        "{}providers:\n{}{}inboxes:\n{}{}probes:\n\
         \x20 - {{ name: trusted, provider: with-ca, inbox: trusted }}\n\
         \x20 - {{ name: untrusted-smtp, provider: without-ca, inbox: trusted }}\n\
         \x20 - {{ name: untrusted-imap, provider: with-ca, inbox: untrusted }}\n",
        global("t-tls", port, &dir, "1h", "1m"),
        submission("with-ca", true),
        submission("without-ca", false),
        inbox("trusted", "t-tls"),
        no_ca_inbox,
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let delivered = [route("trusted", "with-ca", "trusted").as_slice(), &[("placement", "inbox")]].concat();
    let smtp_tls = [route("untrusted-smtp", "without-ca", "trusted").as_slice(), &[("reason", "tls")]].concat();
    let m = mc.wait_until("TLS outcomes", WAIT, |m| {
        m.value("mailcanary_canaries_delivered_total", &delivered) >= 1.0
            && m.value("mailcanary_send_failures_total", &smtp_tls) >= 1.0
            && m.value("mailcanary_inbox_errors_total", &[("inbox", "untrusted"), ("reason", "tls")]) >= 1.0
    });
    assert_eq!(m.get("mailcanary_inbox_up", &[("inbox", "trusted")]), Some(1.0));
    assert_eq!(m.get("mailcanary_inbox_up", &[("inbox", "untrusted")]), Some(0.0));
}

#[test]
fn check_exits_zero_only_for_the_inbox() {
    let dir = temp_dir("check");
    let port = free_port();
    let config = format!(
        "{}providers:\n{}inboxes:\n{}    cleanup: keep\n{}probes:\n  - {{ name: good, provider: relay, inbox: box }}\n  - {{ name: spammy, provider: relay, inbox: junk }}\n",
        global("t-check", port, &dir, "1h", "20s"),
        relay("relay"),
        inbox("box", "t-check"),
        inbox("junk", "spam-t-check"),
    );
    let path = dir.join("probes.yaml");
    std::fs::write(&path, config).unwrap();
    let run = |probe: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mailcanary"))
            .args(["check", "--config"])
            .arg(&path)
            .args(["--probe", probe])
            .output()
            .unwrap()
    };
    let good = run("good");
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert_eq!(good.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&good.stderr));
    assert!(stdout.contains("accepted in"), "{stdout}");
    assert!(stdout.contains("delivered to inbox in"), "{stdout}");
    assert!(stdout.contains("accepted → seen"), "{stdout}");
    let spammy = run("spammy");
    assert_eq!(spammy.status.code(), Some(1), "{}", String::from_utf8_lossy(&spammy.stdout));
    assert!(String::from_utf8_lossy(&spammy.stdout).contains("delivered to spam"));
    let unknown = run("nope");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("probes: good, spammy"));

    // A service of the same instance on the same inbox finds the check's
    // canary (kept, by cleanup: keep) and leaves it to the check, uncounted.
    let mc = Mailcanary::start(&dir, port, &std::fs::read_to_string(&path).unwrap());
    let delivered = [route("good", "relay", "box").as_slice(), &[("placement", "inbox")]].concat();
    let m = mc.wait_until("the service's own canary", WAIT, |m| {
        m.value("mailcanary_canaries_delivered_total", &delivered) >= 1.0
    });
    assert_eq!(
        m.value("mailcanary_canaries_delivered_total", &delivered),
        1.0,
        "the check's canary is not the service's"
    );
    assert_eq!(m.value("mailcanary_unmatched_messages_total", &[("inbox", "box")]), 0.0, "nor counted unmatched");
    assert_eq!(stack().messages("t-check", "").len(), 2, "both left in the mailbox");
}

#[test]
fn cleanup_moves_or_keeps_canaries_as_configured() {
    let s = stack();
    let dir = temp_dir("cleanup");
    let port = free_port();
    let config = format!(
        "{}providers:\n{}inboxes:\n{}    cleanup: {{ move: Canaries }}\n{}    cleanup: keep\nprobes:\n\
         \x20 - {{ name: moved, provider: relay, inbox: mover }}\n\
         \x20 - {{ name: kept, provider: relay, inbox: keeper }}\n",
        global("t-cleanup", port, &dir, "1h", "1m"),
        relay("relay"),
        inbox("mover", "t-move"),
        inbox("keeper", "t-keep"),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let moved = [route("moved", "relay", "mover").as_slice(), &[("placement", "inbox")]].concat();
    let kept = [route("kept", "relay", "keeper").as_slice(), &[("placement", "inbox")]].concat();
    mc.wait_until("both delivered", WAIT, |m| {
        m.value("mailcanary_canaries_delivered_total", &moved) >= 1.0
            && m.value("mailcanary_canaries_delivered_total", &kept) >= 1.0
    });
    let in_canaries = s.wait_messages("t-move", "Canaries", 1);
    assert_eq!(in_canaries.len(), 1, "the canary was moved to Canaries");
    assert!(in_canaries[0].contains("X-Mailcanary-Token: mc1."));
    assert!(s.wait_messages("t-move", "", 0).is_empty(), "and is gone from INBOX");
    assert_eq!(s.messages("t-keep", "").len(), 1, "keep leaves it in INBOX");
}

#[test]
fn a_bad_reload_is_refused_and_a_good_one_applied() {
    let dir = temp_dir("reload");
    let port = free_port();
    let head = format!(
        "{}providers:\n{}inboxes:\n{}{}",
        global("t-reload", port, &dir, "2s", "1m"),
        relay("relay"),
        inbox("one", "t-reload-1"),
        inbox("two", "t-reload-2"),
    );
    let mc =
        Mailcanary::start(&dir, port, &format!("{head}probes:\n  - {{ name: first, provider: relay, inbox: one }}\n"));
    let first = [route("first", "relay", "one").as_slice(), &[("placement", "inbox")]].concat();
    mc.wait_until("a first delivery", WAIT, |m| m.value("mailcanary_canaries_delivered_total", &first) >= 1.0);

    // A config with a mistake: refused with its errors, the old one keeps probing.
    mc.rewrite_config(&format!("{head}probes:\n  - {{ name: first, provider: ses-prd, inbox: one }}\n"));
    let (code, body) = http(port, "POST", "/-/reload").unwrap();
    assert_eq!(code, 400);
    assert!(body.contains(r#"probes[0].provider: unknown provider "ses-prd""#), "{body}");
    let m = mc.metrics().unwrap();
    assert_eq!(m.get("mailcanary_config_last_reload_successful", &[]), Some(0.0));
    let before = m.value("mailcanary_canaries_delivered_total", &first);
    mc.wait_until("deliveries under the old config", WAIT, |m| {
        m.value("mailcanary_canaries_delivered_total", &first) >= before + 1.0
    });

    // A good one by SIGHUP: a second route starts, the first goes on.
    mc.rewrite_config(&format!(
        "{head}probes:\n  - {{ name: first, provider: relay, inbox: one }}\n  - {{ name: second, provider: relay, inbox: two }}\n"
    ));
    mc.signal("HUP");
    let second = [route("second", "relay", "two").as_slice(), &[("placement", "inbox")]].concat();
    let m = mc.wait_until("the new route delivering", WAIT, |m| {
        m.value("mailcanary_canaries_delivered_total", &second) >= 1.0
    });
    assert_eq!(m.get("mailcanary_config_last_reload_successful", &[]), Some(1.0));
    let duplicates = m.value("mailcanary_unmatched_messages_total", &[("inbox", "one"), ("reason", "duplicate")]);
    assert_eq!(duplicates, 0.0, "the restarted watcher did not see a canary twice");
}

#[test]
fn replayed_and_unknown_canaries_are_counted_and_left_alone() {
    let s = stack();
    let dir = temp_dir("replay");
    let port = free_port();
    let key = "replay-test-signing-key-0123456789";
    let retired = "the-key-before-the-last-rotation";
    let config = format!(
        "{}  signing_key: \"{key}\"\n  retired_signing_keys: [\"{retired}\"]\nproviders:\n{}inboxes:\n{}    cleanup: keep\nprobes:\n  - {{ name: replayed, provider: relay, inbox: box }}\n",
        global("t-replay", port, &dir, "1h", "1m"),
        relay("relay"),
        inbox("box", "t-replay"),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let labels = route("replayed", "relay", "box");
    let delivered = [labels.as_slice(), &[("placement", "inbox")]].concat();
    mc.wait_until("the canary", WAIT, |m| m.value("mailcanary_canaries_delivered_total", &delivered) >= 1.0);
    let original = s.wait_messages("t-replay", "", 1).remove(0);
    let headers_end = original.find("\n\n").unwrap();
    let token_line = original[..headers_end].lines().find(|l| l.starts_with("X-Mailcanary-Token:")).unwrap();
    let to = format!("{}@mailcanary.test", user("t-replay"));
    // A replay of the real canary, and a genuine token for a canary this
    // instance never sent (a probe since removed, or a pruned ledger).
    s.inject(&to, &format!("Subject: replay\n{token_line}\n\nreplayed\n"));
    let unknown = signed_token("t-replay", "removed-probe", "neverSentAtAll01", key);
    s.inject(&to, &format!("Subject: unknown\nX-Mailcanary-Token: {unknown}\n\nunknown\n"));
    // Signed with the key before a rotation: it verifies (expired, as this
    // instance never sent it), it is not forged.
    let before_rotation = signed_token("t-replay", "replayed", "sentBeforeRotate", retired);
    s.inject(&to, &format!("Subject: rotated\nX-Mailcanary-Token: {before_rotation}\n\nrotated\n"));
    let reason = |r| [("inbox", "box"), ("reason", r)];
    let m = mc.wait_until("the replay and the unknown canaries counted", WAIT, |m| {
        m.value("mailcanary_unmatched_messages_total", &reason("duplicate")) >= 1.0
            && m.value("mailcanary_unmatched_messages_total", &reason("expired")) >= 2.0
    });
    assert_eq!(m.value("mailcanary_unmatched_messages_total", &reason("forged")), 0.0, "the retired key verifies");
    assert_eq!(m.value("mailcanary_canaries_delivered_total", &delivered), 1.0, "counted once");
    assert_eq!(m.value("mailcanary_canaries_late_total", &labels), 0.0);
    assert_eq!(s.wait_messages("t-replay", "", 4).len(), 4, "all left in the mailbox (cleanup: keep)");
}

#[test]
fn authentication_results_and_hops_are_counted_and_shown() {
    let dir = temp_dir("insight");
    let port = free_port();
    const DETAIL: &str = "  metrics: { detail: [auth, hops, send_duration] }\n";
    let config = format!(
        "{}{DETAIL}providers:\n{}inboxes:\n{}probes:\n  - {{ name: insight, provider: relay, inbox: box }}\n",
        global("t-insight", port, &dir, "1h", "1m"),
        relay("relay"),
        inbox("box", "auth-t-insight"),
    );
    let mc = Mailcanary::start(&dir, port, &config);
    let labels = route("insight", "relay", "box");
    let delivered = [labels.as_slice(), &[("placement", "inbox")]].concat();
    let m = mc.wait_until("the canary", WAIT, |m| m.value("mailcanary_canaries_delivered_total", &delivered) >= 1.0);
    let verdict = |method, result| [labels.as_slice(), &[("method", method), ("result", result)]].concat();
    assert_eq!(m.get("mailcanary_auth_results_total", &verdict("spf", "pass")), Some(1.0));
    assert_eq!(m.get("mailcanary_auth_results_total", &verdict("dkim", "fail")), Some(1.0));
    assert_eq!(m.get("mailcanary_auth_results_total", &verdict("dmarc", "fail")), Some(1.0));
    assert_eq!(m.get("mailcanary_auth_results_total", &verdict("arc", "fail")), Some(0.0), "exists at 0");
    // Postfix received it over SMTP, then Dovecot over LMTP: two hops.
    for hop in ["1", "2"] {
        let l = [labels.as_slice(), &[("hop", hop)]].concat();
        assert_eq!(m.get("mailcanary_hop_delay_seconds_count", &l), Some(1.0), "hop {hop}");
    }
    assert_eq!(m.get("mailcanary_hop_timestamps_unusable_total", &labels), Some(0.0));
    assert!(
        m.get("mailcanary_send_duration_seconds_bucket", &[labels.as_slice(), &[("le", "0.5")]].concat()).is_some()
    );
    promtool_accepts(&m);
    let status = mc.status();
    let route = &status["routes"][0];
    assert_eq!(route["last_hops"].as_array().unwrap().len(), 2, "{status}");
    assert_eq!(route["last_hops"][0]["by"], "mx.mailcanary.test");
    assert_eq!(route["last_hops"][0]["tls"], false);
    assert_eq!(route["last_auth"][1]["method"], "dkim");
    assert_eq!(route["last_auth"][1]["result"], "fail");

    // The ledger keeps the hops: `report` shows the path of the last canary.
    let text = run_cli(&dir, &["report", "--since", "1h"]);
    assert!(text.contains("path of the last canary seen"), "{text}");
    assert!(text.contains("hop 1") && text.contains("hop 2") && text.contains("mx.mailcanary.test"), "{text}");

    let text = run_cli(&dir, &["check", "--probe", "insight"]);
    assert!(text.contains("authentication: spf=pass dkim=fail dmarc=fail"), "{text}");
    assert!(text.contains("hop 1") && text.contains("hop 2") && text.contains("mx.mailcanary.test"), "{text}");

    // A reload without the detail takes its series away, and the route is
    // back to its default cost; status, report and check keep the path.
    mc.rewrite_config(&config.replace(DETAIL, ""));
    mc.signal("HUP");
    let m =
        mc.wait_until("the opt-in series removed", WAIT, |m| m.get("mailcanary_auth_results_total", &labels).is_none());
    assert_eq!(m.get("mailcanary_hop_delay_seconds_count", &labels), None);
    assert_eq!(m.get("mailcanary_config_last_reload_successful", &[]), Some(1.0));
    assert_eq!(route_series(&m, "insight"), 32, "{}", m.0);
    assert_eq!(mc.status()["routes"][0]["last_hops"].as_array().unwrap().len(), 2);
}
