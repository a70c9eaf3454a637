"""Which rep each CRM user is (`users_rules.propose`): kept, matched by e-mail, created with a free id, or skipped."""

from __future__ import annotations

import doctest
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.ingest.crm import users_rules
from services.ingest.crm.mapping import TenantMaps, activity_data, deal_data
from services.ingest.crm.reading.model import CrmUser
from services.ingest.crm.state import DealView
from services.ingest.crm.users_rules import DEFAULT_TEAM, NewRep, Rep, new_rep_id, normal_email, propose
from services.ingest.crm.users_store import UNMAPPED_OWNER
from services.ingest.crm.users_sync import rep_event

ZONE = "Europe/Berlin"
ALICE = CrmUser("81422101", "Alice Example", "alice@example.com", None, True)


def decided(proposal: object) -> list[tuple[str, str, str | None]]:
    return [(d.crm_user_id, d.action, d.rep_id) for d in proposal.decisions]  # type: ignore[attr-defined]


def test_a_fresh_tenant_gets_a_rep_for_each_active_crm_user_named_after_the_email() -> None:
    proposal = propose("hubspot", [ALICE], [], {}, tenant_timezone=ZONE)
    (decision,) = proposal.decisions
    assert (decision.action, decision.rep_id) == ("create", "alice")
    assert decision.new_rep == NewRep("alice", "Alice Example", "alice@example.com", ZONE, DEFAULT_TEAM)
    assert proposal.applies and proposal.new_mapping() == {"81422101": "alice"}
    assert proposal.counts() == {"keep": 0, "map": 0, "create": 1, "skip": 0}


def test_an_existing_rep_is_matched_by_email_trimmed_and_whatever_the_case() -> None:
    user = CrmUser("7", "Alice", "  ALICE@Example.com ", None, True)
    proposal = propose("pipedrive", [user], [Rep("a.example", "Alice E.", "alice@example.com")], {},
                       tenant_timezone=ZONE)
    assert decided(proposal) == [("7", "map", "a.example")]
    assert proposal.new_reps() == []


def test_a_user_already_mapped_is_kept_even_when_another_rep_has_its_email() -> None:
    proposal = propose("hubspot", [ALICE], [Rep("alice", "Alice", "alice@example.com")], {"81422101": "al"},
                       tenant_timezone=ZONE)
    assert decided(proposal) == [("81422101", "keep", "al")]
    assert proposal.new_mapping() == {}


def test_everyone_mapped_by_identity_is_kept_as_the_rep_of_the_same_id() -> None:
    proposal = propose("hubspot", [ALICE], [], {"*": "="}, tenant_timezone=ZONE)
    assert decided(proposal) == [("81422101", "keep", "81422101")]


def test_an_active_rep_wins_over_an_inactive_one_with_the_same_email() -> None:
    reps = [Rep("alice-old", "Alice", "alice@example.com", active=False), Rep("alice", "Alice", "alice@example.com")]
    assert decided(propose("hubspot", [ALICE], reps, {}, tenant_timezone=ZONE)) == [("81422101", "map", "alice")]


def test_two_reps_of_the_same_standing_with_the_email_are_left_to_the_admin() -> None:
    reps = [Rep("alice", "Alice", "alice@example.com"), Rep("alice2", "Alice", "Alice@example.com")]
    (decision,) = propose("hubspot", [ALICE], reps, {}, tenant_timezone=ZONE).decisions
    assert (decision.action, decision.rep_id) == ("skip", None)
    assert "several reps (alice, alice2)" in decision.reason


def test_an_inactive_crm_user_is_not_created_but_is_mapped_to_the_rep_with_its_email() -> None:
    gone = CrmUser("9", "Bo Gone", "bo@example.com", None, False)
    left = CrmUser("10", "Cy Left", "cy@example.com", None, False)
    proposal = propose("hubspot", [gone, left], [Rep("bo", "Bo", "bo@example.com", active=False)], {},
                       tenant_timezone=ZONE)
    assert decided(proposal) == [("10", "skip", None), ("9", "map", "bo")]
    assert proposal.decisions[0].reason == "inactive in hubspot and no rep has its e-mail"


def test_a_new_rep_never_takes_an_existing_or_mapped_rep_id_whatever_the_case() -> None:
    users = [CrmUser("1", "Alice One", "alice@one.example", None, True),
             CrmUser("2", "Alice Two", "alice@two.example", None, True),
             CrmUser("3", "Alice Three", "ALICE@three.example", None, True)]
    proposal = propose("hubspot", users, [Rep("Alice", "Alice", None)], {"99": "alice-2"}, tenant_timezone=ZONE)
    assert decided(proposal) == [("1", "create", "alice-3"), ("2", "create", "alice-4"), ("3", "create", "alice-5")]


