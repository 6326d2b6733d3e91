#!/usr/bin/python3
"""Local stand-ins for the hosted sending APIs mailcanary supports, for tests.

Each one holds a request to the provider's documented contract (auth scheme,
method and path, content type, required fields) and answers the way the
provider documents it: on success with its status, body and message id, after
relaying the message into a real SMTP server (the local Postfix), so a test
sees the canary arrive over IMAP. SES signatures are checked with botocore,
an implementation independent of the one mailcanary uses.

Failure modes are chosen by the recipient's local part, like the mail stack:
  throttle-*  rate limited          reject-*  rejected recipient
  error-*     internal server error stall-*   no answer for 30 s
A wrong credential gets the provider's documented authentication error.

    providers.py --port P --smtp-port S
"""

import argparse
import base64
import hmac
import json
import re
import smtplib
import sys
import time
import uuid
from datetime import datetime, timezone
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

# The credentials each stand-in accepts (tests put the same ones in their config).
AWS_ACCESS_KEY_ID = "AKIAMAILCANARYTEST01"
AWS_SECRET_ACCESS_KEY = "mailcanary/test/secret+key/0123456789ab"
AWS_REGION = "eu-west-1"
SENDGRID_KEY = "SG.mailcanary-test.sendgrid-key"
MAILGUN_KEY = "key-mailcanary-test-mailgun"
MAILGUN_DOMAIN = "mg.mailcanary.test"
POSTMARK_TOKEN = "00000000-mailcanary-postmark-token"
RESEND_KEY = "re_mailcanary_test_resend_key"
TOKEN_HEADER = "X-Mailcanary-Token"

SMTP_PORT = 25


