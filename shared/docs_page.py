"""`docs/api/index.html`: the contract as one static page for the teams that call or subscribe to Attain,
built from the same OpenAPI and AsyncAPI documents `shared.docs` writes (no JavaScript, no network)."""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = ("body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}"
         "table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}"
         "td,th{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}"
         "th{background:#f4f4f4}code{font-size:.9em}h2{margin-top:2.5rem}")
METHODS = ("get", "post", "put", "patch", "delete")


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n\n")[0].replace("\n", " ")


def _endpoints(name: str, doc: dict[str, Any]) -> str:
    rows = []
    for path, item in sorted(doc.get("paths", {}).items()):
        for method in METHODS:
            if (op := item.get(method)) is not None:
                what = _first_line(op.get("description")) or op.get("summary", "")
                rows.append(f"<tr><td><code>{method.upper()}</code></td><td><code>{escape(path)}</code></td>"
                            f"<td>{escape(what)}</td></tr>")
    about = escape(_first_line(doc.get("info", {}).get("description")))
    return (f'<h3 id="{escape(name)}">{escape(name)}</h3><p>{about}'
            f' Full document: <a href="{escape(name)}.openapi.json">{escape(name)}.openapi.json</a>.</p>'
            "<table><tr><th>method</th><th>path</th><th>what it does</th></tr>" + "".join(rows) + "</table>")


def _channels(asyncapi: dict[str, Any], types_by_topic: dict[str, list[str]]) -> str:
    rows = []
    for _, channel in sorted(asyncapi.get("channels", {}).items()):
        address = channel.get("address", "")
        links = ", ".join(f'<a href="schemas/{escape(t)}.json"><code>{escape(t)}</code></a>'
                          for t in types_by_topic.get(address, []))
        rows.append(f"<tr><td><code>{escape(address)}</code></td><td>{links}</td>"
                    f"<td>{escape(channel.get('description', ''))}</td></tr>")
    return ("<table><tr><th>topic</th><th>event types (JSON Schema)</th><th>what it carries</th></tr>"
            + "".join(rows) + "</table>")


def page(openapi: dict[str, dict[str, Any]], asyncapi: dict[str, Any], types_by_topic: dict[str, list[str]]) -> str:
    """The whole page; deterministic for the same documents."""
    services = "".join(_endpoints(name, doc) for name, doc in openapi.items())
    toc = " · ".join(f'<a href="#{escape(name)}">{escape(name)}</a>' for name in openapi)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Attain: the interface</title>"
        f"<style>{STYLE}</style></head><body>\n<h1>Attain: the interface</h1>\n"
        "<p>Generated from the code by <code>make docs</code> (<code>python -m shared.docs docs/api</code>); a unit "
        "test fails when this page differs from what the code would generate. Every read endpoint is tenant-scoped "
        "by <code>Authorization: Bearer &lt;token&gt;</code>.</p>\n"
        f"<h2>HTTP APIs</h2><p>{toc}</p>{services}\n"
        f"<h2>Topics</h2><p>{escape(asyncapi.get('info', {}).get('description', ''))} Full document: "
        f'<a href="asyncapi.json">asyncapi.json</a>.</p>{_channels(asyncapi, types_by_topic)}\n'
        "</body></html>\n")
