"""The integration session's mail server: one aiosmtpd on a free port, started by the `services` fixture before
the services (notify's SMTP_URL points at it), holding every message it took, parsed, for the tests to read.

Tests share it, as they share the services: each test looks only for messages to its own tenant's addresses
(`messages_to`), never at the count of everything received."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.ports import free_ports


@dataclass(frozen=True)
class Received:
    """One message as the server took it: the envelope's recipients and the parsed message."""

    rcpt_tos: tuple[str, ...]
    message: EmailMessage


RECEIVED: list[Received] = []  # every message of the session, in the order taken
_lock = threading.Lock()  # aiosmtpd's handler runs in the controller's thread
_running: dict[str, Controller] = {}  # the session's server, once started ("smtp")


class _Handler:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with _lock:
            RECEIVED.append(Received(tuple(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


def start() -> str:
    """Start the session's server (once); its SMTP_URL for notify (plain SMTP on loopback: no STARTTLS)."""
    if "smtp" not in _running:
        (port,) = free_ports(1)
        controller = Controller(_Handler(), hostname="127.0.0.1", port=port)
        controller.start()
        _running["smtp"] = controller
    found = url()
    assert found is not None
    return found


def url() -> str | None:
    """The running server's SMTP_URL, or None before `start`."""
    controller = _running.get("smtp")
    return None if controller is None else f"smtp://127.0.0.1:{controller.port}?starttls=no"


def stop() -> None:
    controller = _running.pop("smtp", None)
    if controller is not None:
        controller.stop()


def messages_to(address: str) -> list[EmailMessage]:
    """The messages whose envelope named `address`, oldest first."""
    with _lock:
        return [r.message for r in RECEIVED if address in r.rcpt_tos]


async def wait_for_mail(address: str, check: Callable[[EmailMessage], bool] = lambda _m: True,
                        timeout: float = 60) -> EmailMessage:  # noqa: ASYNC109
    """The first message to `address` that `check` accepts, once it arrived (or an AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in messages_to(address) if check(m)]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no matching e-mail to {address} within {timeout} s"
        await asyncio.sleep(0.3)
