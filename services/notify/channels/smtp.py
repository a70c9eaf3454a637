"""E-mail over SMTP with aiosmtplib: one message (plain text and HTML) to one recipient per call.

``SMTP_URL`` names the server: ``smtp://user:pass@host:587`` (STARTTLS when the server offers it),
``smtps://user:pass@host:465`` (TLS from the first byte). ``?starttls=required`` refuses a server that
does not offer STARTTLS; ``?starttls=no`` never upgrades (a local test server). User and password are
percent-decoded (``%40`` for an ``@`` in a user name). The server's certificate is checked against the
system's CAs, or `SmtpServer.cafile` (a private relay's CA).

Every message carries ``Message-ID`` and ``X-Attain-Idempotency-Key`` derived from the delivery's
idempotency key, so a resend after a crash is recognisably the same message (mail clients and
archives thread or fold it), and, with an unsubscribe page, ``List-Unsubscribe`` in URL form with
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058: what Gmail and Yahoo ask of bulk
senders).

Failures: a 5xx reply (unknown mailbox, refused sender, failed authentication) is `PermanentFailure`;
a 4xx reply (greylisting, a full mailbox, a busy server), a timeout or a lost connection is
`TransientFailure`; a server certificate that does not verify is permanent (a setting to fix).
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from services.notify.channels import DeliveryFailed, PermanentFailure, TransientFailure
from services.notify.layouts import Email

__all__ = ["IDEMPOTENCY_HEADER", "SmtpServer", "build_message", "message_id", "send"]

IDEMPOTENCY_HEADER = "X-Attain-Idempotency-Key"
StartTls = Literal["auto", "required", "no"]
_STARTTLS: dict[str, StartTls] = {"auto": "auto", "required": "required", "yes": "required", "no": "no",
                                  "false": "no", "off": "no"}


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where and how to hand over mail; `from_url` reads ``SMTP_URL``."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False
    starttls: StartTls = "auto"
    timeout_s: float = 30.0
    cafile: str | None = None

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 30.0, cafile: str | None = None) -> SmtpServer:
        """``smtp[s]://[user[:password]@]host[:port][?starttls=auto|required|no]``."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:pass@host:587 or smtps://user:pass@host:465")
        implicit = parts.scheme == "smtps"
        choice = parse_qs(parts.query).get("starttls", ["auto"])[-1].lower()
        if choice not in _STARTTLS:
            raise ValueError(f"SMTP_URL: starttls must be auto, required or no, not {choice!r}")
        if implicit and _STARTTLS[choice] == "required":
            raise ValueError("SMTP_URL: smtps:// is TLS already; starttls=required applies to smtp:// only")
        return cls(host=parts.hostname, port=parts.port or (465 if implicit else 25),
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password is not None else None,
                   implicit_tls=implicit, starttls="no" if implicit else _STARTTLS[choice], timeout_s=timeout_s,
                   cafile=cafile)

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)


def message_id(idempotency_key: str, domain: str) -> str:
    """The same ``<...@domain>`` for the same key: a resend is the same message."""
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]}@{domain}>"


def build_message(email: Email, *, sender: str, recipient: str, idempotency_key: str,
                  unsubscribe_url: str | None, now: datetime, sender_name: str | None = None,
                  one_click: bool = True) -> EmailMessage:
    """A multipart/alternative message: plain text first, HTML second (the part a client prefers).
    `one_click`: the unsubscribe URL takes RFC 8058's POST without a sign-in (it carries its own sealed token);
    False when it is a page behind the sign-in (then no ``List-Unsubscribe-Post``)."""
    message = EmailMessage(policy=SMTP)
    domain = sender.rpartition("@")[2] or "attain.invalid"
    message["From"] = Address(display_name=sender_name or "", addr_spec=sender)
    message["To"] = recipient
    message["Subject"] = email.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id(idempotency_key, domain)
    message[IDEMPOTENCY_HEADER] = idempotency_key
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a notification
    if unsubscribe_url:
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        if one_click:
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(email.text, subtype="plain", charset="utf-8")
    message.add_alternative(email.html, subtype="html", charset="utf-8")
    return message


async def send(server: SmtpServer, message: EmailMessage) -> None:
    """Hand `message` to `server` (one attempt); `TransientFailure` or `PermanentFailure` if it is not taken."""
    client = aiosmtplib.SMTP(hostname=server.host, port=server.port, use_tls=server.implicit_tls,
                             start_tls=False, timeout=server.timeout_s, tls_context=server.tls_context())
    try:
        async with client:
            await _secure(client, server)
            if server.username is not None:
                await client.login(server.username, server.password or "")
            await client.send_message(message)
    except aiosmtplib.SMTPRecipientsRefused as err:
        raise _classified([(r.code, f"{r.recipient}: {r.code} {r.message}") for r in err.recipients]) from err
    except aiosmtplib.SMTPResponseException as err:  # sender refused, data refused, auth failed, HELO refused
        raise _classified([(err.code, f"{type(err).__name__}: {err.code} {err.message}")]) from err
    except aiosmtplib.SMTPNotSupported as err:  # SMTPUTF8 needed and not offered: the address must change
        raise PermanentFailure(f"SMTPNotSupported: {err}") from err
    except (aiosmtplib.SMTPException, OSError) as err:  # connect, timeout, disconnect, TLS handshake
        if _bad_certificate(err):  # the same certificate fails again: a setting (cafile) or the relay to fix
            raise PermanentFailure(f"{type(err).__name__}: {err}") from err
        raise TransientFailure(f"{type(err).__name__}: {err}") from err


def _bad_certificate(err: BaseException | None) -> bool:
    while err is not None:
        if isinstance(err, ssl.SSLCertVerificationError):
            return True
        err = err.__cause__ or err.__context__
    return False


async def _secure(client: aiosmtplib.SMTP, server: SmtpServer) -> None:
    """STARTTLS when the server offers it, unless the URL says no; a refusal when required and not offered."""
    if server.implicit_tls or server.starttls == "no":
        return
    await client.ehlo()
    if client.supports_extension("starttls"):
        await client.starttls()
    elif server.starttls == "required":
        raise PermanentFailure(f"{server.host}:{server.port} does not offer STARTTLS, and SMTP_URL requires it")


def _classified(replies: list[tuple[int, str]]) -> DeliveryFailed:
    """Permanent when every reply is 5xx; a single 4xx among them may pass, so the whole is transient."""
    reason = "; ".join(text for _, text in replies)
    worst = min(code for code, _ in replies)
    if all(500 <= code < 600 for code, _ in replies):
        return PermanentFailure(reason, status=worst)
    return TransientFailure(reason, status=worst)
