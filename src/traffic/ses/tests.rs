use super::*;

/// SES's documented event records (the SNS `Message`).
pub(crate) const BOUNCE: &str = r#"{"eventType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General","bouncedRecipients":[{"emailAddress":"recipient@example.com","action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}],"timestamp":"2017-08-05T00:41:02.669Z","feedbackId":"01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000","reportingMTA":"dsn; mta.example.com"},"mail":{"timestamp":"2017-08-05T00:40:02.012Z","source":"Sender Name <sender@example.com>","sourceArn":"arn:aws:ses:us-east-1:123456789012:identity/sender@example.com","sendingAccountId":"123456789012","messageId":"EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000","destination":["recipient@example.com"],"headersTruncated":false,"headers":[],"commonHeaders":{"from":["Sender Name <sender@example.com>"],"to":["Recipient Name <recipient@example.com>"],"messageId":"EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000","subject":"Message sent from Amazon SES"},"tags":{"ses:configuration-set":["ConfigSet"]}}}"#;

pub(crate) const DELIVERY: &str = r#"{"eventType":"Delivery","mail":{"timestamp":"2016-10-19T23:20:52.240Z","source":"sender@example.com","sourceArn":"arn:aws:ses:us-east-1:123456789012:identity/sender@example.com","sendingAccountId":"123456789012","messageId":"EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000","destination":["recipient@example.com"],"headersTruncated":false,"commonHeaders":{"from":["sender@example.com"],"to":["recipient@example.com"],"messageId":"EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000","subject":"Message sent from Amazon SES"}},"delivery":{"timestamp":"2016-10-19T23:21:04.133Z","processingTimeMillis":11893,"recipients":["recipient@example.com"],"smtpResponse":"250 2.6.0 Message received","reportingMTA":"mta.example.com"}}"#;

const DELAY: &str = r#"{"eventType":"DeliveryDelay","mail":{"timestamp":"2020-06-16T00:15:40.641Z","source":"sender@example.com","sendingAccountId":"123456789012","messageId":"EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000","destination":["recipient@example.com","second@example.com"]},"deliveryDelay":{"timestamp":"2020-06-16T00:25:40.095Z","delayType":"TransientCommunicationFailure","expirationTime":"2020-06-16T00:25:40.914Z","delayedRecipients":[{"emailAddress":"recipient@example.com","status":"4.4.1","diagnosticCode":"smtp; 421 4.4.1 Unable to connect to remote host"},{"emailAddress":"second@example.com","status":"4.4.1","diagnosticCode":"smtp; 421 4.4.1 Unable to connect to remote host"}]}}"#;

const COMPLAINT: &str = r#"{"notificationType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"recipient@example.com"}],"timestamp":"2017-08-05T00:41:02.669Z","feedbackId":"01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000","userAgent":"Mozilla/5.0","complaintFeedbackType":"abuse","arrivalDate":"2017-08-05T00:41:02.669Z"},"mail":{"timestamp":"2017-08-05T00:40:01.123Z","source":"sender@example.com","messageId":"EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000","destination":["recipient@example.com"]}}"#;

#[test]
fn documented_records_become_one_event_per_recipient() {
    let e = &events("sns-1", &serde_json::from_str(BOUNCE).unwrap()).unwrap()[0];
    assert_eq!((e.kind, e.event_id.as_str()), (Kind::Bounced(BounceKind::Permanent), "sns-1"));
    assert_eq!((e.at_ms, e.sent_ms), (1_501_893_662_669, Some(1_501_893_602_012)));
    assert_eq!(e.detail.as_deref(), Some("5.1.1 smtp; 550 5.1.1 user unknown"));
    assert_eq!(e.recipient.as_deref(), Some("recipient@example.com"));
    let e = &events("sns-2", &serde_json::from_str(DELIVERY).unwrap()).unwrap()[0];
    assert_eq!((e.kind, e.detail.as_deref()), (Kind::Delivered, Some("250 2.6.0 Message received")));
    assert_eq!(e.smtp_id.as_deref(), Some("EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"));
    let delayed = events("sns-3", &serde_json::from_str(DELAY).unwrap()).unwrap();
    assert_eq!(delayed.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(), ["sns-3/0", "sns-3/1"]);
    assert!(delayed.iter().all(|e| e.kind == Kind::Deferred));
    assert!(delayed[0].detail.as_deref().unwrap().starts_with("TransientCommunicationFailure 4.4.1"));
    let e = &events("sns-4", &serde_json::from_str(COMPLAINT).unwrap()).unwrap()[0];
    assert_eq!(e.kind, Kind::Complained, "feedback notifications (notificationType) too");
    let open = r#"{"eventType":"Open","mail":{"messageId":"m"}}"#;
    assert!(events("sns-5", &serde_json::from_str(open).unwrap()).unwrap().is_empty());
    assert!(events("sns-6", &serde_json::from_str(r#"{"eventType":"Delivery"}"#).unwrap()).is_err());
}

#[test]
fn topic_arns_name_their_region() {
    assert_eq!(topic_region("arn:aws:sns:us-east-1:123456789012:ses-events"), Some("us-east-1"));
    assert_eq!(topic_region("arn:aws-cn:sns:cn-north-1:123456789012:t"), Some("cn-north-1"));
    for bad in
        ["arn:aws:sqs:us-east-1:123456789012:q", "arn:aws:sns:us-east-1:1234:t", "arn:aws:sns::123456789012:t", "x"]
    {
        assert_eq!(topic_region(bad), None, "{bad}");
    }
}
