"""Placeholders in dumped YAML, and their expansion into Helm template text.

deploy/helm_chart.py replaces a field of a rendered object by a token (`__HELM_<n>__`), dumps the object with
PyYAML, then expands every token where it stands: `inline` in place, `block` as `key:` and a `toYaml ... |
nindent` at the key's indentation, `splice` (a key whose value is null) as lines of template text at that
indentation (`{col}` in them becomes the column). So the generator never writes YAML by hand.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

# PyYAML has no type hints (and this project installs no stubs for it): typed as Any, explicitly.
yaml: Any = importlib.import_module("yaml")

TOKEN = re.compile(r"__HELM_(\d+)__")


def _str(dumper: Any, data: str) -> Any:
    style = "|" if "\n" in data and not re.search(r"[ \t]\n|[ \t]$", data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


# Block style for multi-line strings, so the generated alert expressions read as the base's do.
_Dumper: Any = type("_Dumper", (yaml.SafeDumper,), {})
_Dumper.add_representer(str, _str)


def expand(text: str, tokens: list[tuple[str, str]]) -> str:
    """Replace each token of the dumped YAML by its template text, indented where it stands."""
    out: list[str] = []
    for line in text.splitlines():
        splice = re.fullmatch(r"( *)(?:- )?__HELM_(\d+)__: null", line)
        block = re.fullmatch(r"( *)(- )?(.+?): __HELM_(\d+)__", line)
        if splice:
            pad = splice.group(1)
            template = tokens[int(splice.group(2))][1]
            out.extend(pad + part for part in template.replace("{col}", str(len(pad))).splitlines())
        elif block and tokens[int(block.group(4))][0] == "block":
            column = len(block.group(1)) + len(block.group(2) or "") + 2
            out.append(f"{block.group(1)}{block.group(2) or ''}{block.group(3)}:")
            out.append(" " * column + f"{{{{- toYaml {tokens[int(block.group(4))][1]} | nindent {column} }}}}")
        else:
            out.append(TOKEN.sub(lambda m: tokens[int(m.group(1))][1], line))
    return "\n".join(out) + "\n"


def dump(obj: Any) -> str:
    """`obj` as YAML in the base's key order, with the braces of its own strings (alert templates) escaped for
    Helm; tokens have none, so they survive for `expand`."""
    text: str = yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=4096, allow_unicode=True)
    return text.replace("{{", '{{ "{{" }}')
