#!/usr/bin/python3
"""A small web application that sends its own password-reset email, for the
application canary tests: the thing mailcanary's `trigger:` makes send.

    POST /password-reset?mode=M   body {"email": "..."}, header
                                  Authorization: Bearer test-app-key
        sends "Reset your password" from no-reply@shop.mailcanary.test to
        that address, through the local Postfix (real SMTP), with a link to
        GET /reset/<token> on this server, and answers 200. The mode breaks
        it the way applications break:
          ok            as above
          error         answers 500, sends nothing (the template threw)
          silent        answers 200, sends nothing (a dead queue worker)
          wrong-subject sends "Welcome to the shop" instead
          dead-link     the link points at /expired/<token>, which is 404
          slow-link     the link points at /slow/<token>, which answers
                        only once released (POST /release), or after 120 s
        A wrong or missing key answers 401.
    GET /reset/<token>   200 for a token this server issued, else 404
    GET /slow/<token>    as /reset/, once released; "following" lists the
                         tokens whose link is being followed meanwhile
    POST /release        lets every slow link answer, from now on
    GET /stats           what was asked of it, as JSON

    app.py --port P --smtp-port S
"""

import argparse
import json
import secrets
import smtplib
import sys
import threading
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

KEY = "test-app-key"
SENDER = "no-reply@shop.mailcanary.test"
ARGS = None
LOCK = threading.Lock()
STATS = {"requests": [], "followed": [], "following": [], "tokens": []}
RELEASED = threading.Event()
SLOW_LIMIT = 120


def send(recipient, subject, link):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = f"Shop <{SENDER}>", recipient, subject
    msg.set_content(f"Someone asked to reset your password. If it was you, open:\n\n{link}\n")
    msg.add_alternative(f'<p>Someone asked to reset your password.</p><p><a href="{link}">Reset it</a></p>', subtype="html")
    with smtplib.SMTP("127.0.0.1", ARGS.smtp_port, timeout=10) as smtp:
        smtp.send_message(msg)


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        if url.path == "/release":
            RELEASED.set()
            return self.answer(200, {"released": True})
        if url.path != "/password-reset":
            return self.answer(404, {"error": "not found"})
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            return self.answer(401, {"error": "bad key"})
        mode = parse_qs(url.query).get("mode", ["ok"])[0]
        try:
            email = json.loads(body)["email"]
        except (ValueError, KeyError, TypeError):
            return self.answer(400, {"error": "email required"})
        with LOCK:
            STATS["requests"].append({"mode": mode, "email": email})
        if mode == "error":
            return self.answer(500, {"error": "template error"})
        if mode != "silent":
            token = secrets.token_urlsafe(16)
            with LOCK:
                STATS["tokens"].append(token)
            path = {"dead-link": "expired", "slow-link": "slow"}.get(mode, "reset")
            subject = "Welcome to the shop" if mode == "wrong-subject" else "Reset your password"
            send(email, subject, f"http://127.0.0.1:{ARGS.port}/{path}/{token}")
        self.answer(200, {"status": "sent"})

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/stats":
            with LOCK:
                return self.answer(200, STATS)
        if path.startswith("/slow/"):
            token = path[len("/slow/"):]
            with LOCK:
                STATS["following"].append(token)
            RELEASED.wait(SLOW_LIMIT)
            path = "/reset/" + token
        if path.startswith("/reset/"):
            token = path[len("/reset/"):]
            with LOCK:
                known = token in STATS["tokens"]
                if known:
                    STATS["followed"].append(token)
            return self.answer(200 if known else 404, {"reset": known})
        self.answer(404, {"error": "not found"})

    def log_message(self, fmt, *args):
        pass


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--smtp-port", type=int, required=True)
    ARGS = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    print("ready", flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