class Refusal(Exception):
    """An error answer: HTTP status, body (dict or text), extra headers."""

    def __init__(self, status, body, headers=None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def mode(address):
    local = address.split("@", 1)[0].lower()
    for prefix in ("throttle-", "reject-", "error-", "stall-"):
        if local.startswith(prefix):
            return prefix[:-1]
    return None


def relay(sender, recipient, raw):
    with smtplib.SMTP("127.0.0.1", SMTP_PORT, timeout=10) as smtp:
        smtp.sendmail(sender, [recipient], raw)


def build(sender, recipient, subject, text, headers):
    """The message a provider would build from API fields."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, recipient, subject
    msg["Message-ID"] = f"<{uuid.uuid4()}@standin.mailcanary.test>"
    for name, value in headers:
        msg[name] = value
    msg.set_content(text)
    return msg.as_bytes()


def require(condition, status, body):
    if not condition:
        raise Refusal(status, body)


# --- Amazon SES v2 SendEmail --------------------------------------------------

def ses_error(status, name, message):
    return Refusal(status, {"message": message}, {"x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazonaws.sesv2/"})


def ses_verify(handler, body):
    headers = handler.headers
    auth = headers.get("Authorization", "")
    if not auth:
        raise ses_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    m = re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})",
        auth,
    )
    if not m:
        raise ses_error(403, "IncompleteSignatureException", "Authorization header requires Credential, SignedHeaders and Signature")
    key_id, date, region, service, signed, signature = m.groups()
    if key_id != AWS_ACCESS_KEY_ID:
        raise ses_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    amz_date = headers.get("X-Amz-Date", "")
    require(amz_date[:8] == date and region == AWS_REGION and service == "ses", 403,
            {"message": "Credential should be scoped to a valid region and service"})
    when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    if abs((datetime.now(timezone.utc) - when).total_seconds()) > 300:
        raise ses_error(403, "InvalidSignatureException", "Signature expired")
    names = signed.split(";")
    require("host" in names and "x-amz-date" in names, 403, {"message": "host and x-amz-date must be signed"})
    request = AWSRequest(
        method=handler.command,
        url=f"http://{headers['Host']}{handler.path}",
        data=body,
        headers={name: headers.get(name, "") for name in names},
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, headers.get("X-Amz-Security-Token")), "ses", AWS_REGION)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, signature):
        raise ses_error(403, "InvalidSignatureException",
                        "The request signature we calculated does not match the signature you provided.")


def ses(handler, body):
    require(handler.path == "/v2/email/outbound-emails", 404, {"message": "Not Found"})
    ses_verify(handler, body)
    require(handler.headers.get("Content-Type", "").startswith("application/json"), 400,
            {"message": "Content-Type must be application/json"})
    try:
        req = json.loads(body)
        sender = req["FromEmailAddress"]
        recipients = req["Destination"]["ToAddresses"]
        raw = base64.b64decode(req["Content"]["Raw"]["Data"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise ses_error(400, "BadRequestException", "FromEmailAddress, Destination.ToAddresses and Content.Raw.Data are required")
    require(isinstance(recipients, list) and len(recipients) == 1, 400, {"message": "one recipient expected"})
    require(f"\n{TOKEN_HEADER}: ".encode() in raw, 400, {"message": "the canary header is missing from the raw message"})
    recipient = recipients[0]
    fail = mode(recipient)
    if fail == "throttle":
        raise ses_error(429, "TooManyRequestsException", "Too Many Requests")
    if fail == "reject":
        raise ses_error(400, "MessageRejected", f"Email address is not verified. The following identities failed the check: {recipient}")
    if fail == "error":
        raise ses_error(500, "InternalFailure", "The request processing has failed because of an unknown error.")
    # SES sends from its own envelope address and forwards bounces to the
    # feedback address (the sender by default); relaying with that envelope
    # sender lets the real Postfix deliver its DSN there.
    feedback = req.get("FeedbackForwardingEmailAddress", sender)
    if not isinstance(feedback, str) or "@" not in feedback:
        raise ses_error(400, "BadRequestException", "FeedbackForwardingEmailAddress is not a valid email address")
    relay(feedback, recipient, raw)
    return 200, {"MessageId": f"0102019{uuid.uuid4().hex}-000000"}, {}


# --- SendGrid v3 mail/send ------------------------------------------------------

def sendgrid_error(status, message, field=None):
    return Refusal(status, {"errors": [{"message": message, "field": field, "help": None}]})


def sendgrid(handler, body):
    require(handler.path == "/v3/mail/send", 404, {"errors": [{"message": "not found"}]})
    if handler.headers.get("Authorization", "") != f"Bearer {SENDGRID_KEY}":
        raise sendgrid_error(401, "The provided authorization grant is invalid, expired, or revoked")
    require(handler.headers.get("Content-Type", "").startswith("application/json"), 415,
            {"errors": [{"message": "Content-Type should be application/json."}]})
    try:
        req = json.loads(body)
        recipient = req["personalizations"][0]["to"][0]["email"]
        sender = req["from"]["email"]
        subject = req["subject"]
        content = req["content"][0]
        headers = req.get("headers", {})
    except (ValueError, KeyError, IndexError, TypeError):
        raise sendgrid_error(400, "The personalizations, from, subject and content fields are required.", "personalizations")
    require(content.get("type") == "text/plain" and content.get("value"), 400,
            {"errors": [{"message": "content must have a type and a value", "field": "content"}]})
    reserved = {"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type", "content-transfer-encoding",
                "to", "from", "subject", "reply-to", "cc", "bcc"}
    for name in headers:
        require(name.lower() not in reserved, 400, {"errors": [{"message": f"{name} is a reserved header", "field": "headers"}]})
    require(TOKEN_HEADER in headers, 400, {"errors": [{"message": "the canary header is missing", "field": "headers"}]})
    fail = mode(recipient)
    if fail == "throttle":
        raise sendgrid_error(429, "too many requests")
    if fail == "reject":
        raise sendgrid_error(400, "The from address does not match a verified Sender Identity.", "from")
    if fail == "error":
        raise sendgrid_error(500, "internal error")
    relay(sender, recipient, build(sender, recipient, subject, content["value"], headers.items()))
    return 202, "", {"X-Message-Id": uuid.uuid4().hex[:22]}


# --- Mailgun messages -------------------------------------------------------------

def mailgun(handler, body):
    m = re.fullmatch(r"/v3/([^/]+)/messages", handler.path)
    require(m is not None, 404, {"message": "Not Found"})
    expected = "Basic " + base64.b64encode(f"api:{MAILGUN_KEY}".encode()).decode()
    if handler.headers.get("Authorization", "") != expected:
        raise Refusal(401, "Forbidden")
    require(m.group(1) == MAILGUN_DOMAIN, 404, {"message": f"Domain not found: {m.group(1)}"})
    require(handler.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"), 400,
            {"message": "expected form data"})
    form = parse_qs(body.decode(), keep_blank_values=True)
    for field in ("from", "to", "subject"):
        require(form.get(field, [""])[0], 400, {"message": f"'{field}' parameter is missing"})
    require(form.get("text") or form.get("html"), 400, {"message": "Need at least one of 'text' or 'html' parameters specified"})
    headers = [(k[2:], v[0]) for k, v in form.items() if k.startswith("h:")]
    require(any(name == TOKEN_HEADER for name, _ in headers), 400, {"message": "the canary header is missing"})
    sender, recipient = form["from"][0], form["to"][0]
    fail = mode(recipient)
    if fail == "throttle":
        raise Refusal(429, {"message": "Too many requests"})
    if fail == "reject":
        raise Refusal(400, {"message": f"to parameter is not a valid address: {recipient}"})
    if fail == "error":
        raise Refusal(500, {"message": "Internal Server Error"})
    relay(sender, recipient, build(sender, recipient, form["subject"][0], form["text"][0], headers))
    return 200, {"id": f"<{uuid.uuid4().hex}@{MAILGUN_DOMAIN}>", "message": "Queued. Thank you."}, {}


# --- Postmark email -----------------------------------------------------------------

def postmark(handler, body):
    require(handler.path == "/email", 404, {"ErrorCode": 404, "Message": "Not Found"})
    if handler.headers.get("X-Postmark-Server-Token", "") != POSTMARK_TOKEN:
        raise Refusal(401, {"ErrorCode": 10, "Message": "The Server Token you provided in the X-Postmark-Server-Token request header was invalid."})
    require(handler.headers.get("Accept", "") == "application/json"
            and handler.headers.get("Content-Type", "").startswith("application/json"), 415,
            {"ErrorCode": 300, "Message": "Accept and Content-Type must be application/json"})
    try:
        req = json.loads(body)
        sender, recipient, subject = req["From"], req["To"], req["Subject"]
        text = req.get("TextBody") or req["HtmlBody"]
        headers = [(h["Name"], h["Value"]) for h in req.get("Headers", [])]
    except (ValueError, KeyError, TypeError):
        raise Refusal(422, {"ErrorCode": 300, "Message": "Invalid email request"})
    require(any(name == TOKEN_HEADER for name, _ in headers), 422, {"ErrorCode": 300, "Message": "Invalid email request"})
    fail = mode(recipient)
    if fail == "throttle":
        raise Refusal(429, {"ErrorCode": 429, "Message": "Rate limit exceeded"})
    if fail == "reject":
        raise Refusal(422, {"ErrorCode": 406, "Message": "You tried to send to a recipient that has been marked as inactive."})
    if fail == "error":
        raise Refusal(500, {"ErrorCode": 500, "Message": "Internal server error"})
    relay(sender, recipient, build(sender, recipient, subject, text, headers))
    return 200, {"To": recipient, "SubmittedAt": datetime.now(timezone.utc).isoformat(),
                 "MessageID": str(uuid.uuid4()), "ErrorCode": 0, "Message": "OK"}, {}


# --- Resend emails ------------------------------------------------------------------

def resend_error(status, name, message):
    return Refusal(status, {"statusCode": status, "name": name, "message": message})


def resend(handler, body):
    require(handler.path == "/emails", 404, {"statusCode": 404, "name": "not_found", "message": "Not Found"})
    auth = handler.headers.get("Authorization", "")
    if not auth:
        raise resend_error(401, "missing_api_key", "Missing API key in the authorization header")
    if auth != f"Bearer {RESEND_KEY}":
        raise resend_error(403, "invalid_api_key", "API key is invalid")
    try:
        req = json.loads(body)
        sender, subject = req["from"], req["subject"]
        to = req["to"]
        recipient = to[0] if isinstance(to, list) else to
        text = req.get("text") or req["html"]
        headers = req.get("headers", {})
    except (ValueError, KeyError, IndexError, TypeError):
        raise resend_error(422, "missing_required_field", "from, to, subject and text or html are required")
    require(TOKEN_HEADER in headers, 422, {"statusCode": 422, "name": "validation_error", "message": "canary header missing"})
    fail = mode(recipient)
    if fail == "throttle":
        raise resend_error(429, "rate_limit_exceeded", "Too many requests. You can only make 2 requests per second.")
    if fail == "reject":
        raise resend_error(422, "validation_error", f"Invalid `to` field. {recipient} is not allowed.")
    if fail == "error":
        raise resend_error(500, "internal_server_error", "An unexpected error occurred.")
    relay(sender, recipient, build(sender, recipient, subject, text, headers.items()))
    return 200, {"id": str(uuid.uuid4())}, {}


def route(path):
    if path.startswith("/v2/email/"):
        return ses
    if path == "/v3/mail/send":
        return sendgrid
    if path.startswith("/v3/"):
        return mailgun
    return {"/email": postmark, "/emails": resend}.get(path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        handler = route(urlsplit(self.path).path)
        try:
            if handler is None:
                raise Refusal(404, {"message": "no such API"})
            if b"stall-" in body:
                time.sleep(30)
            status, answer, headers = handler(self, body)
        except Refusal as refusal:
            status, answer, headers = refusal.status, refusal.body, refusal.headers
        except (smtplib.SMTPException, OSError) as e:
            status, answer, headers = 500, {"message": f"relay failed: {e}"}, {}
        data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode() if answer != "" else b""
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "text/plain" if isinstance(answer, str) else "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("standin: " + fmt % args + "\n")


def main():
    global SMTP_PORT
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--smtp-port", type=int, required=True)
    args = parser.parse_args()
    SMTP_PORT = args.smtp_port
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"standin: listening on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
