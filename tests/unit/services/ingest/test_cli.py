"""`python -m services.ingest tenants ...`: arguments and their validation, before any database is touched."""

from __future__ import annotations

import io
from pathlib import Path
from typing import cast

import asyncpg
import pytest
from cryptography.fernet import Fernet

from services.ingest import cli, tenants
from shared.registry_signing import MAKE_A_PAIR, RegistrySigner, encode_private_key, generate_private_key
from shared.secret_box import MAKE_A_KEY

SIGNER = RegistrySigner(generate_private_key())


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
        await tenants.create(nowhere, "acme", token=None, timezone="UTC", currency="EUR", locale="klingon",
                             signer=SIGNER)


async def test_changing_to_an_unknown_locale_fails_before_writing_anything() -> None:
    nowhere = cast(asyncpg.Connection, object())
    with pytest.raises(tenants.TenantError, match="'xx_YY'"):
        await tenants.set_locale(nowhere, "acme", "xx_YY", signer=SIGNER)


# --- secrets never on the command line -------------------------------------------------------------------------

KEY = Fernet.generate_key().decode()
SECRET = "hubspot-client-secret-1"


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_SECRET_KEYS", KEY)
    monkeypatch.setenv("REGISTRY_SIGNING_KEY", encode_private_key(generate_private_key()))
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nowhere")  # reached: the test fails


@pytest.mark.parametrize("argv", [["set-secret", "acme", "hubspot", SECRET],
                                  ["set-api-token", "acme", "hubspot", SECRET, "--base-url", "https://api.hubapi.com"],
                                  ["create", "acme", "--token", SECRET]])
def test_a_secret_on_the_command_line_is_refused_without_repeating_it(
        argv: list[str], keys: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv, stdin=io.StringIO("")) == 2
    err = capsys.readouterr().err
    assert "not taken on the command line" in err and SECRET not in err


@pytest.mark.parametrize(("text", "read"), [("s3cret\n", "s3cret"), ("s3cret", "s3cret"), ("s3cret\r\n", "s3cret"),
                                            (" spaced secret \n", " spaced secret ")])
def test_a_secret_is_one_line_of_standard_input_without_its_newline(text: str, read: str) -> None:
    args = cli.parser().parse_args(["set-secret", "acme", "hubspot"])
    assert cli.secret_of(args, io.StringIO(text)) == read


@pytest.mark.parametrize(("text", "problem"), [("", "is empty"), ("\n", "is empty"), ("one\ntwo\n", "one line")])
def test_an_empty_or_multi_line_secret_is_a_usage_error(text: str, problem: str, keys: None,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["set-secret", "acme", "pipedrive"], stdin=io.StringIO(text)) == 2  # before any database
    assert problem in capsys.readouterr().err


def test_a_secret_or_token_file_is_read_instead_of_standard_input(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SECRET + "\n")
    (tmp_path / "token").write_text("pat-na1-token")
    stdin = io.StringIO("not this")
    secret = cli.parser().parse_args(["set-secret", "acme", "hubspot", "--secret-file", str(tmp_path / "secret")])
    api = cli.parser().parse_args(["set-api-token", "acme", "hubspot", "--token-file", str(tmp_path / "token"),
                                   "--base-url", "https://api.hubapi.com"])
    created = cli.parser().parse_args(["create", "acme", "--token-file", str(tmp_path / "token")])
    assert [cli.secret_of(a, stdin) for a in (secret, api, created)] == [SECRET, "pat-na1-token", "pat-na1-token"]


def test_a_missing_secret_file_is_a_usage_error_naming_it(tmp_path: Path, keys: None,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    assert cli.main(["set-secret", "acme", "hubspot", "--secret-file", str(missing)], stdin=io.StringIO(SECRET)) == 2
    assert f"cannot read the secret from {missing}" in capsys.readouterr().err


def test_create_reads_a_chosen_token_from_stdin_only_when_told_and_else_makes_one() -> None:
    stdin = io.StringIO("atn_chosen-token-of-enough-length\n")
    assert cli.secret_of(cli.parser().parse_args(["create", "acme"]), stdin) is None
    assert cli.secret_of(cli.parser().parse_args(["create", "acme", "--token-stdin"]), stdin) == (
        "atn_chosen-token-of-enough-length")


def test_create_takes_a_token_file_or_stdin_not_both() -> None:
    with pytest.raises(SystemExit) as exited:
        cli.parser().parse_args(["create", "acme", "--token-file", "t", "--token-stdin"])
    assert exited.value.code == 2


@pytest.mark.parametrize("argv", [["create", "acme"], ["set-secret", "acme", "hubspot"], ["rotate-secrets"]])
def test_without_crm_secret_keys_the_cli_stops_naming_the_variable_and_how_to_make_a_key(
        argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CRM_SECRET_KEYS", raising=False)
    stdin = io.StringIO(SECRET)
    assert cli.main(argv, stdin=stdin) == 2
    err = capsys.readouterr().err
    assert "CRM_SECRET_KEYS is not set" in err and MAKE_A_KEY in err
    assert stdin.read() == SECRET  # failed before asking for the secret


@pytest.mark.parametrize("argv", [["create", "acme"], ["revoke", "acme"], ["reannounce"]])
def test_without_a_registry_signing_key_the_cli_stops_naming_the_variable(
        argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CRM_SECRET_KEYS", KEY)
    monkeypatch.delenv("REGISTRY_SIGNING_KEY", raising=False)
    monkeypatch.delenv("REGISTRY_SIGNING_KEY_FILE", raising=False)
    assert cli.main(argv, stdin=io.StringIO("")) == 2
    err = capsys.readouterr().err
    assert "REGISTRY_SIGNING_KEY is not set" in err and MAKE_A_PAIR in err
