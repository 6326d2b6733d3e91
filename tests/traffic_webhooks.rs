//! The real-traffic webhooks against `mailcanary run`: each provider's
//! documented example payloads, signed as the provider documents with keys
//! made here, are recorded once; retries change nothing; forged, tampered,
//! replayed (stale or reused), malformed and oversized deliveries are
//! refused with their status, counted by reason, and change nothing.

mod common;
#[path = "common/webhooks.rs"]
mod webhooks;

use common::*;
use webhooks::*;

const MG_KEY: &str = "key-mailgun-signing-test";
const PM_PASSWORD: &str = "pm pass: with colon";
const RS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// SendGrid's documented events (their event ids made distinct).
const SG_EVENTS: &str = r#"[
  {"email":"example@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"processed","category":"cat facts","sg_event_id":"sg-1","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"},
  {"email":"example@test.com","timestamp":1513299570,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"deferred","category":"cat facts","sg_event_id":"sg-2","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0","response":"400 try again later","attempt":"5"},
  {"email":"example@test.com","timestamp":1513299689,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"delivered","category":"cat facts","sg_event_id":"sg-3","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0","response":"250 OK"},
  {"email":"example@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce93.dfd.64b469@ismtpd-555>","event":"open","sg_event_id":"sg-4","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0","useragent":"Mozilla/4.0","ip":"255.255.255.255"},
  {"email":"other@test.com","timestamp":1513299569,"smtp-id":"<14c5d75ce94.dfd.64b469@ismtpd-555>","event":"bounce","sg_event_id":"sg-5","sg_message_id":"14c5d75ce94.dfd.64b469.filter0001.16648.5515E0B88.0","reason":"500 unknown recipient","status":"5.0.0","type":"bounce"}
]"#;

/// Mailgun's documented `delivered` event-data.
const MG_DELIVERED: &str = r#"{"event": "delivered", "id": "CPgfbmQMTCKtHW6uIWtuVe", "timestamp": 1521472262.908181, "log-level": "info",
  "recipient": "alice@example.com", "message": {"headers": {"to": "Alice <alice@example.com>", "message-id": "20130503182626.18666.16540@sandbox.mailgun.org", "from": "Bob <bob@sandbox.mailgun.org>", "subject": "Test delivered webhook"}, "attachments": [], "size": 111},
  "delivery-status": {"tls": true, "mx-host": "smtp-in.example.com", "code": 250, "description": "", "session-seconds": 0.43, "utf8": true, "attempt-no": 1, "message": "OK", "certificate-verified": true}}"#;

/// Postmark's documented Bounce webhook.
const PM_BOUNCE: &str = r#"{"RecordType": "Bounce", "ID": 42, "Type": "HardBounce", "TypeCode": 1, "Name": "Hard bounce", "Tag": "Test",
  "MessageID": "00000000-0000-0000-0000-000000000000", "ServerID": 1234, "MessageStream": "outbound",
  "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).", "Details": "Test bounce details",
  "Email": "john@example.com", "From": "sender@example.com", "BouncedAt": "2021-02-21T16:34:52Z", "DumpAvailable": true,
  "Inactive": true, "CanActivate": true, "Subject": "Test subject", "Content": "Test content", "Metadata": {"a_key": "a_value"}}"#;

/// Resend's documented `email.delivery_delayed` event.
const RS_DELAYED: &str = r#"{"type":"email.delivery_delayed","created_at":"2026-02-22T23:41:12.126Z","data":{"broadcast_id":"8b146471-e88e-4322-86af-016cd36fd216","created_at":"2026-02-22T23:41:11.894719+00:00","email_id":"56761188-7520-42d8-8898-ff6fc54ce618","from":"Acme <onboarding@resend.dev>","to":["delivered@resend.dev"],"subject":"Sending this example","template_id":"43f68331-0622-4e15-8202-246a0388854b","tags":{"category":"confirm_email"}}}"#;

