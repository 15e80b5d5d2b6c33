"""Every text the console shows exists in Chinese and in English: each i18n key the static
JavaScript and index.html use literally, and each family of keys it builds at run time
(states, kinds, priorities, roles, evidence kinds, …), is in both tables of i18n.js."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from citywatch.center.settings import STATIC_DIR
from citywatch.contracts import AlertKind
from citywatch.contracts.messages import EvidenceKind
from citywatch.workorder.lifecycle import Action, WorkOrderState

TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(//[^\n]*)|([A-Za-z_$][\w$]*)|([{}:,\[\]()])|(\S)')
NAMESPACES = (
    "app", "login", "tab", "feed", "filter", "list", "col", "detail", "field", "devices", "kpis",
    "kpi", "error", "legend", "map", "role", "alerts", "evidence", "via", "reason", "data", "tier",
    "box", "cls", "hotline", "csv", "left", "unit", "event", "action",
)  # fmt: skip
KEY_LITERAL = re.compile(rf'"((?:{"|".join(NAMESPACES)})\.[a-z_0-9]+(?:\.[a-z_0-9]+)*)"')
HTML_KEY = re.compile(r'data-i18n(?:-placeholder)?="([^"]+)"')


def tables(source: str) -> dict[str, set[str]]:
    """The keys of each language block of i18n.js's TABLE (a small tokenizer: keys are the
    quoted or bare names before a ':' directly inside a language's braces)."""
    start = source.index("const TABLE = {")
    result: dict[str, set[str]] = {}
    depth = 0
    lang: str | None = None
    previous: str | None = None
    previous_is_key = False
    for match in TOKEN.finditer(source, start + len("const TABLE = ")):
        quoted, comment, name, punct, _other = match.groups()
        if comment:
            continue
        token = punct or (quoted if quoted is not None else name)
        if punct == "{":
            depth += 1
        elif punct == "}":
            depth -= 1
            if depth == 0:
                break
        elif punct == ":" and previous is not None:
            if depth == 1:
                lang = previous
                result[lang] = set()
            elif depth == 2 and lang is not None and previous_is_key:
                result[lang].add(previous)
        previous_is_key = punct is None and (quoted is not None or name is not None)
        previous = token
    return result


@pytest.fixture(scope="module")
def languages() -> dict[str, set[str]]:
    found = tables((STATIC_DIR / "i18n.js").read_text(encoding="utf-8"))
    assert set(found) == {"zh", "en"}
    return found


def used_keys() -> set[str]:
    keys: set[str] = set()
    for path in Path(STATIC_DIR).glob("*.js"):
        keys |= set(KEY_LITERAL.findall(path.read_text(encoding="utf-8")))
    keys |= set(HTML_KEY.findall((STATIC_DIR / "index.html").read_text(encoding="utf-8")))
    keys |= set(re.findall(r'\bt\("([^"]+)"\)', "".join(
        p.read_text(encoding="utf-8") for p in Path(STATIC_DIR).glob("*.js"))))  # fmt: skip
    return keys


def built_keys() -> set[str]:
    """Keys the console builds from values (t(`p${priority}`), t(state), …)."""
    return {
        *(s.value for s in WorkOrderState), *(k.value for k in AlertKind),
        *(f"action.{a.value}" for a in Action), *(f"p{n}" for n in range(1, 5)),
        *(f"role.{r}" for r in ("viewer", "operator", "admin")),
        *(f"via.{v}" for v in ("machine", "hotline", "citizen")),
        *(f"evidence.{e.value}" for e in EvidenceKind), *(f"unit.{u}" for u in "dhms"),
        *(f"feed.{s}" for s in ("open", "connecting", "closed")),
        *(f"kpis.by.{b}" for b in ("department", "kind", "day")),
        *(f"tier.{t}" for t in ("simple", "general", "hard", "waterlogging", "smoke")),
        "camera", "sensor", "dock", "gateway", "online", "offline", "unknown", "community", "street",
        "district", "alerts.on", "alerts.off",
    }  # fmt: skip


def test_the_tokenizer_reads_both_tables(languages: dict[str, set[str]]) -> None:
    """The parser finds quoted and bare keys in each block (and no values as keys)."""
    for keys in languages.values():
        assert {"app.title", "reported", "waterlogging", "reason.sla_elapsed"} <= keys
        assert "城运中心 指挥台" not in keys and "City Operations Center" not in keys


def test_every_key_the_console_uses_exists_in_chinese_and_english(
    languages: dict[str, set[str]],
) -> None:
    """No text falls back to the other language or to its raw key."""
    used = used_keys() | built_keys()
    assert len(used) > 150
    missing = {lang: sorted(used - keys) for lang, keys in languages.items() if used - keys}
    assert missing == {}


def test_both_tables_have_the_same_keys(languages: dict[str, set[str]]) -> None:
    """A key added to one language only is caught even where no script uses it yet."""
    assert sorted(languages["zh"] ^ languages["en"]) == []
