"""A TV's share link: read-only, signed, revocable (issue 17, item 4).

A screen on the sales floor is not a person: it gets a link, not a sign-in. ingest makes a `viewer` token
whose secret is never shown (`python -m services.ingest tokens share`, or `POST /v1/tokens/share`) and signs
`(tenant, token id)` with its registry key under a domain of its own; the link is
`/tv/share/<tenant>.<token id>.<signature>`. kpi checks the signature with the registry's public keys and
that the token is a live `viewer` token of that tenant, then keeps the link in the dashboard's session cookie.
The link carries no token at all, so nothing in it can write; revoking the token (`tokens revoke`) ends it
on every screen at once.

>>> from shared.registry_signing import RegistrySigner, RegistryVerifier, generate_private_key
>>> signer = RegistrySigner(generate_private_key())
>>> link = make(signer, "acme", "0f1e2d3c4b5a")
>>> read(RegistryVerifier([signer.public_key]), link)
('acme', '0f1e2d3c4b5a')
>>> read(RegistryVerifier([signer.public_key]), link.replace("acme", "evil")) is None
True
"""

from __future__ import annotations

import re

from shared.registry_signing import RegistrySigner, RegistryVerifier

DOMAIN = b"attain.share-link/ed25519/1"
PREFIX = "/tv/share/"
_SHAPE = re.compile(r"^([a-z0-9][a-z0-9-]{1,62})\.([0-9a-f]{6,32})\.([0-9a-f]{16}:[A-Za-z0-9_-]{80,90})$")


def make(signer: RegistrySigner, tenant: str, token_id: str) -> str:
    """The link's last path segment for the viewer token `token_id` of `tenant`."""
    return f"{tenant}.{token_id}.{signer.sign_parts(DOMAIN, tenant, token_id)}"


def read(verifier: RegistryVerifier, link: str) -> tuple[str, str] | None:
    """(tenant, token id) of a link ingest signed, or None for anything else."""
    shape = _SHAPE.fullmatch(link)
    if shape is None:
        return None
    tenant, token_id, signature = shape.groups()
    return (tenant, token_id) if verifier.check_parts(DOMAIN, (tenant, token_id), signature) else None
