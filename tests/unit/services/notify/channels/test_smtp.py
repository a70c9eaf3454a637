"""E-mail over SMTP against a real SMTP server (aiosmtpd) that the test starts on a free local port."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.notify.channels import PermanentFailure, TransientFailure
from services.notify.channels.smtp import IDEMPOTENCY_HEADER, SmtpServer, build_message, message_id, send
from services.notify.messages import render
from tests.ports import HOST, free_ports
from tests.unit.services.notify.factories import NOW, notification

SENDER = "notify@attain.example"


@dataclass
class Mailbox:
    """aiosmtpd's handler: keeps what it takes; refuses `gone@` for good (550) and `busy@` for now (451)."""

    received: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    over_tls: list[bool] = field(default_factory=list)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("gone@"):
            return "550 5.1.1 No such user"
        if address.startswith("busy@"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.original_content, bytes)
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append((envelope, parsed))
        self.over_tls.append(session.ssl is not None)
        return "250 Message accepted"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, SmtpServer]]:
    box = Mailbox()
    (port,) = free_ports(1)
    controller = Controller(box, hostname=HOST, port=port)
    controller.start()
    try:
        yield box, SmtpServer.from_url(f"smtp://{HOST}:{port}", timeout_s=5)
    finally:
        controller.stop()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key: the server's, and the CA the client trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_mailbox(tmp_path: Path) -> Iterator[tuple[Mailbox, SmtpServer]]:
    """An SMTP server that offers STARTTLS with a certificate the client is told to trust."""
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box = Mailbox()
    (port,) = free_ports(1)
    controller = Controller(box, hostname=HOST, port=port, tls_context=context)
    controller.start()
    try:
        yield box, SmtpServer.from_url(f"smtp://{HOST}:{port}", timeout_s=5, cafile=str(cert))
    finally:
        controller.stop()


def _message(recipient: str = "max@customer.example", key: str = "delivery-1", **kwargs: Any) -> EmailMessage:
    n = notification("check_in", "de_DE")
    return build_message(render(n).email, sender=SENDER, sender_name="Attain", recipient=recipient,
                         idempotency_key=key, unsubscribe_url=n.unsubscribe_url, now=NOW, **kwargs)


async def test_the_server_receives_one_message_with_both_parts_the_link_and_one_click_unsubscribe(
        mailbox: tuple[Mailbox, SmtpServer]) -> None:
    box, server = mailbox
    await send(server, _message())

    ((envelope, received),) = box.received
    assert envelope.mail_from == SENDER and envelope.rcpt_tos == ["max@customer.example"]
    assert received["To"] == "max@customer.example" and received["From"] == f"Attain <{SENDER}>"
    assert received["Subject"] == "Check-in mit Ana Berg"
    assert received.get_content_type() == "multipart/alternative"
    plain, html = received.get_body(("plain",)), received.get_body(("html",))
    assert plain is not None and html is not None
    link = "https://attain.example/reps/ana?period=2026-Q4"
    assert link in plain.get_content() and "1.234,50\xa0€" in plain.get_content()
    assert f'href="{link}"' in html.get_content() and "Zu den Zahlen" in html.get_content()
    assert received["List-Unsubscribe"] == "<https://attain.example/me/notifications>"
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received[IDEMPOTENCY_HEADER] == "delivery-1"
    assert received["Message-ID"] == message_id("delivery-1", "attain.example")


async def test_a_resend_with_the_same_key_is_the_same_message_and_another_key_is_another(
        mailbox: tuple[Mailbox, SmtpServer]) -> None:
    box, server = mailbox
    await send(server, _message(key="delivery-1"))
    await send(server, _message(key="delivery-1"))
    await send(server, _message(key="delivery-2"))
    ids = [received["Message-ID"] for _, received in box.received]
    assert ids[0] == ids[1] != ids[2]
    assert all(i.startswith("<") and i.endswith("@attain.example>") for i in ids)


async def test_starttls_is_used_when_the_server_offers_it(tls_mailbox: tuple[Mailbox, SmtpServer]) -> None:
    box, server = tls_mailbox
    await send(server, _message())
    assert box.over_tls == [True]


async def test_starttls_no_keeps_the_connection_plain_even_when_offered(
        tls_mailbox: tuple[Mailbox, SmtpServer]) -> None:
    box, server = tls_mailbox
    await send(SmtpServer.from_url(f"smtp://{server.host}:{server.port}?starttls=no", timeout_s=5), _message())
    assert box.over_tls == [False]


async def test_a_certificate_nobody_vouches_for_is_refused(tls_mailbox: tuple[Mailbox, SmtpServer]) -> None:
    box, server = tls_mailbox
    with pytest.raises(PermanentFailure, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        await send(SmtpServer.from_url(f"smtp://{server.host}:{server.port}", timeout_s=5), _message())
    assert not box.received


async def test_an_unknown_mailbox_is_a_permanent_failure(mailbox: tuple[Mailbox, SmtpServer]) -> None:
    box, server = mailbox
    with pytest.raises(PermanentFailure, match="No such user") as failed:
        await send(server, _message(recipient="gone@customer.example"))
    assert failed.value.status == 550 and not box.received


async def test_a_4xx_reply_is_a_transient_failure(mailbox: tuple[Mailbox, SmtpServer]) -> None:
    _, server = mailbox
    with pytest.raises(TransientFailure, match="Try again later") as failed:
        await send(server, _message(recipient="busy@customer.example"))
    assert failed.value.status == 451


async def test_starttls_required_of_a_server_that_does_not_offer_it_is_permanent(
        mailbox: tuple[Mailbox, SmtpServer]) -> None:
    box, server = mailbox
    strict = SmtpServer.from_url(f"smtp://{server.host}:{server.port}?starttls=required", timeout_s=5)
    with pytest.raises(PermanentFailure, match="STARTTLS"):
        await send(strict, _message())
    assert not box.received


async def test_nobody_listening_is_a_transient_failure() -> None:
    (port,) = free_ports(1)
    with pytest.raises(TransientFailure):
        await send(SmtpServer.from_url(f"smtp://{HOST}:{port}", timeout_s=2), _message())


def test_smtp_url_reads_credentials_tls_and_starttls() -> None:
    assert SmtpServer.from_url("smtps://u%40x:p%3Ass@mail.example") == SmtpServer(
        host="mail.example", port=465, username="u@x", password="p:ss", implicit_tls=True, starttls="no")
    assert SmtpServer.from_url("smtp://mail.example:587").starttls == "auto"
    assert SmtpServer.from_url("smtp://mail.example?starttls=no") == SmtpServer(host="mail.example", port=25,
                                                                                starttls="no")
    for bad in ("http://mail.example", "smtp://", "smtp://h?starttls=maybe", "smtps://h?starttls=required"):
        with pytest.raises(ValueError):
            SmtpServer.from_url(bad)


def test_without_an_unsubscribe_page_there_is_no_list_unsubscribe() -> None:
    n = notification("digest", "en_US", unsubscribe_url=None)
    message = build_message(render(n).email, sender=SENDER, recipient="max@customer.example",
                            idempotency_key="k", unsubscribe_url=None, now=NOW)
    assert "List-Unsubscribe" not in message and "List-Unsubscribe-Post" not in message
