"""notify's messages as people see them, in a real browser (Debian's chromium, driven by Playwright, as the
dashboard's tests: tests/integration/browser/conftest.py): screenshots in .local/test-artifacts/notify/.

- slack-message.png: a celebration, drawn by block_kit_preview.html beside this file. That is a preview, not
  Slack (which has no offline renderer); the message is first checked against the Block Kit schema made from
  Slack's own types (tests/schemas/block_kit.py).
- teams-card.png: a check-in's Adaptive Card rendered by Microsoft's own renderer, npm's `adaptivecards`, with
  Microsoft Teams' light host config and container style from `adaptivecards-designer` (the package the
  card schema comes from), and `markdown-it` for the TextBlocks' markdown, as the designer does.
- email.png: a check-in's HTML part exactly as `smtp.build_message` builds it, parsed back with `email`.

The renderers are npm packages at pinned versions, installed once into the tools cache
(``~/.cache/attain/tools/notify-render-.../``, as tests/integration/sso/idp.py installs oidc-provider); when
npm or the registry is missing the tests fail saying why, they do not skip. No Kafka, no database: pages are
set from strings and files (``file://``), no server.
"""

from __future__ import annotations

import base64
import email
import email.policy
import fcntl
import json
import shutil
import subprocess
import tarfile
import tempfile
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from deploy.local.procs import LOCAL
from deploy.local.tools import TOOLS_DIR
from services.notify.channels.smtp import build_message
from services.notify.messages import content, render
from tests.integration.browser.conftest import browser  # noqa: F401 - the dashboard tests' chromium, here too
from tests.schemas import block_kit
from tests.unit.services.notify import adaptive_card_schema
from tests.unit.services.notify.factories import BASE, notification

SHOTS = LOCAL / "test-artifacts" / "notify"
PREVIEW = Path(__file__).resolve().with_name("block_kit_preview.html")
NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)

ADAPTIVECARDS = "3.0.6"
MARKDOWN_IT = "14.1.0"
LATO = "5.3.0"  # @fontsource/lato: Slack's typeface (a free font), for the preview
DESIGNER = adaptive_card_schema.VERSION  # adaptivecards-designer: Teams' host config and container style
RENDERERS = TOOLS_DIR / f"notify-render-adaptivecards-{ADAPTIVECARDS}-markdown-it-{MARKDOWN_IT}-lato-{LATO}"
DESIGNER_FILES = {"package/lib/hostConfigs/microsoft-teams-light.json": "microsoft-teams-light.json",
                  "package/dist/containers/teams-container-light.css": "teams-container-light.css"}


class RendererUnavailable(RuntimeError):
    """npm, the registry or a file in a package is missing: the message says which."""


def renderers() -> Path:
    """The folder with node_modules/{adaptivecards, markdown-it, @fontsource/lato} and the designer's Teams
    files, installed with npm on first use (a lock: a parallel run waits for this one)."""
    done = RENDERERS / ".done"
    if done.exists():
        return RENDERERS
    npm = shutil.which("npm")
    if npm is None:
        raise RendererUnavailable("rendering the Teams card needs npm's adaptivecards: install Node.js and npm")
    RENDERERS.mkdir(parents=True, exist_ok=True)
    with (RENDERERS / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return RENDERERS
        packages = [f"adaptivecards@{ADAPTIVECARDS}", f"markdown-it@{MARKDOWN_IT}", f"@fontsource/lato@{LATO}"]
        installed = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-save", "--ignore-scripts",
                                    "--prefix", str(RENDERERS), *packages], capture_output=True, text=True,
                                   check=False, timeout=600)
        if installed.returncode != 0:
            raise RendererUnavailable(f"npm install {' '.join(packages)} failed:\n{installed.stderr[-2000:]}")
        with tempfile.TemporaryDirectory() as folder:
            packed = subprocess.run([npm, "pack", f"adaptivecards-designer@{DESIGNER}", "--pack-destination", folder,
                                     "--silent"], capture_output=True, text=True, check=False, timeout=300)
            if packed.returncode != 0:
                raise RendererUnavailable(f"npm pack adaptivecards-designer@{DESIGNER} failed: {packed.stderr[-500:]}")
            with tarfile.open(Path(folder) / packed.stdout.strip().splitlines()[-1]) as archive:
                for member, name in DESIGNER_FILES.items():
                    extracted = archive.extractfile(member)
                    if extracted is None:
                        raise RendererUnavailable(f"adaptivecards-designer@{DESIGNER} has no {member}")
                    (RENDERERS / name).write_bytes(extracted.read())
        for needed in ("adaptivecards/dist/adaptivecards.min.js", "markdown-it/dist/markdown-it.min.js",
                       "@fontsource/lato/files/lato-latin-400-normal.woff2"):
            if not _module(needed).is_file():
                raise RendererUnavailable(f"node_modules/{needed} is missing after npm install")
        done.touch()
    return RENDERERS


