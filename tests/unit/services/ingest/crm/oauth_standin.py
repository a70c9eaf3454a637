"""A local stand-in for a CRM's OAuth 2.0 server (HubSpot, Pipedrive or Salesforce), for tests of
services/ingest/crm/oauth.py and, later, of the whole connection against the real database.

It serves the vendors' documented responses at their documented paths (so `oauth.endpoints(crm, standin.base)`
finds them): their real servers exist only in their clouds. One stand-in plays one CRM:

- the authorization endpoint (GET) redirects back to `redirect_uri` with a fresh `code` and the `state` it was
  given, or with `error=access_denied` once `deny` is set; it remembers the PKCE challenge (S256);
- the token endpoint (POST, form) grants `authorization_code` (a code once, with the same redirect URI and the
  verifier of its challenge) and `refresh_token` in the vendor's JSON shape: HubSpot's `expires_in` 1800,
  Pipedrive's `api_domain` and hour-long tokens with the client authenticated by HTTP Basic only, Salesforce's
  `instance_url`, `issued_at` and `signature` without a lifetime and without a new refresh token on refresh;
- a refresh token revoked (`revoke_refresh`, or the revocation endpoint) answers `invalid_grant` in the vendor's
  shape (HubSpot's `status` and `message` beside it, Pipedrive's `message` only);
- the revocation endpoint (HubSpot, Salesforce): 200, or 400 `invalid_token` for a token it does not know;
- `fail_next` answers that many token requests 503 (a transient failure).

Every request is recorded (`requests`: path, form, Authorization header) for the tests to inspect.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

PATHS = {
    "hubspot": ("/oauth/authorize", "/oauth/2026-03/token", "/oauth/2026-03/token/revoke"),
    "pipedrive": ("/oauth/authorize", "/oauth/token", None),
    "salesforce": ("/services/oauth2/authorize", "/services/oauth2/token", "/services/oauth2/revoke"),
}
API_DOMAIN = "https://acme-sandbox.pipedrive.com"
INSTANCE_URL = "https://acme.my.salesforce.com"


@dataclass
class Seen:
    """One request the stand-in answered."""

    method: str
    path: str
    form: dict[str, str]
    authorization: str | None


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str | None
    scope: str


@dataclass
class OAuthStandIn:
    """A CRM's OAuth server on 127.0.0.1 (a free port): `start()`, `base`, `stop()`, or `with OAuthStandIn(...)`."""

    crm: str
    clients: dict[str, str] = field(default_factory=lambda: {"attain-app": "s3cr3t-client-secret"})
    deny: bool = False
    fail_next: int = 0
    requests: list[Seen] = field(default_factory=list)
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _refresh: dict[str, str] = field(default_factory=dict)  # live refresh token -> client id
    _revoked: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self._server is not None, "start the stand-in first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> OAuthStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                standin._get(self)

            def do_POST(self) -> None:
                standin._post(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OAuthStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def revoke_refresh(self, token: str) -> None:
        """The tenant revokes ingest at the CRM (or uninstalls the app): the refresh token stops working."""
        with self._lock:
            self._refresh.pop(token, None)
            self._revoked.add(token)

    def live_refresh_tokens(self) -> set[str]:
        with self._lock:
            return set(self._refresh)

    # --- the endpoints -------------------------------------------------------------------------------------

    def _get(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self._record(h, "GET", url.path, query)
        if url.path != PATHS[self.crm][0]:
            return _json(h, 404, {"error": "not_found"})
        if query.get("client_id") not in self.clients or query.get("response_type") != "code" \
                or not query.get("redirect_uri"):
            return _json(h, 400, {"error": "invalid_request", "error_description": "unknown client or no redirect"})
        back = {"state": query["state"]} if "state" in query else {}
        if self.deny:
            back |= {"error": "access_denied", "error_description": "end-user denied authorization"}
        else:
            code = secrets.token_urlsafe(24)
            challenge = query.get("code_challenge") if query.get("code_challenge_method") == "S256" else None
            with self._lock:
                self._codes[code] = _Grant(query["client_id"], query["redirect_uri"], challenge,
                                           query.get("scope", ""))
            back["code"] = code
        h.send_response(302)
        h.send_header("Location", f"{query['redirect_uri']}?{urlencode(back)}")
        h.send_header("Content-Length", "0")
        h.end_headers()

    def _post(self, h: BaseHTTPRequestHandler) -> None:
        path = urlsplit(h.path).path
        length = int(h.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(h.rfile.read(length).decode()).items()}
        self._record(h, "POST", path, form)
        _, token_path, revoke_path = PATHS[self.crm]
        if path == token_path:
            with self._lock:
                if self.fail_next:
                    self.fail_next -= 1
                    return _json(h, 503, {"message": "service unavailable"})
            return self._token(h, form)
        if revoke_path is not None and path == revoke_path:
            return self._revoke(h, form)
        return _json(h, 404, {"error": "not_found"})

    def _client_of(self, h: BaseHTTPRequestHandler, form: dict[str, str]) -> str | None:
        """The authenticated client: Pipedrive by HTTP Basic only, the others by the form's id and secret."""
        if self.crm == "pipedrive":
            header = h.headers.get("Authorization") or ""
            if not header.startswith("Basic "):
                return None
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        return client_id if self.clients.get(client_id) == secret and secret else None

    def _token(self, h: BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        client_id = self._client_of(h, form)
        if client_id is None:
            return self._refuse(h, 401, "invalid_client", "client authentication failed")
        grant = form.get("grant_type")
        if grant == "authorization_code":
            with self._lock:
                granted = self._codes.pop(form.get("code", ""), None)
            if granted is None or granted.client_id != client_id:
                return self._refuse(h, 400, "invalid_grant", "invalid authorization code")
            if granted.redirect_uri != form.get("redirect_uri"):
                return self._refuse(h, 400, "invalid_grant", "redirect_uri mismatch")
            if granted.challenge is not None and _s256(form.get("code_verifier", "")) != granted.challenge:
                return self._refuse(h, 400, "invalid_grant", "invalid code verifier")
            refresh = secrets.token_urlsafe(32)
            with self._lock:
                self._refresh[refresh] = client_id
            return _json(h, 200, self._granted(refresh, granted.scope, first=True))
        if grant == "refresh_token":
            token = form.get("refresh_token", "")
            with self._lock:
                live = self._refresh.get(token) == client_id
            if not live:
                return self._refuse(h, 400, "invalid_grant", _REVOKED_REASON[self.crm])
            return _json(h, 200, self._granted(token, "", first=False))
        return self._refuse(h, 400, "unsupported_grant_type", f"grant type {grant!r} is not supported")

    def _granted(self, refresh: str, scope: str, *, first: bool) -> dict[str, Any]:
        access = secrets.token_urlsafe(32)
        if self.crm == "hubspot":
            return {"token_type": "bearer", "access_token": access, "refresh_token": refresh, "expires_in": 1800}
        if self.crm == "pipedrive":
            return {"access_token": access, "token_type": "Bearer", "refresh_token": refresh,
                    "scope": "base,deals:read,users:read", "expires_in": 3599, "api_domain": API_DOMAIN}
        answer = {"access_token": access, "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
                  "scope": scope or "api refresh_token", "instance_url": INSTANCE_URL,
                  "id": "https://login.salesforce.com/id/00Dxx0000000001/005xx000000002", "token_type": "Bearer",
                  "issued_at": str(int(time.time() * 1000))}
        return answer | ({"refresh_token": refresh} if first else {})  # no rotation: the refresh token stays

    def _refuse(self, h: BaseHTTPRequestHandler, status: int, error: str, reason: str) -> None:
        if self.crm == "hubspot":
            return _json(h, status, {"status": "BAD_REFRESH_TOKEN" if error == "invalid_grant" else "BAD_REQUEST",
                                     "message": reason, "correlationId": secrets.token_hex(8), "error": error,
                                     "error_description": reason})
        if self.crm == "pipedrive":
            return _json(h, status, {"success": False, "message": reason, "error": error})
        return _json(h, status, {"error": error, "error_description": reason})

    def _revoke(self, h: BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        token = form.get("token", "")
        with self._lock:
            known = self._refresh.pop(token, None) is not None
            if known:
                self._revoked.add(token)
        if not known:
            return _json(h, 400, {"error": "invalid_token", "error_description": "token was invalid"})
        return _json(h, 200, {})

    def _record(self, h: BaseHTTPRequestHandler, method: str, path: str, form: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(Seen(method, path, form, h.headers.get("Authorization")))


_REVOKED_REASON = {"hubspot": "refresh token is invalid, expired or revoked",
                   "pipedrive": "Invalid grant: refresh token is invalid",
                   "salesforce": "expired access/refresh token"}


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _json(h: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json;charset=UTF-8")
    h.send_header("Content-Length", str(len(raw)))
    h.end_headers()
    h.wfile.write(raw)
