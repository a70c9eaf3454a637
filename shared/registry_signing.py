"""Signed registry records: Kafka is not a credential store (issue 16, item 5).

`attain.tenants.v1` carries each tenant's token digest; kpi, coaching and recognition authenticate read calls
with it. Whoever could write that topic could install a digest of their own for any tenant, so ingest signs
every `tenant.upserted` it enqueues with Ed25519, and the readers apply only records signed by a key they
were given. A forged record (unsigned, a bad signature, or one by an unknown key) is dead-lettered with the
reason and counted (`attain_registry_rejected_total{reason}`); the consumer goes on.

What is signed (`signed_bytes`): the domain tag ``attain.tenants.v1/ed25519/1``, then each of these,
length-prefixed (4 bytes, big-endian) so that no two different records share one byte string:
`ce_id`, `ce_type`, `ce_source`, `ce_time`, `ce_tenant` (each the UTF-8 header text exactly as written),
the record key, and the record value (the event's JSON data, exactly the bytes on the topic). The
readers verify the bytes they received, so no re-serialisation can make signer and verifier disagree.

Where the signature travels: the CloudEvents extension header ``ce_attainsig`` (the topic is internal; the
external contract is unchanged), ``<key id>:<signature>``, the key id being the first 8 bytes of the
SHA-256 of the raw public key in hex, the signature 64 bytes in url-safe base64 without padding.

Keys: ingest holds the private key (`REGISTRY_SIGNING_KEY`, or a file named by `REGISTRY_SIGNING_KEY_FILE`);
the readers hold public keys (`REGISTRY_VERIFY_KEYS`, comma-separated: during a rotation the old and the
new one). Each key is 32 raw bytes in base64 (standard or url-safe), or PEM (PKCS#8 / SubjectPublicKeyInfo).
Make a pair with `python -m services.ingest keys registry`.

What this does not stop: a principal that can write the topic may replay an older record ingest signed
for the same tenant (a token digest since rotated, say). Only ingest may write the topic
(`shared/acls.py`); the signature makes a write from anyone else harmless, the ACLs keep the replay out.

Pure: no I/O, and no message here holds a private key.

>>> signer = RegistrySigner(generate_private_key())
>>> headers = [("ce_id", b"1"), ("ce_type", b"tenant.upserted"), ("ce_source", b"attain/ingest"),
...            ("ce_time", b"2026-01-01T00:00:00+00:00"), ("ce_tenant", b"acme")]
>>> value = b'{"tenant":"acme"}'
>>> sig = signer.signature(headers, b"acme", value)
>>> verifier = RegistryVerifier([signer.public_key])
>>> verifier.check([*headers, (H_SIGNATURE, sig.encode())], b"acme", value)
>>> try:
...     verifier.check(headers, b"acme", value)
... except RegistryRejected as refused:
...     print(refused)
registry record refused (unsigned): no ce_attainsig header
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.errors import InvalidMessage

DOMAIN = b"attain.tenants.v1/ed25519/1"
EXTENSION = "attainsig"  # the CloudEvents extension attribute
H_SIGNATURE = f"ce_{EXTENSION}"
SIGNED_HEADERS = ("ce_id", "ce_type", "ce_source", "ce_time", "ce_tenant")
SIGNING_SETTING, SIGNING_FILE_SETTING, VERIFY_SETTING = (
    "REGISTRY_SIGNING_KEY", "REGISTRY_SIGNING_KEY_FILE", "REGISTRY_VERIFY_KEYS")
MAKE_A_PAIR = "python -m services.ingest keys registry --private-key-file PATH"

Reason = Literal["unsigned", "malformed", "unknown_key", "bad_signature"]


class BadKey(ValueError):
    """A registry key setting that is unset or holds no usable key; the message names the setting, never the key."""


class RegistryRejected(InvalidMessage):
    """A registry record that is not signed by a known key: dead-lettered, never applied."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"registry record refused ({reason}): {detail}")
        self.reason: Reason = reason


def _frame(part: bytes) -> bytes:
    return len(part).to_bytes(4, "big") + part


def signed_bytes(headers: Iterable[tuple[str, bytes | None]], key: bytes | None, value: bytes | None) -> bytes:
    """The bytes a registry record's signature covers (module docstring); header names are case-insensitive,
    the last of a repeated name wins, as `shared.cloudevents.decode` reads them."""
    found: dict[str, bytes] = {}
    for name, raw in headers:
        lowered = name.lower()
        if lowered in SIGNED_HEADERS:
            found[lowered] = raw or b""
    return DOMAIN + b"".join(_frame(found.get(name, b"")) for name in SIGNED_HEADERS) + _frame(key or b"") + _frame(
        value or b"")


def _parts(domain: bytes, parts: Sequence[str]) -> bytes:
    if domain == DOMAIN:
        raise ValueError("the registry's domain is for registry records only")
    return domain + b"".join(_frame(p.encode()) for p in parts)


