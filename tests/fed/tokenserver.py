#!/usr/bin/python3
"""A token server for the federation suites: Anthropic's jwt-bearer
exchange (POST /v1/oauth/token) checked field by field, plus the identity
endpoints latch's sources talk to (GitHub Actions, GCP metadata, a plain
URL), on 127.0.0.1, over HTTP or HTTPS.

  tokenserver.py --dir DIR --jwks JWKS.json [--tls CERT.pem KEY.pem] [--port 0]
                 [--bind 127.0.0.1] [--issuer-key KEY.pem --issuer-kid KID]

DIR is the test's view of the server; every file in it is read when a
request comes, so a test changes the server's behaviour between requests:
  port          written (atomically) once listening
  requests.jsonl  one JSON line per request: t (time), method, path, query, headers
                (lowercased), body (JSON or text), verdict ("ok" or why
                not), action (the scripted action, if any)
  issued.txt    every access token handed out, one per line
  bad_tokens.txt  tokens sent in answers latch must refuse (no-expiry,
                mac, big), one per line
  expect.json   {"federation_rule_id","organization_id","service_account_id",
                "workspace_id","iss","aud"}: each key present is checked
                (null: the member must be absent)
  expires_in    the expires_in of the next tokens (default 3600)
  script        scripted faults, one line consumed per token request:
                ok | status N [json|oauth|text] | retry-after S | nonjson |
                big | no-token | no-expiry | mac | stall S | close | echo |
                close-before. The assertion is verified and its jti
                recorded for each, except close-before (closes the
                connection without reading the request).
  gha_request_token  the bearer token /gha requires
  idtoken       what GET /idtoken and /idtoken.json serve
  idtoken_header  optional "Name: value" that GET /idtoken* requires

Quiet: nothing on stderr but real crashes. SIGTERM stops it at once.
"""
import argparse
import fcntl
import importlib.util
import json
import os
import secrets
import select
import signal
import socket
import ssl
import string
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_spec = importlib.util.spec_from_file_location("fedjwt", os.path.join(os.path.dirname(os.path.abspath(__file__)), "jwt.py"))
fedjwt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fedjwt)

BETA = "oauth-2025-04-20,oidc-federation-2026-04-01"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
BODY_KEYS_REQUIRED = {"grant_type", "assertion", "federation_rule_id", "organization_id"}
BODY_KEYS_OPTIONAL = {"service_account_id", "workspace_id"}
URLSAFE = string.ascii_letters + string.digits + "-_"
BODY_MAX = 1 << 20


def token(n=40):
    return "sk-ant-oat01-" + "".join(secrets.choice(URLSAFE) for _ in range(n))


