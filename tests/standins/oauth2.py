#!/usr/bin/python3
"""An OAuth2 authorization server for tests: the token endpoint mailcanary
refreshes access tokens from, and the introspection endpoint the local
Dovecot asks whether a token is good.

  POST /token       RFC 6749 §6 refresh-token grant. Requires
                    application/x-www-form-urlencoded, grant_type=refresh_token,
                    the client's id and secret (in the form or HTTP Basic), and
                    a refresh token granted through /control. Answers as RFC
                    6749 §5.1/§5.2 say: access_token, token_type Bearer,
                    expires_in; or 400 invalid_grant / 401 invalid_client.
  POST /introspect  RFC 7662: token=... -> {"active": true, "username": ...}
                    while the token is issued, unexpired and not revoked.
  POST /control     the test's levers (JSON): {"grant": {"refresh_token", "username"}},
                    {"expires_in": N}, {"revoke_access": true}, {"revoke_refresh": true}
  GET  /stats       {"refreshes": {refresh_token: n}, "issued": [tokens...],
                    "introspections": n}

    oauth2.py --port P --client-id ID --client-secret SECRET
"""

import argparse
import base64
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote

LOCK = threading.Lock()
STATE = {
    "grants": {},          # refresh token -> username
    "access": {},          # access token -> (username, expires at)
    "expires_in": 3600,
    "refreshes": {},       # refresh token -> count
    "introspections": 0,
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))

    def do_GET(self):
        if self.path != "/stats":
            return self.answer(404, {"error": "not_found"})
        with LOCK:
            return self.answer(200, {
                "refreshes": STATE["refreshes"],
                "issued": list(STATE["access"].keys()),
                "introspections": STATE["introspections"],
            })

    def do_POST(self):
        body = self.body()
        if self.path == "/token":
            return self.token(body)
        if self.path == "/introspect":
            return self.introspect(body)
        if self.path == "/control":
            return self.control(json.loads(body or b"{}"))
        return self.answer(404, {"error": "not_found"})

    def token(self, body):
        if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return self.answer(400, {"error": "invalid_request",
                                     "error_description": "Content-Type must be application/x-www-form-urlencoded"})
        form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            client_id, client_secret = unquote(user), unquote(password)
        if client_id != ARGS.client_id or client_secret != ARGS.client_secret:
            return self.answer(401, {"error": "invalid_client", "error_description": "Unauthorized client."},
                               {"WWW-Authenticate": 'Basic realm="token"'})
        if form.get("grant_type") != "refresh_token":
            return self.answer(400, {"error": "unsupported_grant_type"})
        refresh = form.get("refresh_token", "")
        with LOCK:
            username = STATE["grants"].get(refresh)
            if username is None:
                return self.answer(400, {"error": "invalid_grant",
                                         "error_description": "Token has been expired or revoked."})
            token = "at-" + secrets.token_urlsafe(24)
            STATE["access"][token] = (username, time.time() + STATE["expires_in"])
            STATE["refreshes"][refresh] = STATE["refreshes"].get(refresh, 0) + 1
            lifetime = STATE["expires_in"]
        return self.answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": lifetime,
                                 "scope": form.get("scope", "https://mail.google.com/")})

    def introspect(self, body):
        form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        with LOCK:
            STATE["introspections"] += 1
            entry = STATE["access"].get(form.get("token", ""))
        if entry is None or entry[1] < time.time():
            return self.answer(200, {"active": False})
        return self.answer(200, {"active": True, "username": entry[0], "token_type": "Bearer"})

    def control(self, req):
        with LOCK:
            if "grant" in req:
                STATE["grants"][req["grant"]["refresh_token"]] = req["grant"]["username"]
            if "expires_in" in req:
                STATE["expires_in"] = int(req["expires_in"])
            if req.get("revoke_access"):
                STATE["access"] = {t: (u, 0) for t, (u, _) in STATE["access"].items()}
            if req.get("revoke_refresh"):
                STATE["grants"] = {}
        return self.answer(200, {"ok": True})

    def log_message(self, fmt, *args):
        pass


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--client-secret", required=True)
    ARGS = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    print("ready", flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