def test_a_user_without_email_gets_an_id_from_the_crm_and_its_user_id() -> None:
    proposal = propose("salesforce", [CrmUser("0055g00000Ab1CdAAE", None, None, None, True)], [], {},
                       tenant_timezone=ZONE)
    (decision,) = proposal.decisions
    assert decision.rep_id == "salesforce-0055g00000Ab1CdAAE"
    assert decision.new_rep is not None and decision.new_rep.name == "salesforce user 0055g00000Ab1CdAAE"
    assert decision.new_rep.email is None


def test_two_crm_accounts_with_one_email_make_one_rep() -> None:
    users = [CrmUser("1", "Dana", "dana@example.com", None, True), CrmUser("2", "Dana", "Dana@example.com", None, True)]
    proposal = propose("pipedrive", users, [], {}, tenant_timezone=ZONE)
    assert decided(proposal) == [("1", "create", "dana"), ("2", "map", "dana")]
    assert len(proposal.new_reps()) == 1


def test_the_crms_time_zone_is_taken_when_it_is_an_iana_name_else_the_tenants() -> None:
    users = [CrmUser("1", "Ana", "ana@example.com", "America/Los_Angeles", True),
             CrmUser("2", "Ben", "ben@example.com", "Pacific Standard Time", True)]
    reps = propose("salesforce", users, [], {}, tenant_timezone=ZONE).new_reps()
    assert [(r.rep_id, r.timezone) for r in reps] == [("ana", "America/Los_Angeles"), ("ben", ZONE)]


def test_manual_mode_proposes_the_same_and_applies_nothing() -> None:
    automatic = propose("hubspot", [ALICE], [], {}, tenant_timezone=ZONE)
    manual = propose("hubspot", [ALICE], [], {}, tenant_timezone=ZONE, mode="manual")
    assert manual.decisions == automatic.decisions
    assert not manual.applies


def test_new_reps_join_the_chosen_team() -> None:
    (rep,) = propose("hubspot", [ALICE], [], {}, tenant_timezone=ZONE, team_id="sales-emea").new_reps()
    assert rep.team_id == "sales-emea"


def test_the_order_is_stable_active_users_first() -> None:
    users = [CrmUser("b", "B", "b@x.example", None, False), CrmUser("c", "C", "c@x.example", None, True),
             CrmUser("a", "A", "a@x.example", None, True)]
    assert [d.crm_user_id for d in propose("hubspot", users, [], {}, tenant_timezone=ZONE).decisions] == ["a", "c", "b"]


@pytest.mark.parametrize(("email", "expected"), [
    ("Ana.Berg+crm@Example.com", "ana.berg-crm"), ("___@example.com", "hubspot-5"), (None, "hubspot-5")])
def test_a_rep_id_is_made_of_the_emails_local_part_as_an_id(email: str | None, expected: str) -> None:
    assert new_rep_id("hubspot", "5", normal_email(email), set()) == expected


def test_malformed_emails_are_neither_matched_nor_carried() -> None:
    user = CrmUser("1", "Eve", "not-an-address", None, True)
    proposal = propose("hubspot", [user], [Rep("eve", "Eve", "not-an-address")], {}, tenant_timezone=ZONE)
    (decision,) = proposal.decisions
    assert decision.action == "create" and decision.new_rep is not None and decision.new_rep.email is None


def test_the_unmapped_owner_reason_is_the_one_mapping_gives_deals_and_activities() -> None:
    maps = TenantMaps("hubspot", ZONE, "EUR")
    moment = datetime(2026, 11, 2, 9, tzinfo=UTC)
    deal = DealView(amount=Decimal("10"), currency="EUR", stage="closedwon", stage_label=None, status=None,
                    status_at=moment, owner="81422101", close_date=date(2026, 11, 2), created_at=None, name=None,
                    deleted=False, latest=moment, expected_close=None, probability=None, forecast_category=None)
    assert deal_data("d1", deal, maps, moment) == ["owner: hubspot user '81422101' is not mapped to a rep"]
    activity = activity_data("a1", "call", "81422101", moment, None, None, maps)
    assert isinstance(activity, list) and UNMAPPED_OWNER in activity[0]
    assert UNMAPPED_OWNER in "owner: hubspot user '81422101' is not mapped to a rep"


def test_a_new_reps_event_is_a_valid_rep_upserted_from_the_sync() -> None:
    at = datetime(2026, 12, 7, 9, tzinfo=UTC)
    event = rep_event("hubspot", "81422101", NewRep("alice", "Alice Example", "alice@example.com", ZONE, "unassigned"),
                      at)
    assert (event.type, event.source, event.time) == ("rep.upserted", "hubspot-user-sync", at)
    assert event.data.model_dump() == {"rep_id": "alice", "name": "Alice Example", "team_id": "unassigned",
                                       "manager_id": None, "email": "alice@example.com", "timezone": ZONE,
                                       "active": True}
    later = rep_event("hubspot", "81422101", NewRep("alice", "Alice Example", None, ZONE, "unassigned"),
                      at.replace(hour=10))
    assert later.id != event.id and event.id.startswith("crm-users:hubspot:")


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(users_rules).failed == 0