class State:
    def __init__(self, d, jwks, issuer_key, issuer_kid):
        self.dir = d
        self.jwks = jwks
        self.issuer_key = issuer_key
        self.issuer_kid = issuer_kid
        self.lock = threading.Lock()
        self.seen_jti = set()
        self.gha_count = 0

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name, default=None):
        try:
            with open(self.path(name)) as f:
                return f.read()
        except FileNotFoundError:
            return default

    def append(self, name, line):
        with self.lock:
            with open(self.path(name), "a") as f:
                f.write(line + "\n")
                f.flush()

    def expect(self):
        t = self.read("expect.json")
        return json.loads(t) if t else {}

    def expires_in(self):
        t = self.read("expires_in")
        return int(t.strip()) if t and t.strip() else 3600

    def pop_script(self):
        """The next scripted action (the first line of DIR/script, removed
        from it under a lock), or "ok" when there is none."""
        p = self.path("script")
        with self.lock:
            try:
                f = open(p, "r+")
            except FileNotFoundError:
                return "ok"
            with f:
                fcntl.flock(f, fcntl.LOCK_EX)
                lines = f.read().splitlines()
                while lines and not lines[0].strip():
                    lines.pop(0)
                if not lines:
                    return "ok"
                first = lines.pop(0).strip()
                f.seek(0)
                f.truncate()
                f.write("".join(l + "\n" for l in lines))
                f.flush()
                return first

    def mint(self, iss, aud, sub):
        """A fresh identity token from the issuer key (new jti each time)."""
        claims = fedjwt.claims_for(iss=iss, sub=sub, aud=aud, jti=True, exp_in=300)
        return fedjwt.sign(self.issuer_key, self.issuer_kid, "RS256", claims)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tokenserver"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        ctx = self.server.tls
        if ctx is not None:
            # The handshake runs here, in the request's own thread, so a
            # client that never finishes it cannot block the server.
            self.request.settimeout(30)
            try:
                self.request = ctx.wrap_socket(self.request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                self.server.state.append(
                    "requests.jsonl",
                    json.dumps({"t": time.time(), "method": "TLS", "path": "", "query": "", "headers": {}, "body": None, "verdict": "tls handshake failed: %s" % type(e).__name__}),
                )
                raise ConnectionAbortedError("tls handshake failed")
        super().setup()

    def finish(self):
        try:
            super().finish()
        finally:
            if self.server.tls is not None:
                try:
                    self.request.close()
                except OSError:
                    pass

    # ---- plumbing

    def read_body(self):
        n = self.headers.get("content-length")
        if n is None:
            return b""
        n = int(n)
        if n < 0 or n > BODY_MAX:
            raise ValueError("content-length out of range")
        return self.rfile.read(n)

    def log(self, body, verdict, action=None):
        u = urlsplit(self.path)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        rec = {
            "t": time.time(),
            "method": self.command,
            "path": u.path,
            "query": u.query,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": parsed,
            "verdict": verdict,
        }
        if action is not None:
            rec["action"] = action
        self.server.state.append("requests.jsonl", json.dumps(rec))

    def answer(self, status, body, ctype="application/json", extra=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.send_header("connection", "close")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def client_gone(self):
        """True if the client closed its end (EOF or a reset pending). The
        client sends nothing after its request, so reading a byte here
        loses nothing."""
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            if not r:
                return False
            self.connection.setblocking(False)
            try:
                return self.connection.recv(1) == b""
            finally:
                self.connection.setblocking(True)
        except (BlockingIOError, ssl.SSLWantReadError):
            return False
        except (OSError, ValueError):
            return True

    def drop(self):
        """Close the connection without a word."""
        self.close_connection = True
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- the token endpoint

    def check_request(self, raw, st):
        """The verdict on one token request: "ok", or (error, reason). Each
        check names the field that failed; the assertion is never quoted.
        A jti is recorded as seen whatever the verdict."""
        h = self.headers
        ctype = (h.get("content-type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return ("invalid_request", "content-type is not application/json")
        if h.get("anthropic-beta") != BETA:
            return ("invalid_request", "anthropic-beta is not exactly %s" % BETA)
        if not (h.get("user-agent") or "").startswith("latch/"):
            return ("invalid_request", "user-agent does not start with latch/")
        try:
            body = json.loads(raw)
        except ValueError:
            return ("invalid_request", "body is not JSON")
        if not isinstance(body, dict):
            return ("invalid_request", "body is not a JSON object")
        keys = set(body)
        if not BODY_KEYS_REQUIRED <= keys:
            return ("invalid_request", "body lacks %s" % ",".join(sorted(BODY_KEYS_REQUIRED - keys)))
        extra = keys - BODY_KEYS_REQUIRED - BODY_KEYS_OPTIONAL
        if extra:
            return ("invalid_request", "body has unknown members %s" % ",".join(sorted(extra)))
        for k in keys - {"assertion"}:
            if not isinstance(body[k], str):
                return ("invalid_request", "%s is not a string" % k)
        if body["grant_type"] != GRANT:
            return ("invalid_request", "grant_type is not jwt-bearer")
        exp = st.expect()
        for k in ("federation_rule_id", "organization_id", "service_account_id", "workspace_id"):
            if k in exp and body.get(k) != exp[k]:
                return ("invalid_request", "%s is %r, expected %r" % (k, body.get(k), exp[k]))
        try:
            header, claims = fedjwt.verify(body["assertion"], st.jwks)
        except ValueError as e:
            # Record a jti even from a token that fails (if it decodes).
            try:
                c = json.loads(fedjwt.b64u_decode(body["assertion"].split(".")[1]))
                if isinstance(c, dict) and isinstance(c.get("jti"), str):
                    with st.lock:
                        st.seen_jti.add(c["jti"])
            except Exception:
                pass
            return ("invalid_request", str(e))
        jti = claims.get("jti")
        if jti is not None:
            with st.lock:
                seen = jti in st.seen_jti
                st.seen_jti.add(jti)
            if seen:
                return ("invalid_grant", "jti already used")
        now = time.time()
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] <= now:
            return ("invalid_request", "assertion expired (or no exp)")
        if "iss" in exp and claims.get("iss") != exp["iss"]:
            return ("invalid_request", "iss %r, expected %r" % (claims.get("iss"), exp["iss"]))
        want_aud = exp.get("aud", fedjwt.DEFAULT_AUD)
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if want_aud not in auds:
            return ("invalid_request", "aud does not contain %s" % want_aud)
        return "ok"

    def token_endpoint(self):
        st = self.server.state
        action = st.pop_script()
        words = action.split()
        verb = words[0] if words else "ok"
        if verb == "close-before":
            # Nothing read, nothing verified, no jti recorded.
            self.log(b"", "closed before reading", action)
            self.drop()
            return
        try:
            raw = self.read_body()
        except (ValueError, OSError) as e:
            self.log(b"", "unreadable body: %s" % e, action)
            self.answer(400, {"error": "invalid_request", "error_description": "unreadable body"})
            return
        verdict = self.check_request(raw, st)
        self.log(raw, verdict if verdict == "ok" else verdict[1], action)
        if verb == "close":
            self.drop()
            return
        if verb == "stall":
            time.sleep(float(words[1]) if len(words) > 1 else 30)
            if self.client_gone():
                # No token for a client that gave up: issued.txt lists
                # only tokens that were sent.
                return
            verb = "ok"
        if verb == "echo":
            try:
                a = json.loads(raw).get("assertion", "")
            except Exception:
                a = raw.decode("utf-8", "replace")
            self.answer(400, {"error": "invalid_request", "error_description": "bad assertion: %s" % a})
            return
        if verdict != "ok":
            self.answer(400, {"error": verdict[0], "error_description": verdict[1]})
            return
        ttl = st.expires_in()
        if verb == "ok":
            t = token()
            st.append("issued.txt", t)
            rid = "req_" + secrets.token_hex(12)
            self.answer(200, {"access_token": t, "token_type": "Bearer", "expires_in": ttl, "scope": "user:inference"}, extra={"request-id": rid})
        elif verb == "status":
            code = int(words[1])
            shape = words[2] if len(words) > 2 else "json"
            extra = {"request-id": "req_scripted401"} if code == 401 else {}
            if shape == "oauth":
                self.answer(code, {"error": "invalid_grant", "error_description": "scripted %d" % code}, extra=extra)
            elif shape == "text":
                self.answer(code, "<html>scripted %d</html>" % code, "text/html", extra=extra)
            else:
                self.answer(code, {"type": "error", "error": {"type": "invalid_request_error", "message": "scripted %d" % code}}, extra=extra)
        elif verb == "retry-after":
            s = words[1] if len(words) > 1 else "1"
            self.answer(429, {"type": "error", "error": {"type": "rate_limit_error", "message": "scripted 429"}}, extra={"retry-after": s})
        elif verb == "nonjson":
            self.answer(200, "not json at all", "application/json")
        elif verb == "big":
            self.big(ttl)
        elif verb == "no-token":
            self.answer(200, {"token_type": "Bearer", "expires_in": ttl})
        elif verb == "no-expiry":
            t = token()
            st.append("bad_tokens.txt", t)
            self.answer(200, {"access_token": t, "token_type": "Bearer"})
        elif verb == "mac":
            t = token()
            st.append("bad_tokens.txt", t)
            self.answer(200, {"access_token": t, "token_type": "mac", "expires_in": ttl})
        else:
            self.answer(500, {"type": "error", "error": {"type": "api_error", "message": "unknown scripted action"}})

    def big(self, ttl):
        """A 2 MiB answer that looks like a token response, in chunks (no
        length up front, so only a cap on what is read stops it)."""
        t = token()
        self.server.state.append("bad_tokens.txt", t)
        head = ('{"access_token":"%s","token_type":"Bearer","expires_in":%d,"padding":"' % (t, ttl)).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        pieces = [head] + [b"x" * 65536] * 32 + [b'"}']
        try:
            for p in pieces:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass

    # ---- identity endpoints

    def gha(self, q):
        st = self.server.state
        want = (st.read("gha_request_token") or "").strip()
        auth = self.headers.get("authorization") or ""
        scheme, _, cred = auth.partition(" ")
        if not want or scheme.lower() != "bearer" or cred.strip() != want:
            self.log(b"", "bad authorization")
            self.answer(401, {"message": "bad authorization"})
            return
        if st.issuer_key is None:
            self.log(b"", "no issuer key")
            self.answer(500, {"message": "no issuer key"})
            return
        aud = q.get("audience", [None])[0]
        with st.lock:
            st.gha_count += 1
            n = st.gha_count
        jwt = st.mint("https://token.actions.githubusercontent.com", aud, "repo:latch/latch:ref:refs/heads/main")
        self.log(b"", "ok")
        self.answer(200, {"count": n, "value": jwt})

    def gcp(self, q):
        st = self.server.state
        if self.headers.get("metadata-flavor") != "Google":
            self.log(b"", "no metadata-flavor: Google")
            self.answer(403, "missing Metadata-Flavor: Google", "text/plain")
            return
        if st.issuer_key is None:
            self.log(b"", "no issuer key")
            self.answer(500, "no issuer key", "text/plain")
            return
        aud = q.get("audience", [None])[0]
        jwt = st.mint("https://accounts.google.com", aud, "1234567890")
        self.log(b"", "ok")
        self.answer(200, jwt, "text/plain")

    def idtoken(self, as_json):
        st = self.server.state
        need = st.read("idtoken_header")
        if need and need.strip():
            name, _, value = need.strip().partition(":")
            if self.headers.get(name.strip()) != value.strip():
                self.log(b"", "missing header %s" % name.strip())
                self.answer(401, "missing header", "text/plain")
                return
        t = (st.read("idtoken") or "").strip()
        self.log(b"", "ok")
        if as_json:
            self.answer(200, {"id_token": t})
        else:
            self.answer(200, t, "text/plain")

    # ---- dispatch

    def do_GET(self):
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        if u.path == "/gha":
            self.gha(q)
        elif u.path == "/computeMetadata/v1/instance/service-accounts/default/identity":
            self.gcp(q)
        elif u.path == "/idtoken":
            self.idtoken(False)
        elif u.path == "/idtoken.json":
            self.idtoken(True)
        else:
            self.log(b"", "not found")
            self.answer(404, {"message": "not found"})

    def do_POST(self):
        u = urlsplit(self.path)
        if u.path == "/v1/oauth/token":
            self.token_endpoint()
            return
        try:
            raw = self.read_body()
        except (ValueError, OSError):
            raw = b""
        self.log(raw, "not found")
        self.answer(404, {"message": "not found"})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client that went away (a stall past its timeout, a refused
        # certificate) is a test doing its job, not a crash.
        e = sys.exc_info()[1]
        if isinstance(e, (ConnectionError, ssl.SSLError, socket.timeout, TimeoutError, BrokenPipeError)):
            return
        traceback.print_exc(file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(prog="tokenserver.py")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--jwks", required=True)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--port", type=int, default=0)
    # Only for the test that shows latch refuses plain http to an address
    # that is not loopback: the server listens there too, so a request
    # latch should not have sent would show in requests.jsonl.
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--issuer-key")
    ap.add_argument("--issuer-kid")
    a = ap.parse_args()
    with open(a.jwks) as f:
        jwks = json.load(f)
    issuer = fedjwt.load_key(a.issuer_key) if a.issuer_key else None
    os.makedirs(a.dir, exist_ok=True)
    srv = Server((a.bind, a.port), Handler)
    srv.state = State(a.dir, jwks, issuer, a.issuer_kid)
    srv.tls = None
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls[0], a.tls[1])
        srv.tls = ctx
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    tmp = os.path.join(a.dir, "port.tmp")
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, os.path.join(a.dir, "port"))
    while not stop.wait(0.5):
        pass
    srv.shutdown()
    srv.server_close()
    # Handlers still stalling are daemon threads: do not wait for them.
    os._exit(0)


if __name__ == "__main__":
    main()
