"""`tenants backfill`'s command line (services/ingest/cli.py): what it takes, before any database is reached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.ingest.cli import parser


def test_backfill_takes_a_tenant_a_crm_and_an_optional_aware_since() -> None:
    args = parser().parse_args(["backfill", "acme", "hubspot", "--since", "2026-01-01T00:00:00+01:00"])
    assert (args.command, args.slug, args.crm, args.resume) == ("backfill", "acme", "hubspot", False)
    assert args.since == datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    assert args.since == datetime(2025, 12, 31, 23, tzinfo=UTC)


def test_backfill_without_since_means_the_fiscal_year_and_resume_is_a_flag() -> None:
    args = parser().parse_args(["backfill", "acme", "pipedrive", "--resume"])
    assert (args.since, args.resume) == (None, True)


def test_backfill_refuses_a_crm_it_does_not_read(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["backfill", "acme", "zoho"])
    assert "invalid choice" in capsys.readouterr().err
