"""Single sign-on's pure rules (services/ingest/sso.py): who a verified ID token is, and what a configuration
may hold; and the CLI's refusal of a secret on its command line (services/ingest/sso_cli.py)."""

from __future__ import annotations

import argparse
import io
from decimal import Decimal

import pytest

from services.ingest import sso_cli
from services.ingest.cli import UsageError
from services.ingest.sso import (
    Person,
    Refused,
    SsoConfig,
    SsoError,
    check_groups,
    check_issuer,
    check_minutes,
    groups_of,
    map_person,
)

CFG = SsoConfig("acme", "https://login.acme.test", "attain", admin_groups=("attain-admins",),
                viewer_groups=("sales-floor",))
ROSTER = [
    Person("mia", "mia@acme.test"),  # manages bo and cy
    Person("bo", "bo@acme.test", manager_id="mia"),
    Person("cy", "cy@acme.test", manager_id="mia"),
    Person("dee", "dee@acme.test", manager_id="gone"),
    Person("gone", "gone@acme.test", active=False),  # left: manages nobody any more, signs in as nobody
    Person("ed", "ed@acme.test", manager_id="old-boss"),
    Person("old-boss", "boss@acme.test"),
]


def test_an_admin_group_makes_an_admin_even_for_someone_on_the_roster() -> None:
    mapped = map_person({"email": "bo@acme.test", "groups": ["attain-admins"]}, CFG, ROSTER)
    assert (mapped.role, mapped.rep_id, mapped.manager_id) == ("admin", None, None)


def test_a_person_whom_an_active_person_has_as_manager_is_a_manager_of_their_own_rep_id() -> None:
    mapped = map_person({"email": "Mia@ACME.test", "email_verified": True}, CFG, ROSTER)
    assert (mapped.role, mapped.manager_id, mapped.rep_id, mapped.email) == ("manager", "mia", None, "mia@acme.test")


def test_a_person_on_the_roster_managing_nobody_is_a_rep() -> None:
    mapped = map_person({"email": "bo@acme.test"}, CFG, ROSTER)
    assert (mapped.role, mapped.rep_id) == ("rep", "bo")


def test_a_manager_whose_only_report_left_is_a_rep() -> None:
    roster = [Person("lee", "lee@acme.test"), Person("kim", "kim@acme.test", manager_id="lee", active=False)]
    assert map_person({"email": "lee@acme.test"}, CFG, roster).role == "rep"


def test_someone_who_left_the_roster_is_refused_unless_a_viewer_group_admits_them() -> None:
    with pytest.raises(Refused, match=r"^gone@acme.test is not on acme's roster; ask your Attain administrator$"):
        map_person({"email": "gone@acme.test"}, CFG, ROSTER)
    assert map_person({"email": "gone@acme.test", "groups": ["sales-floor"]}, CFG, ROSTER).role == "viewer"


def test_a_stranger_is_refused_with_the_message_the_sign_in_page_shows() -> None:
    with pytest.raises(Refused) as refused:
        map_person({"email": "stranger@elsewhere.test", "groups": ["authors"]}, CFG, ROSTER)
    assert str(refused.value) == "stranger@elsewhere.test is not on acme's roster; ask your Attain administrator"


def test_an_unverified_e_mail_is_refused_even_with_an_admin_group() -> None:
    with pytest.raises(Refused, match="not a verified e-mail"):
        map_person({"email": "mia@acme.test", "email_verified": False, "groups": ["attain-admins"]}, CFG, ROSTER)


def test_a_token_without_an_e_mail_is_refused() -> None:
    with pytest.raises(Refused, match="did not say your e-mail"):
        map_person({"sub": "123", "groups": ["attain-admins"]}, CFG, ROSTER)


def test_groups_are_a_list_or_one_name() -> None:
    assert groups_of({"groups": "ops"}) == ("ops",)
    assert groups_of({"groups": ["ops", 3, "floor"]}) == ("ops", "floor")
    assert groups_of({}) == ()


def test_an_issuer_is_https_or_loopback_http() -> None:
    assert check_issuer(" https://login.acme.test/ ") == "https://login.acme.test"
    assert check_issuer("http://127.0.0.1:5556/dex") == "http://127.0.0.1:5556/dex"
    assert check_issuer("http://localhost:8080") == "http://localhost:8080"
    for bad in ("http://login.acme.test", "ftp://login.acme.test", "https://login.acme.test/?a=1", "login.acme.test",
                "http://10.0.0.5"):
        with pytest.raises(SsoError, match="issuer"):
            check_issuer(bad)


def test_groups_are_stored_once_each_and_bounded() -> None:
    assert check_groups([" ops ", "ops", "floor"], "admin_groups") == ("ops", "floor")
    with pytest.raises(SsoError, match="1-200 printable"):
        check_groups(["ops", " "], "admin_groups")
    with pytest.raises(SsoError, match="at most 50"):
        check_groups([f"g{i}" for i in range(51)], "admin_groups")


def test_a_session_lasts_more_than_nothing_and_at_most_a_day() -> None:
    assert check_minutes(Decimal("0.5")) == Decimal("0.5")
    for bad in ("0", "-1", "1441"):
        with pytest.raises(SsoError):
            check_minutes(Decimal(bad))


def test_the_configuration_as_shown_says_whether_a_secret_is_set_and_holds_none() -> None:
    shown = CFG.as_json()
    assert shown["client_secret_set"] is False and "client_secret" not in shown
    assert shown["session_minutes"] == 60.0


def _args(*argv: str) -> argparse.Namespace:
    return sso_cli.parser().parse_args(["acme", "--issuer", "https://login.acme.test", "--client-id", "attain", *argv])


def test_the_cli_reads_the_client_secret_from_a_named_variable_or_standard_input_never_argv() -> None:
    assert sso_cli.secret_of(_args("--client-secret-env", "IDP_SECRET"), io.StringIO(""),
                             {"IDP_SECRET": "s3cret\n"}) == "s3cret"
    assert sso_cli.secret_of(_args(), io.StringIO("from-stdin\n"), {}) == "from-stdin"
    assert sso_cli.secret_of(_args("--keep-secret"), io.StringIO(""), {}) is None
    with pytest.raises(UsageError, match="not taken on the command line") as refused:
        sso_cli.secret_of(_args("--client-secret", "hunter2"), io.StringIO(""), {})
    assert "hunter2" not in str(refused.value)
    with pytest.raises(UsageError, match="IDP_SECRET is not set"):
        sso_cli.secret_of(_args("--client-secret-env", "IDP_SECRET"), io.StringIO(""), {})