fn config(dir: &std::path::Path, port: u16, hooks: u16, sg_public: &str) -> String {
    format!(
        "{}traffic:\n  listen: \"127.0.0.1:{hooks}\"\n  sources:\n\
         \x20   - {{ name: sg, provider: sendgrid, type: sendgrid, path: /t/sendgrid, public_key: \"{sg_public}\", tolerance: 10m }}\n\
         \x20   - {{ name: mg, provider: mailgun, type: mailgun, path: /t/mailgun, signing_key: \"{MG_KEY}\", tolerance: 10m }}\n\
         \x20   - {{ name: pm, provider: postmark, type: postmark, path: /t/postmark, username: hook, password: \"{PM_PASSWORD}\" }}\n\
         \x20   - {{ name: rs, provider: resend, type: resend, path: /t/resend, secret: \"{RS_SECRET}\" }}\n",
        global("traffic", port, dir, "60s", "10m")
    )
}

#[test]
fn signed_documented_events_are_recorded_once_and_what_is_refused_changes_nothing() {
    let dir = temp_dir("traffic-hooks");
    let (port, hooks) = (free_port(), free_port());
    let sg = SendgridKey::new();
    let mc = Mailcanary::start(&dir, port, &config(&dir, port, hooks, &sg.public));
    wait_listening(hooks);
    let state = dir.join("state");
    let now = now_s();

    // SendGrid: a batch, then the same batch again (a retry).
    let (code, body) = post(hooks, "/t/sendgrid", &sg.sign(now, SG_EVENTS), SG_EVENTS.as_bytes());
    assert_eq!((code, body.as_str()), (200, "recorded 4, already had 0\n"), "the open is no delivery event");
    assert_eq!(
        post(hooks, "/t/sendgrid", &sg.sign(now, SG_EVENTS), SG_EVENTS.as_bytes()),
        (200, "recorded 0, already had 4\n".into())
    );
    let other = SendgridKey::new();
    assert_eq!(post(hooks, "/t/sendgrid", &other.sign(now, SG_EVENTS), SG_EVENTS.as_bytes()).0, 403, "another key");
    let tampered = SG_EVENTS.replace("250 OK", "550 NO");
    assert_eq!(post(hooks, "/t/sendgrid", &sg.sign(now, SG_EVENTS), tampered.as_bytes()).0, 403, "tampered");
    assert_eq!(post(hooks, "/t/sendgrid", &sg.sign(now - 601, SG_EVENTS), SG_EVENTS.as_bytes()).0, 403, "stale");
    assert_eq!(post(hooks, "/t/sendgrid", &[], SG_EVENTS.as_bytes()).0, 403, "unsigned");
    assert_eq!(post(hooks, "/t/sendgrid", &sg.sign(now, "[{}]"), b"[{}]").0, 400, "malformed");
    assert_eq!(post_declaring(hooks, "/t/sendgrid", 1024 * 1024 + 1), 413, "over the cap");
    assert_eq!(post_chunked(hooks, "/t/sendgrid", 2 * 1024 * 1024), 413, "over the cap, chunked: no length said");

    // Mailgun: its token is single-use with other events.
    let good = mailgun(MG_KEY, now, "tok-1", MG_DELIVERED);
    assert_eq!(post(hooks, "/t/mailgun", &[], good.as_bytes()).0, 200);
    assert_eq!(post(hooks, "/t/mailgun", &[], good.as_bytes()), (200, "recorded 0, already had 1\n".into()));
    let swapped = mailgun(
        MG_KEY,
        now,
        "tok-1",
        &MG_DELIVERED.replace("CPgfbmQMTCKtHW6uIWtuVe", "other-event").replace("\"delivered\"", "\"complained\""),
    );
    assert_eq!(post(hooks, "/t/mailgun", &[], swapped.as_bytes()).0, 403, "a token reused with other events");
    assert_eq!(post(hooks, "/t/mailgun", &[], mailgun("wrong-key", now, "tok-2", MG_DELIVERED).as_bytes()).0, 403);
    assert_eq!(post(hooks, "/t/mailgun", &[], mailgun(MG_KEY, now - 601, "tok-3", MG_DELIVERED).as_bytes()).0, 403);

    // Postmark: basic auth, or 401 asking for it.
    assert_eq!(post(hooks, "/t/postmark", &basic("hook", PM_PASSWORD), PM_BOUNCE.as_bytes()).0, 200);
    assert_eq!(
        post(hooks, "/t/postmark", &basic("hook", PM_PASSWORD), PM_BOUNCE.as_bytes()).1,
        "recorded 0, already had 1\n"
    );
    assert_eq!(post(hooks, "/t/postmark", &basic("hook", "guess"), PM_BOUNCE.as_bytes()).0, 401);
    assert_eq!(post(hooks, "/t/postmark", &[], PM_BOUNCE.as_bytes()).0, 401);

    // Resend: Svix signatures, five minutes of tolerance.
    assert_eq!(post(hooks, "/t/resend", &svix(RS_SECRET, "msg_1", now, RS_DELAYED), RS_DELAYED.as_bytes()).0, 200);
    assert_eq!(
        post(hooks, "/t/resend", &svix(RS_SECRET, "msg_1", now, RS_DELAYED), RS_DELAYED.as_bytes()).1,
        "recorded 0, already had 1\n"
    );
    assert_eq!(
        post(hooks, "/t/resend", &svix(RS_SECRET, "msg_2", now - 301, RS_DELAYED), RS_DELAYED.as_bytes()).0,
        403
    );
    let wrong = "whsec_c2VjcmV0LW9mLWFub3RoZXItZW5kcG9pbnQ=";
    assert_eq!(post(hooks, "/t/resend", &svix(wrong, "msg_3", now, RS_DELAYED), RS_DELAYED.as_bytes()).0, 403);
    assert_eq!(post(hooks, "/t/nowhere", &[], b"{}").0, 404);

    // The ledger holds each event once, nothing refused, and no address.
    assert_eq!(ledger_count(&state, "SELECT count(*) FROM traffic_events"), 4 + 1 + 1 + 1);
    assert_eq!(ledger_count(&state, "SELECT count(*) FROM traffic_messages"), 2 + 1 + 1 + 1);
    assert_eq!(ledger_count(&state, "SELECT count(*) FROM traffic_messages WHERE recipient LIKE '%@%'"), 0, "hashed");
    assert_eq!(ledger_count(&state, "SELECT count(*) FROM traffic_events WHERE event_id = 'other-event'"), 0);

    let m = mc.metrics().unwrap();
    let messages = |p: &str, o: &str| m.value("mailcanary_traffic_messages_total", &[("provider", p), ("outcome", o)]);
    assert_eq!(
        (messages("sendgrid", "deferred"), messages("sendgrid", "delivered"), messages("sendgrid", "bounced")),
        (1.0, 1.0, 1.0)
    );
    assert_eq!((messages("mailgun", "delivered"), messages("mailgun", "complained")), (1.0, 0.0));
    assert_eq!((messages("postmark", "bounced"), messages("resend", "deferred")), (1.0, 1.0));
    assert_eq!(m.value("mailcanary_traffic_bounces_total", &[("provider", "postmark"), ("kind", "permanent")]), 1.0);
    assert_eq!(
        m.value("mailcanary_traffic_delivery_delay_seconds_count", &[("provider", "sendgrid")]),
        1.0,
        "processed → delivered"
    );
    assert_eq!(m.value("mailcanary_traffic_delivery_delay_seconds_sum", &[("provider", "sendgrid")]), 120.0);
    let errors = |s: &str, r: &str| m.value("mailcanary_traffic_source_errors_total", &[("source", s), ("reason", r)]);
    assert_eq!(
        (errors("sg", "forged"), errors("sg", "stale"), errors("sg", "malformed"), errors("sg", "too_large")),
        (3.0, 1.0, 1.0, 2.0)
    );
    assert_eq!(
        (errors("sg", "duplicate"), errors("mg", "duplicate"), errors("pm", "duplicate"), errors("rs", "duplicate")),
        (4.0, 1.0, 1.0, 1.0)
    );
    assert_eq!((errors("mg", "forged"), errors("mg", "stale")), (1.0, 2.0), "a reused token is a replay");
    assert_eq!((errors("pm", "forged"), errors("rs", "forged"), errors("rs", "stale")), (2.0, 1.0, 1.0));
    assert_eq!(errors("mg", "certificate"), 0.0, "every series exists from the start");
    let log = mc.log();
    for secret in [MG_KEY, PM_PASSWORD, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
        assert!(!log.contains(secret) && !m.0.contains(secret), "a secret leaked");
    }
}
