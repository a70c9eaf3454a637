"""`python -m services.ingest tenants ...`: arguments and their validation, before any database is touched."""

from __future__ import annotations

from typing import cast

import asyncpg
import pytest

from services.ingest import cli, tenants


def test_a_tenant_is_created_in_english_unless_told_otherwise() -> None:
    assert cli.parser().parse_args(["create", "acme"]).locale == "en"


@pytest.mark.parametrize(("given", "stored"), [("de_DE", "de_DE"), ("de-DE", "de_DE"), ("de_de", "de_DE"),
                                               ("fr", "fr"), ("zh-Hans-CN", "zh_Hans_CN")])
def test_create_takes_a_locale_in_babels_spelling(given: str, stored: str) -> None:
    args = cli.parser().parse_args(["create", "acme", "--timezone", "Europe/Berlin", "--locale", given])
    assert (args.command, args.slug, args.locale) == ("create", "acme", stored)


def test_the_locale_command_names_the_tenant_and_the_new_locale() -> None:
    args = cli.parser().parse_args(["locale", "acme", "fr-FR"])
    assert (args.command, args.slug, args.locale) == ("locale", "acme", "fr_FR")


@pytest.mark.parametrize("argv", [["create", "acme", "--locale", "xx_YY"], ["locale", "acme", "xx_YY"]])
def test_an_unknown_locale_is_a_usage_error_naming_it(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)  # fails while parsing: no database is reached
    assert exited.value.code == 2
    assert "unknown locale 'xx_YY'" in capsys.readouterr().err


def test_the_locale_command_needs_both_a_tenant_and_a_locale(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.parser().parse_args(["locale", "acme"])
    assert exited.value.code == 2
    assert "locale" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["", "not a locale", "de__DE", "xx"])
def test_names_babel_cannot_read_are_refused(name: str) -> None:
    with pytest.raises(tenants.TenantError, match="unknown locale"):
        tenants.normalise_locale(name)


async def test_creating_a_tenant_with_an_unknown_locale_fails_before_writing_anything() -> None:
    nowhere = cast(asyncpg.Connection, object())  # any statement on it would raise AttributeError
    with pytest.raises(tenants.TenantError, match="'klingon'"):
        await tenants.create(nowhere, "acme", token=None, timezone="UTC", currency="EUR", locale="klingon")


async def test_changing_to_an_unknown_locale_fails_before_writing_anything() -> None:
    nowhere = cast(asyncpg.Connection, object())
    with pytest.raises(tenants.TenantError, match="'xx_YY'"):
        await tenants.set_locale(nowhere, "acme", "xx_YY")
