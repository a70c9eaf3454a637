"""A JSON schema for a Slack message's Block Kit `blocks`, generated from Slack's own TypeScript types.

Slack publishes no JSON schema for Block Kit. It publishes the types of its Node SDK, npm's `@slack/types`
(``KnownBlock``: the union of HeaderBlock, SectionBlock, ContextBlock, ActionsBlock, DividerBlock, ...), and
npm's `ts-json-schema-generator` turns a TypeScript type into a JSON schema (draft-07). ``Blocks`` below is
``KnownBlock[]``; every object gets ``additionalProperties: false`` (what the types allow, nothing more), so
an unknown block type, a header with ``mrkdwn`` text or a misspelt property is refused.

TypeScript does not express lengths, counts or "one of these two is required". The limits that the types'
own doc comments state (``Maximum length for the text in this field is 150 characters``, ``Required if no
`text` is provided``...) are added on top, in `LIMITS` (each with the words of the comment it comes from,
which tests/unit/services/notify/test_block_kit_schema.py checks), plus Slack's 50 blocks per message
(docs.slack.dev, chat.postMessage; @slack/types says it of a streamed chunk's blocks).

The pins: `@slack/types` SLACK_TYPES, `ts-json-schema-generator` GENERATOR (2.4.0 is the newest that runs
on Node 20; 2.5.0 and later ask for Node 22), TypeScript TYPESCRIPT (the generator's compiler). They are
installed once with npm into ``~/.cache/attain/tools/block-kit-<versions>/`` (the tools cache of
deploy/local/tools.py, as tests/integration/sso/idp.py installs oidc-provider; ``ATTAIN_TOOL_BLOCK_KIT``
names another directory), the schema generated there once (``known-blocks.schema.json``) and read from
there after. Without Node.js, npm or the registry, `SchemaUnavailable` says why: a test that needs the
schema fails with it (it does not skip).
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from deploy.local.tools import TOOLS_DIR

SLACK_TYPES = "3.2.0"
GENERATOR = "2.4.0"
TYPESCRIPT = "5.9.3"
PACKAGES = (f"@slack/types@{SLACK_TYPES}", f"ts-json-schema-generator@{GENERATOR}", f"typescript@{TYPESCRIPT}")
MAX_BLOCKS = 50  # docs.slack.dev: "up to 50 blocks" in a message (100 in a modal or Home tab)
MAX_MESSAGE_TEXT = 40_000  # chat.postMessage truncates `text` longer than this

# The one type the schema is generated for, and the compiler options to read @slack/types with.
ENTRY = """import type { KnownBlock } from "@slack/types";

/** A Slack message's `blocks`: known Block Kit blocks. */
export type Blocks = KnownBlock[];
"""
TSCONFIG = {"compilerOptions": {"strict": True, "module": "nodenext", "moduleResolution": "nodenext",
                                "target": "es2022", "skipLibCheck": True, "noEmit": True},
            "files": ["blocks.ts"]}


class SchemaUnavailable(RuntimeError):
    """The tools could not be installed or the schema not generated; the message says why."""


@dataclass(frozen=True)
class Limit:
    """`keywords` added to `prop` of `definition` (``""``: to the definition itself); `stated` is what
    @slack/types says (in the description of `prop`, or of `source` when that is another property): the
    limit's source."""

    definition: str
    prop: str
    keywords: Mapping[str, Any]
    stated: str
    source: str = ""

    @property
    def described_by(self) -> str:
        return self.source or self.prop