def _module(path: str) -> Path:
    return RENDERERS / "node_modules" / path


def _lato() -> str:
    """@font-face rules for Lato (400, 400 italic, 700, 900) as data: URLs (a file:// page may not load fonts
    from another file:// path)."""
    rules = []
    for weight, style in ((400, "normal"), (400, "italic"), (700, "normal"), (900, "normal")):
        woff2 = _module(f"@fontsource/lato/files/lato-latin-{weight}-{style}.woff2").read_bytes()
        rules.append(f"@font-face {{ font-family: Lato; font-weight: {weight}; font-style: {style}; "
                     f"src: url(data:font/woff2;base64,{base64.b64encode(woff2).decode()}) format('woff2'); }}")
    return "\n".join(rules)


async def _shoot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000, f"{path}: an empty picture?"
    return path


@pytest.fixture(scope="module")
def installed() -> Path:
    return renderers()


async def test_a_celebration_in_the_block_kit_preview(browser: Browser, installed: Path) -> None:  # noqa: F811
    n = notification("celebration", "en_US")
    message = render(n).slack
    assert list(block_kit.message_errors(message, block_kit.validator())) == []
    page = await browser.new_page(viewport={"width": 680, "height": 300}, device_scale_factor=2)
    await page.goto(PREVIEW.as_uri())
    await page.add_style_tag(content=_lato())
    await page.evaluate("m => renderMessage(m, {appName: 'Attain', time: '10:30 AM'})", message)
    await page.evaluate("document.fonts.ready")
    c = content(n)
    assert await page.locator(".app").inner_text() == "Attain"
    assert await page.locator(".header").inner_text() == c.title == "Well done, Ana Berg!"
    assert await page.locator(".section-text").inner_text() == "Ana Berg just hit 100% of the 2026-Q4 target!"
    fields = page.locator(".field")
    assert await fields.all_inner_texts() == ["Period\n2026-Q4", "Date\nDec 7, 2026"]
    assert await fields.locator("b").all_inner_texts() == ["Period", "Date"]  # *Period*: mrkdwn bold
    button = page.get_by_role("button", name="See the numbers")
    assert await button.get_attribute("href") == n.link == f"{BASE}/reps/ana?period=2026-Q4"
    assert "primary" in (await button.get_attribute("class") or "")
    assert await page.locator(".not-drawn").count() == 0
    assert await page.evaluate("document.fonts.check('15px Lato')")
    await _shoot(page, "slack-message")
    # the preview's mrkdwn: links, bold, italic and Slack's escapes (which notify uses for event text)
    drawn = await page.evaluate("t => mrkdwn(t)",
                                "*Q4* _done_ &lt;b&gt; &amp; <https://attain.example/x?a=1&amp;b=2|the page>")
    assert drawn == ('<b>Q4</b> <i>done</i> &lt;b&gt; &amp; '
                     '<a class="link" href="https://attain.example/x?a=1&amp;b=2">the page</a>')
    await page.close()


TEAMS_PAGE = """<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>Adaptive Card, Teams host config</title>
<style>{container_css}
body {{ margin: 0; padding: 20px; background: #F6F6F6; }}
.teams-bot-logo {{ background-color: #6264a7; }} /* the designer's bot-framework.png is not in its package */
</style></head>
<body><div class="teams-frame"><div class="teams-hexagon-outer"><div class="teams-hexagon-inner">
<div class="teams-bot-logo"></div></div></div>
<div class="teams-inner-frame"><div class="teams-botNameAndTime">Attain (Workflows)&nbsp;&nbsp;&nbsp;10:30</div>
<div class="teams-card" id="card"></div></div></div></body></html>"""

