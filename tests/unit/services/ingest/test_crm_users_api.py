"""What `GET /v1/crm/{crm}/users/proposal` and `POST .../users/sync` answer (per user, and by outcome), and the body
of `PUT /v1/crm/{crm}/user-mapping-mode`."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.ingest.crm.reading.model import CrmUser
from services.ingest.crm.users_rules import Rep, propose
from services.ingest.crm_api import Reprocessed
from services.ingest.crm_users_api import ModeIn, _out


def test_the_answer_says_per_user_and_by_outcome_what_was_done() -> None:
    users = [CrmUser("1", "Alice", "alice@example.com", None, True), CrmUser("2", "Bo", "bo@example.com", None, True),
             CrmUser("3", "Cy", "cy@example.com", None, True), CrmUser("4", "Di", "di@example.com", None, False)]
    proposal = propose("hubspot", users, [Rep("bo", "Bo", "bo@example.com")], {"3": "cy"},
                       tenant_timezone="Europe/Berlin")
    answer = _out(proposal, True, Reprocessed(accepted=2, duplicate=0, still_dead_lettered=1))
    assert (answer.created, answer.mapped, answer.kept) == ({"1": "alice"}, {"2": "bo"}, {"3": "cy"})
    assert answer.skipped == {"4": "inactive in hubspot and no rep has its e-mail"}
    assert answer.decisions[0].new_rep is not None and answer.decisions[0].new_rep.email == "alice@example.com"
    assert answer.applied and answer.republished == Reprocessed(accepted=2, duplicate=0, still_dead_lettered=1)


def test_the_mode_is_automatic_or_manual_with_an_optional_team() -> None:
    assert ModeIn.model_validate({"mode": "manual"}).team_id is None
    assert ModeIn.model_validate({"mode": "automatic", "team_id": "emea"}).team_id == "emea"


@pytest.mark.parametrize("body", [{}, {"mode": "sometimes"}, {"mode": "manual", "team_id": ""},
                                  {"mode": "manual", "extra": 1}])
def test_anything_else_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ModeIn.model_validate(body)