LIMITS = (
    Limit("PlainTextElement", "text", {"minLength": 1, "maxLength": 3000},
          "The minimum length is 1 and maximum length is 3000 characters."),
    Limit("MrkdwnElement", "text", {"minLength": 1, "maxLength": 3000},
          "The minimum length is 1 and maximum length is 3000 characters."),
    Limit("HeaderBlock", "text", {"properties": {"text": {"maxLength": 150}}},
          "Maximum length for the text in this field is 150 characters."),
    Limit("SectionBlock", "", {"anyOf": [{"required": ["text"]}, {"required": ["fields"]}]},
          "Required if no `text` is provided.", source="fields"),
    Limit("SectionBlock", "fields", {"maxItems": 10, "items": {"properties": {"text": {"maxLength": 2000}}}},
          "Maximum number of items is 10.\nMaximum length for the text in each item is 2000 characters."),
    Limit("ContextBlock", "elements", {"minItems": 1, "maxItems": 10}, "Maximum number of items is 10."),
    Limit("ActionsBlock", "elements", {"minItems": 1, "maxItems": 25},
          "There is a maximum of 25 elements in each action block."),
    Limit("Button", "text", {"properties": {"text": {"maxLength": 75}}},
          "Maximum length for the text in this field is 75 characters."),
    Limit("Button", "url", {"maxLength": 3000}, "Maximum length for this field is 3000\ncharacters."),
    Limit("Button", "action_id", {"maxLength": 255}, "Maximum length for this field is 255 characters."),
    Limit("Button", "value", {"maxLength": 2000}, "Maximum length for this field is 2000 characters."),
    *(Limit(block, "block_id", {"maxLength": 255}, "Maximum length for this field is 255 characters.")
      for block in ("HeaderBlock", "SectionBlock", "ContextBlock", "ActionsBlock", "DividerBlock")),
)


def directory() -> Path:
    override = os.environ.get("ATTAIN_TOOL_BLOCK_KIT")
    if override:
        return Path(override)
    return TOOLS_DIR / f"block-kit-slack-types-{SLACK_TYPES}-generator-{GENERATOR}-typescript-{TYPESCRIPT}"


def generated() -> dict[str, Any]:
    """The schema exactly as ts-json-schema-generator made it from @slack/types (``#/definitions/Blocks``),
    installing and generating on first use."""
    folder = directory()
    schema_file = folder / "known-blocks.schema.json"
    if not schema_file.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel run waits for this one's install instead of racing it
            if not schema_file.is_file():
                _install(folder)
                _generate(folder, schema_file)
    schema: dict[str, Any] = json.loads(schema_file.read_text())
    return schema


def load() -> dict[str, Any]:
    """The schema of a message's `blocks`: the generated one with `LIMITS` and at most `MAX_BLOCKS`."""
    schema = copy.deepcopy(generated())
    definitions: dict[str, Any] = schema["definitions"]
    for limit in LIMITS:
        if limit.prop:
            props = definitions[limit.definition]["properties"]
            props[limit.prop] = _tightened(props[limit.prop], limit.keywords)
        else:
            definitions[limit.definition] = _tightened(definitions[limit.definition], limit.keywords)
    definitions["Blocks"] = {**definitions["Blocks"], "minItems": 1, "maxItems": MAX_BLOCKS}
    return schema