RENDER_CARD = """([card, hostConfig]) => {
  const adaptive = new AdaptiveCards.AdaptiveCard();
  adaptive.hostConfig = new AdaptiveCards.HostConfig(hostConfig);
  window.opened = [];
  adaptive.onExecuteAction = (action) => window.opened.push(action.url);
  const context = new AdaptiveCards.SerializationContext(AdaptiveCards.Versions.v1_5);
  adaptive.parse(card, context);
  const events = [];
  for (let i = 0; i < context.eventCount; i++) events.push(context.getEventAt(i).message);
  const failures = adaptive.validateProperties().validationEvents.map(e => e.message);
  document.getElementById("card").appendChild(adaptive.render());
  return {events, failures};
}"""


async def test_a_check_in_card_rendered_by_microsofts_adaptive_cards_renderer(browser: Browser,  # noqa: F811
                                                                               installed: Path) -> None:
    n = notification("check_in", "de_DE")
    envelope = render(n).teams
    card: dict[str, Any] = envelope["attachments"][0]["content"]
    host_config = json.loads((installed / "microsoft-teams-light.json").read_text())
    page = await browser.new_page(viewport={"width": 760, "height": 300}, device_scale_factor=2)
    await page.set_content(TEAMS_PAGE.format(lang=card["lang"],
                                             container_css=(installed / "teams-container-light.css").read_text()))
    await page.add_script_tag(path=str(_module("markdown-it/dist/markdown-it.min.js")))
    await page.add_script_tag(path=str(_module("adaptivecards/dist/adaptivecards.min.js")))
    outcome = await page.evaluate(RENDER_CARD, [card, host_config])
    assert outcome["events"] == [] and outcome["failures"] == [], outcome  # the renderer took every element
    rendered = page.locator("#card .ac-adaptiveCard")
    text = await rendered.inner_text()
    assert "Check-in mit Ana Berg" in text
    assert "Ana is at 61% of the expected won revenue for 2026-Q4." in text
    assert "Umsatz gewonnen" in text and "1.234,50\xa0€ (erwartet 2.024,00\xa0€)" in text
    assert "Fällig" in text and "09.12.2026" in text
    items = await rendered.locator("li").all_inner_texts()  # the suggested actions, a markdown list
    assert items == ["Review the three largest open deals", "Plan two demos"]
    title = rendered.locator(".ac-textBlock").first
    assert await title.evaluate("e => getComputedStyle(e).fontWeight") == "600"  # bolder, in Teams' config
    button = page.get_by_role("link", name="Zu den Zahlen")  # Action.OpenUrl: a button in the role of a link
    drawn_as = await button.evaluate("e => e.tagName + ' ' + e.className")
    assert drawn_as == "BUTTON ac-pushButton style-default ac-selectable"
    await button.click()
    assert await page.evaluate("window.opened") == [n.link]
    await _shoot(page, "teams-card")
    await page.close()


async def test_a_check_in_emails_html_part_as_sent(browser: Browser) -> None:  # noqa: F811
    n = notification("check_in", "en_US")
    mail = render(n).email
    sent = build_message(mail, sender="notify@attain.example", recipient="max@example.com",
                         idempotency_key="check_in-t-1:max:email", unsubscribe_url=n.unsubscribe_url, now=NOW,
                         sender_name="Attain")
    parsed = email.message_from_bytes(sent.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    part = parsed.get_body(preferencelist=("html",))
    assert part is not None and part.get_content_type() == "text/html"
    html = part.get_content()
    assert html.replace("\r\n", "\n") == mail.html  # what was built arrives (in SMTP's CRLF lines)
    page = await browser.new_page(viewport={"width": 700, "height": 400}, device_scale_factor=2)
    await page.set_content(html)
    assert await page.title() == mail.subject == "Check-in with Ana Berg" == parsed["Subject"]
    assert await page.locator("html").get_attribute("lang") == "en"
    assert await page.locator("h1").inner_text() == "Check-in with Ana Berg"
    facts = {await row.locator("th").inner_text(): await row.locator("td").inner_text()
             for row in await page.locator("table table tr").all()}
    assert facts == {"Won revenue": "€1,234.50 (expected €2,024.00)", "Due": "Dec 9, 2026"}
    assert await page.get_by_role("link", name="See the numbers").get_attribute("href") == n.link
    assert await page.get_by_role("link", name="Choose what you get").get_attribute("href") == n.unsubscribe_url
    assert await page.locator("li").all_inner_texts() == ["Review the three largest open deals", "Plan two demos"]
    await _shoot(page, "email")
    await page.close()
