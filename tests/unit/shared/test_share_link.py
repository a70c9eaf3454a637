"""Share links (shared/share_link.py): only what ingest's key signed, for that tenant and token id, reads back."""

from __future__ import annotations

import pytest

from shared import share_link
from shared.registry_signing import DOMAIN, RegistrySigner, RegistryVerifier, generate_private_key

SIGNER = RegistrySigner(generate_private_key())
VERIFIER = RegistryVerifier([SIGNER.public_key])


def test_a_link_reads_back_to_its_tenant_and_token() -> None:
    link = share_link.make(SIGNER, "acme-eu", "a1b2c3d4e5f6")
    assert share_link.read(VERIFIER, link) == ("acme-eu", "a1b2c3d4e5f6")


@pytest.mark.parametrize("change", [
    lambda link: link.replace("acme", "acmf", 1),  # another tenant
    lambda link: link.replace("a1b2c3d4e5f6", "a1b2c3d4e5f7", 1),  # another token
    lambda link: link[:-2] + ("AA" if not link.endswith("AA") else "BB"),  # another signature
    lambda link: link.rsplit(".", 1)[0],  # no signature
    lambda link: link + "\n",
    lambda link: "",
])
def test_anything_else_reads_as_nothing(change: object) -> None:
    link = share_link.make(SIGNER, "acme", "a1b2c3d4e5f6")
    assert share_link.read(VERIFIER, change(link)) is None  # type: ignore[operator]


def test_a_link_signed_by_another_key_reads_as_nothing() -> None:
    other = RegistrySigner(generate_private_key())
    assert share_link.read(VERIFIER, share_link.make(other, "acme", "a1b2c3d4e5f6")) is None


def test_a_share_signature_is_never_a_registry_signature() -> None:
    """Signatures carry their purpose: the registry's domain cannot be used for anything else."""
    with pytest.raises(ValueError, match="registry"):
        SIGNER.sign_parts(DOMAIN, "acme")
    assert not VERIFIER.check_parts(b"attain.other/1", ("acme", "a1b2c3d4e5f6"),
                                    SIGNER.sign_parts(share_link.DOMAIN, "acme", "a1b2c3d4e5f6"))