def _tightened(schema: dict[str, Any], keywords: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` and `keywords` both: beside a ``$ref`` draft-07 ignores every other keyword, so a ``$ref``
    (or a schema that already combines) is wrapped in an ``allOf``; a plain one takes the keywords in."""
    if "$ref" in schema or any(key in schema for key in ("anyOf", "allOf", "oneOf")) or any(
            key in schema for key in keywords):
        described = {"description": schema["description"]} if "description" in schema else {}
        inner = {key: value for key, value in schema.items() if key != "description"}
        return {**described, "allOf": [inner, dict(keywords)]}
    return {**schema, **keywords}


def validator() -> jsonschema.Draft7Validator:
    schema = load()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def message_errors(message: Any, blocks: jsonschema.Draft7Validator | None = None) -> Iterator[str]:
    """What Slack would refuse in an incoming webhook's or ``chat.postMessage``'s body `message`, one line
    each: no `text` (the notification's fallback), or `blocks` that are not valid Block Kit."""
    if not isinstance(message, dict):
        yield f"the body is not a JSON object but {type(message).__name__}"
        return
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        yield "text: a message needs a non-empty `text` (the notification's fallback)"
    elif len(text) > MAX_MESSAGE_TEXT:
        yield f"text: {len(text)} characters, more than {MAX_MESSAGE_TEXT}"
    if "blocks" not in message:
        return
    checker = blocks or validator()
    for error in sorted(checker.iter_errors(message["blocks"]), key=lambda e: list(e.path)):
        yield describe(error, checker.schema)


def describe(error: jsonschema.ValidationError, root: Any, where: str = "blocks") -> str:
    """``blocks[0].text.type: 'plain_text' was expected``: where (below `where`), and the most telling reason.
    Within an ``anyOf`` of types (of block, of element, of text object) that is the reason of the branch of
    the object's own ``type``; an object whose ``type`` no branch has is said to be of an unknown type. Any
    schema whose unions tell their members by a ``type`` const or one-value enum (`root`: the whole schema,
    for its ``#/definitions``) reads the same: the Adaptive Card schema does."""
    while error.context and isinstance(error.instance, dict) and error.validator == "anyOf":
        kind = error.instance.get("type")
        alternatives: list[Any] = list(error.validator_value)  # type: ignore[arg-type]  # anyOf: a list
        branches = [_types(branch, root) for branch in alternatives]
        if not any(branches):  # not a choice between types (a section's text or fields)
            break
        if not any(kind in types for types in branches):
            known = sorted(set().union(*branches))
            return f"{_where(error, where)}: unknown type {kind!r} (known here: {', '.join(known)})"
        own = [i for i, types in enumerate(branches) if kind in types]
        errors = [sub for sub in error.context if sub.schema_path[0] in own]
        if not errors:
            break
        error = jsonschema.exceptions.best_match(errors)
    if error.validator == "anyOf":  # not one type of many: say what each way of being valid misses
        return f"{_where(error, where)}: none of: " + " | ".join(dict.fromkeys(_reason(sub) for sub in error.context))
    return f"{_where(error, where)}: {_reason(error)}"


def _reason(error: jsonschema.ValidationError) -> str:
    """The validator's message, without the whole instance when it is about its size."""
    bounds = {"maxLength": "at most", "minLength": "at least", "maxItems": "at most", "minItems": "at least"}
    verb = "allowed" if str(error.validator).startswith("max") else "needed"
    if error.validator in bounds and isinstance(error.instance, str | list):
        unit = "characters" if isinstance(error.instance, str) else "items"
        return f"{len(error.instance)} {unit}, {bounds[str(error.validator)]} {error.validator_value} {verb}"
    return error.message if len(error.message) <= 300 else error.message[:299] + "…"


def _where(error: jsonschema.ValidationError, where: str) -> str:
    return where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


def _types(schema: Any, root: Any) -> set[str]:
    """The ``type`` consts (or one-value enums) an object valid under `schema` may have."""
    if "$ref" in schema:
        return _types(root["definitions"][schema["$ref"].rpartition("/")[2]], root)
    kind = schema.get("properties", {}).get("type", {})
    found = {kind["const"]} if "const" in kind else set(kind["enum"]) if len(kind.get("enum", ())) == 1 else set()
    for keyword in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(keyword, ()):
            found |= _types(sub, root)
    return found


def _install(folder: Path) -> None:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SchemaUnavailable("the Block Kit schema is generated with npm's ts-json-schema-generator: install"
                                " Node.js and npm (apt-get install nodejs npm)")
    marker = folder / "node_modules" / "ts-json-schema-generator" / "package.json"
    if marker.exists() and (folder / "node_modules" / "@slack" / "types" / "package.json").exists():
        return
    done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--no-save", "--ignore-scripts",
                           "--prefix", str(folder), *PACKAGES], capture_output=True, text=True, check=False,
                          timeout=600)
    if done.returncode != 0 or not marker.exists():
        raise SchemaUnavailable(f"npm install {' '.join(PACKAGES)} failed:\n{done.stderr[-2000:]}")


def _generate(folder: Path, schema_file: Path) -> None:
    (folder / "blocks.ts").write_text(ENTRY)
    (folder / "tsconfig.json").write_text(json.dumps(TSCONFIG, indent=2))
    cli = folder / "node_modules" / "ts-json-schema-generator" / "bin" / "ts-json-schema-generator.js"
    partial = schema_file.with_suffix(".part")
    done = subprocess.run(["node", str(cli), "--path", "blocks.ts", "--type", "Blocks", "--tsconfig", "tsconfig.json",
                           "--out", str(partial)], cwd=folder, capture_output=True, text=True, check=False,
                          timeout=300)
    if done.returncode != 0 or not partial.is_file():
        raise SchemaUnavailable(f"ts-json-schema-generator could not make a schema of @slack/types' KnownBlock:\n"
                                f"{(done.stderr or done.stdout)[-2000:]}")
    schema = json.loads(partial.read_text())
    if "KnownBlock" not in schema.get("definitions", {}):
        raise SchemaUnavailable(f"the generated schema has no KnownBlock: {sorted(schema)}")
    partial.replace(schema_file)  # whole or not at all
