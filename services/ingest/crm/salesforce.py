"""Salesforce: Outbound Messages (SOAP) and Change Data Capture events (JSON), for Opportunity, Task and Event.

This module is the vendor's entry point (`verify`, `parse`, and the SOAP answers `ack` and `nack_fault`);
`salesforce_outbound.py` reads Outbound Messages, `salesforce_cdc.py` change events, and `salesforce_record.py`
the record fields both carry. Each states its own decisions.

Written from Salesforce's documentation:
- SOAP API Developer Guide, "Understanding Outbound Messaging", "Understanding the Outbound Messaging WSDL"
  (developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_wsdl.htm): the
  `notifications` element (namespace http://soap.sforce.com/2005/09/outbound) with `OrganizationId`, `ActionId`,
  `SessionId`, `EnterpriseUrl`, `PartnerUrl` and up to 100 `Notification`s, each an `Id` and an `sObject` whose
  fields are in urn:sobject.enterprise.soap.sforce.com; the `notificationsResponse`/`Ack` answer; "a message may be
  delivered more than once, check the notification IDs";
- Change Data Capture Developer Guide, "Change Event Message Structure", "ChangeEventHeader Fields", "Change Event
  Body Fields", "Gap Events", "Overflow Events"; Streaming API Developer Guide, "Differences Between Change Events
  Received with Streaming API vs. Pub/Sub API".

Decisions:
- Authentication. Outbound Messages carry no signature: the tenant's secret is a token the endpoint URL carries
  (`?token=`), compared in constant time with every offered secret (the current one and, during rotation, the
  previous one). With an org id configured, the message's `OrganizationId` must be that org. Salesforce ids have a
  15-character case-sensitive form and an 18-character form that appends a checksum of the letters' case, so ids
  are compared case-sensitively on their first 15 characters. CDC events carry no org id; a relay may add
  `OrganizationId` (or `orgId`) to an event or its envelope, checked when present, else the token alone proves the
  sender. `now` is unused: nothing in a delivery is timestamped for replay protection.
"""

from __future__ import annotations

import codecs
import hmac
import re
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Final, Literal
from urllib.parse import parse_qs, urlsplit

from services.ingest.crm import salesforce_cdc, salesforce_outbound
from services.ingest.crm.model import Change, PayloadError, Secret, WebhookAuthError, WebhookRequest
from services.ingest.crm.salesforce_outbound import OUTBOUND, SOAP_ENV
from services.ingest.crm.salesforce_record import CRM

__all__ = ["CONTENT_TYPE", "CRM", "ack", "nack_fault", "parse", "same_org", "verify"]

CONTENT_TYPE: Final = "text/xml; charset=utf-8"  # of ack() and nack_fault()

_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ACK: Final = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
    b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse>'
    b"</soapenv:Body></soapenv:Envelope>"
)


# --- authentication ---------------------------------------------------------------------------------------------


def verify(request: WebhookRequest, secrets: Sequence[Secret], now: datetime) -> None:
    """Check the URL's `?token=` against the tenant's secrets, and the message's org against the matching one's.

    Raises WebhookAuthError: no token, a token matching no secret, or (with an org id configured) a message from
    another org, one naming no org, or one whose org cannot be read.
    """
    token = _token(request)
    if not token:
        raise WebhookAuthError("missing token: the endpoint URL must carry ?token=<the tenant's Salesforce secret>")
    secret = _matching(token, secrets)
    if secret is None:
        raise WebhookAuthError("wrong token")
    if not secret.org_id:
        return
    try:
        claimed = _claimed_orgs(request)
    except PayloadError as err:
        raise WebhookAuthError(f"cannot read the OrganizationId: {err}") from err
    for org in claimed:
        if org is None:
            raise WebhookAuthError("the message carries no OrganizationId")
        if not same_org(org, secret.org_id):
            raise WebhookAuthError(f"wrong OrganizationId {org!r}")


def same_org(claimed: str, configured: str) -> bool:
    """Whether two org ids name the same org: case-sensitive on the 15 characters both id forms share."""
    return hmac.compare_digest(claimed.strip()[:15].encode(), configured.strip()[:15].encode())


def _token(request: WebhookRequest) -> str | None:
    if "token" in request.query:
        return request.query["token"]
    values = parse_qs(urlsplit(request.url).query).get("token")
    return values[0] if values else None


def _matching(token: str, secrets: Sequence[Secret]) -> Secret | None:
    given = token.encode()
    found = None
    for secret in secrets:  # every secret is compared, so the time taken does not tell which one matched
        if hmac.compare_digest(given, secret.value.encode()) and secret.value and found is None:
            found = secret
    return found


def _claimed_orgs(request: WebhookRequest) -> list[str | None]:
    if _format(request) == "xml":
        return [salesforce_outbound.child_text(salesforce_outbound.notifications(request.body), OUTBOUND,
                                               "OrganizationId")]
    return [org for event in salesforce_cdc.events(request.body) for org in event.orgs]


# --- parsing ----------------------------------------------------------------------------------------------------


def parse(request: WebhookRequest, properties: Collection[str] = ()) -> list[Change]:
    """The deal and activity changes an Outbound Message or a batch of CDC events carries, each with the values of
    the fields `properties` names (the API names the tenant chose to carry) that its record holds.

    Raises PayloadError naming what is wrong: not XML or JSON, a refused DOCTYPE, not a notifications envelope,
    a missing Id, a bad Amount, a malformed change event...
    """
    if _format(request) == "xml":
        return salesforce_outbound.changes(salesforce_outbound.notifications(request.body), tuple(properties))
    return salesforce_cdc.changes(salesforce_cdc.events(request.body), tuple(properties))


def _format(request: WebhookRequest) -> Literal["xml", "json"]:
    head = request.body.removeprefix(codecs.BOM_UTF8).lstrip()[:1]
    if head == b"<":
        return "xml"
    if head in (b"{", b"["):
        return "json"
    if not head:
        raise PayloadError("empty body")
    content_type = request.headers.get("content-type", "")
    raise PayloadError(
        f"body is neither an Outbound Message (XML) nor change events (JSON); content type {content_type!r}"
    )


# --- answers ----------------------------------------------------------------------------------------------------


def ack() -> tuple[bytes, str]:
    """The acknowledgement Salesforce expects for a whole message; without it, it retries for up to 24 hours."""
    return _ACK, CONTENT_TYPE


def nack_fault(message: str) -> tuple[bytes, str]:
    """A SOAP 1.1 Fault saying why a message was refused; Salesforce retries it (it acknowledges nothing)."""
    text = _NOT_XML_CHAR.sub("\ufffd", message).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>soapenv:Client</faultcode><faultstring>{text}</faultstring>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return body.encode(), CONTENT_TYPE