def key_id(public: Ed25519PublicKey) -> str:
    """The short name of a public key a signature says it was made with (not secret)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:8].hex()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    text = text.strip().replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_private_key(private: Ed25519PrivateKey) -> str:
    """The raw 32 bytes in base64, the form `REGISTRY_SIGNING_KEY` takes."""
    return base64.b64encode(private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                  serialization.NoEncryption())).decode()


def encode_public_key(public: Ed25519PublicKey) -> str:
    """The raw 32 bytes in base64, one entry of `REGISTRY_VERIFY_KEYS`."""
    return base64.b64encode(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def parse_private_key(text: str, setting: str = SIGNING_SETTING) -> Ed25519PrivateKey:
    """The signing key in `text`: base64 of 32 raw bytes, or a PEM PKCS#8 Ed25519 key. BadKey names `setting`."""
    text = text.strip()
    if not text:
        raise BadKey(f"{setting} is not set: ingest signs the tenant registry with it (docs/security.md)."
                     f" Make a pair with `{MAKE_A_PAIR}`, set {SIGNING_SETTING} (or {SIGNING_FILE_SETTING}) for"
                     f" ingest and {VERIFY_SETTING} to the public key for kpi, coaching and recognition")
    try:
        if text.startswith("-----BEGIN"):
            loaded = serialization.load_pem_private_key(text.encode(), password=None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise BadKey(f"{setting}: the PEM key is not an Ed25519 key")
            return loaded
        raw = _unb64(text)
        if len(raw) != 32:
            raise BadKey(f"{setting}: not 32 bytes of base64 (an Ed25519 private key) nor a PEM key")
        return Ed25519PrivateKey.from_private_bytes(raw)
    except (ValueError, TypeError, binascii.Error) as err:
        if isinstance(err, BadKey):
            raise
        raise BadKey(f"{setting}: not a base64 or PEM Ed25519 private key") from None


def parse_public_keys(text: str, setting: str = VERIFY_SETTING) -> list[Ed25519PublicKey]:
    """The verification keys in `text`, comma-separated (base64 of 32 raw bytes, or PEM each). BadKey names
    `setting` and a bad key by its position only."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise BadKey(f"{setting} is not set: kpi, coaching and recognition apply only registry records signed by"
                     f" one of these public keys (docs/security.md). Set it to the public key printed by"
                     f" `{MAKE_A_PAIR}` (comma-separated during a rotation: old and new)")
    keys = []
    for position, part in enumerate(parts, 1):
        try:
            if part.startswith("-----BEGIN"):
                loaded = serialization.load_pem_public_key(part.encode())
                if not isinstance(loaded, Ed25519PublicKey):
                    raise ValueError("not Ed25519")
                keys.append(loaded)
                continue
            raw = _unb64(part)
            if len(raw) != 32:
                raise ValueError("not 32 bytes")
            keys.append(Ed25519PublicKey.from_public_bytes(raw))
        except (ValueError, TypeError, binascii.Error):
            raise BadKey(f"{setting}: key {position} of {len(parts)} is not an Ed25519 public key (32 bytes of"
                         " base64, or PEM)") from None
    return keys


class RegistrySigner:
    """Signs registry records with ingest's private key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_key = private.public_key()
        self.key_id = key_id(self.public_key)

    def signature(self, headers: Iterable[tuple[str, bytes | None]], key: bytes | None, value: bytes | None) -> str:
        """The `ce_attainsig` value of the record with these headers, key and value."""
        return f"{self.key_id}:{_b64(self._private.sign(signed_bytes(headers, key, value)))}"

    def sign_parts(self, domain: bytes, *parts: str) -> str:
        """`<key id>:<signature>` of `parts` (length-prefixed) under `domain`, a tag of the purpose other than
        the registry's, so that no signature made for one purpose is accepted for another (shared/share_link.py)."""
        return f"{self.key_id}:{_b64(self._private.sign(_parts(domain, parts)))}"


class RegistryVerifier:
    """Checks registry records against the public keys it was given (loaded once, at start)."""

    def __init__(self, keys: Sequence[Ed25519PublicKey]) -> None:
        self._keys = {key_id(key): key for key in keys}

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def check_parts(self, domain: bytes, parts: Sequence[str], given: str) -> bool:
        """Whether `given` is a `sign_parts` signature of `parts` under `domain` by a known key."""
        kid, _, sig_text = given.partition(":")
        public = self._keys.get(kid)
        if public is None:
            return False
        try:
            public.verify(_unb64(sig_text), _parts(domain, parts))
        except (InvalidSignature, ValueError, binascii.Error):
            return False
        return True

    def check(self, headers: Sequence[tuple[str, bytes | None]], key: bytes | None, value: bytes | None) -> None:
        """None when the record is signed by a known key; RegistryRejected saying why otherwise."""
        given = None
        for name, raw in headers:
            if name.lower() == H_SIGNATURE:
                given = raw
        if not given:
            raise RegistryRejected("unsigned", f"no {H_SIGNATURE} header")
        try:
            kid, _, sig_text = given.decode().partition(":")
            signature = _unb64(sig_text)
        except (UnicodeDecodeError, ValueError, binascii.Error):
            raise RegistryRejected("malformed", f"{H_SIGNATURE} is not '<key id>:<base64 signature>'") from None
        if not kid or len(signature) != 64:
            raise RegistryRejected("malformed", f"{H_SIGNATURE} is not '<key id>:<base64 signature>'")
        public = self._keys.get(kid)
        if public is None:
            raise RegistryRejected("unknown_key", f"signed by key {kid[:16]!r}, which is not in {VERIFY_SETTING}")
        try:
            public.verify(signature, signed_bytes(headers, key, value))
        except InvalidSignature:
            raise RegistryRejected("bad_signature", f"the signature of key {kid} does not match the record") from None
