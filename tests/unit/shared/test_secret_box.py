"""shared/secret_box.py: CRM secrets sealed with CRM_SECRET_KEYS, opened with any of them, and legacy plain
text told apart by the prefix alone."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from shared.secret_box import (
    MAKE_A_KEY,
    PREFIX,
    BadKeys,
    SecretBox,
    SecretBoxError,
    Undecryptable,
    is_sealed,
    parse_keys,
)

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()
SECRET = "hubspot-client-secret-1"


def test_a_sealed_secret_holds_no_trace_of_the_secret_and_unseals_to_it() -> None:
    box = SecretBox([NEW])
    sealed = box.seal(SECRET)
    assert sealed.startswith(PREFIX) and is_sealed(sealed)
    assert SECRET not in sealed
    assert box.unseal(sealed) == SECRET


def test_the_same_secret_seals_differently_each_time() -> None:
    box = SecretBox([NEW])
    assert box.seal(SECRET) != box.seal(SECRET)


def test_after_a_new_key_is_put_in_front_what_the_old_one_sealed_still_unseals() -> None:
    sealed_before = SecretBox([OLD]).seal(SECRET)
    rotated = SecretBox([NEW, OLD])
    assert rotated.unseal(sealed_before) == SECRET
    assert SecretBox([NEW]).unseal(rotated.seal(SECRET)) == SECRET  # the first key seals


def test_resealing_moves_a_value_to_the_first_key_so_the_old_one_can_be_dropped() -> None:
    sealed_before = SecretBox([OLD]).seal(SECRET)
    resealed = SecretBox([NEW, OLD]).reseal(sealed_before)
    assert SecretBox([NEW]).unseal(resealed) == SECRET
    with pytest.raises(Undecryptable):
        SecretBox([OLD]).unseal(resealed)


def test_legacy_plain_text_is_told_apart_by_the_prefix_read_as_it_is_and_sealed_by_reseal() -> None:
    box = SecretBox([NEW])
    assert not is_sealed(SECRET)
    assert box.unseal(SECRET) == SECRET  # never "tried" as a token
    resealed = box.reseal(SECRET)
    assert is_sealed(resealed) and box.unseal(resealed) == SECRET


def test_a_legacy_value_that_merely_looks_like_base64_is_still_legacy() -> None:
    looks_like_a_token = Fernet(NEW).encrypt(b"x").decode()  # a real token, but stored without the prefix
    assert not is_sealed(looks_like_a_token)
    assert SecretBox([NEW]).unseal(looks_like_a_token) == looks_like_a_token


@pytest.mark.parametrize("stored", [PREFIX + "garbage", PREFIX, PREFIX + "gAAAAA" + "A" * 80, PREFIX + "ünïcode"])
def test_garbage_behind_the_prefix_is_refused_with_a_clear_error(stored: str) -> None:
    box = SecretBox([NEW])
    for attempt in (box.unseal, box.reseal):
        with pytest.raises(Undecryptable, match="no key of CRM_SECRET_KEYS decrypts the stored value"):
            attempt(stored)


def test_a_value_sealed_under_a_key_no_longer_listed_is_undecryptable_and_the_error_holds_no_secret() -> None:
    sealed = SecretBox([OLD]).seal(SECRET)
    with pytest.raises(Undecryptable) as raised:
        SecretBox([NEW]).unseal(sealed)
    assert SECRET not in str(raised.value) and OLD not in str(raised.value) and NEW not in str(raised.value)
    assert isinstance(raised.value, SecretBoxError)


def test_an_empty_value_is_not_sealed() -> None:
    with pytest.raises(SecretBoxError, match="empty"):
        SecretBox([NEW]).seal("")


def test_keys_are_comma_separated_in_order_blanks_ignored() -> None:
    assert parse_keys(f" {NEW} ,{OLD},") == [NEW, OLD]


@pytest.mark.parametrize("setting", ["", " ", ",,"])
def test_no_key_at_all_names_the_variable_and_how_to_make_a_key(setting: str) -> None:
    with pytest.raises(BadKeys) as raised:
        parse_keys(setting)
    assert "CRM_SECRET_KEYS is not set" in str(raised.value)
    assert MAKE_A_KEY in str(raised.value)


def test_a_key_that_is_no_fernet_key_is_named_by_its_position_never_its_value() -> None:
    with pytest.raises(BadKeys, match="key 2 of 2 is not a Fernet key") as raised:
        parse_keys(f"{NEW},not-a-key-at-all")
    assert "not-a-key-at-all" not in str(raised.value) and NEW not in str(raised.value)


def test_the_box_shows_no_key() -> None:
    box = SecretBox.from_setting(NEW)
    assert NEW not in repr(box) and NEW not in str(box)
