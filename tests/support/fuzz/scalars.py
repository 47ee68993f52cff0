"""Scalar values, clean and hostile, and the pools of real IDs and names they draw from.

Clean values are what a careful client sends (they carry an operation past validation into
the resolvers and SQL); hostile ones are wrong-typed, out of range, huge, forged or garbage.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from hypothesis import strategies as st

SearchStrategy = st.SearchStrategy


@dataclass(frozen=True)
class Pools:
    """Values that hit real rows: IDs (global and numeric), names (codes, models, tags) and
    the orderings a keyset cursor may name."""

    node_types: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    cursor_orders: tuple[str, ...] = ("RANK",)


# Strings that break naive code: quoting, escaping, SQL/HTML/template fragments, odd Unicode,
# digits Python's str.isdigit() accepts but int() refuses, and the two refused by design when
# they arrive in JSON (NUL, lone surrogates: 400 for the whole request).
NASTY_STRINGS = (
    "", " ", "'", '"', "\\", "\\\\", "\\u0000", "%", "_", "%_%", "*", "?", ":", "::", "-- ",
    "'; DROP TABLE sources; --", "1' OR '1'='1", "1 OR 1=1", "$1", "$$ $$", "E'\\x00'",
    "<script>alert(1)</script>", "<!--", "{{7*7}}", "${7*7}", "%s%s%n", "../../etc/passwd",
    "null", "None", "undefined", "true", "NaN", "-1", "0", "00", "1e309", "0x10",
    "²", "١٢٣", "１２３", "ⅷ", "\u202eabc", "\u200b", "\ufeff", "e\u0301", "😀", "👩‍👩‍👧",
    "Olá, São Paulo", "日本語", "\r\n", "\t", "a\x00b", "\x00", "\ud800", "x\udfffy",
    "rules-fast", "mmos/rules-fast", "INT_2024_001", "FRAG_COG_001",
)
# Characters that trip escaping, storage or encoding, mixed into short strings.
HOSTILE_CHARS = "\x00\ud800\udfff'\"\\%_$;:<>&\n\r\t\u202e\u0301²١😀"
HUGE_LENGTHS = (101, 257, 1001, 10_001, 100_001, 1_100_001)
INT_EDGES = (0, 1, -1, 2, 99, 100, 101, 1000, 2**31 - 1, -(2**31), 2**31, 2**53 + 1, 10**30)
DECIMAL_EDGES = (
    "0", "-0", "0.00", "1", "-1", "0.000001", "1e309", "1E-400", "1e1000000", "NaN", "sNaN",
    "Infinity", "-Infinity", "1_000", " 1 ", "1,5", "99999999999999999999999999999.99",
    "0." + "0" * 60 + "1", "abc", "",
)
DATE_EDGES = ("2024-02-30", "0000-01-01", "0001-01-01", "9999-12-31", "10000-01-01", "2024-1-1",
              "2024-01-01T00:00:00", "today", "", "-2024-01-01")
DATETIME_EDGES = ("2024-01-01T00:00:00", "2024-01-01T25:00:00Z", "2024-01-01 00:00", "0",
                  "9999-12-31T23:59:59.999999+14:00", "1970-01-01T00:00:00-23:59", "now")
NUMERIC_ID_EDGES = ("0", "-1", "01", " 1", "1 ", "1.0", "1e3", "0x1F", "+1", "²", "١٢٣", "１２",
                    "9" * 18, "9" * 19, "9" * 40)
CURSOR_ARGUMENTS = ("after", "before", "cursor")
NAME_CHARS = st.characters(codec="ascii", categories=("Lu", "Ll", "Nd"))
CLEAN_CHARS = st.characters(exclude_categories=("Cs", "Cc"))


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode("utf-8", "surrogatepass")).decode().rstrip("=")


def global_id(type_name: str, node_id: str) -> str:
    """A Relay global ID: base64 of `Type:id`."""
    return base64.b64encode(f"{type_name}:{node_id}".encode()).decode()


def _huge(unit: str, length: int) -> str:
    return unit * length


# --- clean ---------------------------------------------------------------------------------


def clean_strings(pools: Pools) -> SearchStrategy[str]:
    """Printable text (no NUL, no surrogates) or, when seeded, a name that exists."""
    text = st.text(CLEAN_CHARS, min_size=1, max_size=20)
    return st.one_of(st.sampled_from(pools.names), text) if pools.names else text


def clean_ids(pools: Pools) -> SearchStrategy[str]:
    """Real IDs when seeded, else well-formed numeric or global IDs of the schema's types."""
    made_up = st.one_of(st.integers(1, 50).map(str),
                        st.builds(global_id, st.sampled_from(pools.node_types or ("Source",)),
                                  st.integers(1, 50).map(str)))
    return st.one_of(st.sampled_from(pools.ids), made_up) if pools.ids else made_up


def clean_scalar(name: str, pools: Pools, hint: str = "") -> SearchStrategy[Any]:
    """What a careful client sends for a scalar of this name (no cursor: it has none)."""
    if hint in CURSOR_ARGUMENTS:
        return st.none()
    clean: dict[str, SearchStrategy[Any]] = {
        "Int": st.integers(0, 100), "Float": st.floats(0.0, 1.0), "Boolean": st.booleans(),
        "ID": clean_ids(pools), "Decimal": st.decimals(0, 1000, places=2).map(str),
        "Date": st.dates().map(lambda day: day.isoformat()),
        "DateTime": st.datetimes(timezones=st.just(UTC)).map(lambda at: at.isoformat()),
        "JSON": st.dictionaries(st.text(NAME_CHARS, max_size=6), st.integers(), max_size=2),
    }
    return clean.get(name, clean_strings(pools))


# --- hostile -------------------------------------------------------------------------------


def strings(pools: Pools) -> SearchStrategy[str]:
    """Random text, nasty literals, hostile characters, huge strings, real names."""
    options: list[SearchStrategy[str]] = [
        st.sampled_from(NASTY_STRINGS),
        st.text(st.sampled_from(HOSTILE_CHARS) | st.characters(), min_size=1, max_size=6),
        st.text(max_size=24),
        st.builds(_huge, st.sampled_from(("x", "é", "😀", "'", " ")),
                  st.sampled_from(HUGE_LENGTHS)),
    ]
    if pools.names:
        options.append(st.sampled_from(pools.names))
    return st.one_of(options)


def forged_cursors(pools: Pools) -> SearchStrategy[str]:
    """Cursor-shaped strings: base64 JSON naming a plausible ordering, with hostile keys."""
    key_values = st.one_of(st.sampled_from(INT_EDGES), st.integers(), st.floats(),
                           st.sampled_from(NASTY_STRINGS + DATETIME_EDGES), st.text(max_size=8),
                           st.none(), st.booleans())
    row_ids = st.one_of(st.sampled_from((2**63, 10**30, -(2**63) - 1)), st.integers(0, 50),
                        key_values)
    keys = st.one_of(st.tuples(key_values, row_ids).map(list), st.lists(key_values, max_size=3))
    payload = st.fixed_dictionaries({"o": st.sampled_from(pools.cursor_orders), "k": keys},
                                    optional={"q": st.text(max_size=8)})
    raw_json = payload.map(lambda data: json.dumps(data, separators=(",", ":")))
    return st.one_of(raw_json, st.text(max_size=30)).map(_b64)


def ids(pools: Pools) -> SearchStrategy[Any]:
    """Numeric IDs at the edges, global IDs of every type (and none), garbage, numbers."""
    type_names = st.sampled_from((*pools.node_types, "Nope", "", "source", "Source:1"))
    node_ids = st.one_of(st.integers(-5, 10**6).map(str),
                         st.sampled_from(("", "x", "9" * 25, "²", "-0", "1:2", " 7")))
    options: list[SearchStrategy[Any]] = [
        st.sampled_from(NUMERIC_ID_EDGES),
        st.builds(global_id, type_names, node_ids),
        st.integers(0, 10**6).map(str),
        st.binary(max_size=24).map(lambda raw: base64.b64encode(raw).decode()),
        strings(pools),
        st.integers(-(2**63), 2**63),  # a JSON number where an ID string is expected
    ]
    if pools.ids:
        options.append(st.sampled_from(pools.ids))
    return st.one_of(options)


def decimals() -> SearchStrategy[Any]:
    """Money: edge spellings, any decimal as a string, and numbers."""
    return st.one_of(st.sampled_from(DECIMAL_EDGES),
                     st.decimals(allow_nan=True, allow_infinity=True).map(str),
                     st.integers(-(10**9), 10**9),
                     st.floats(allow_nan=False, allow_infinity=False))


def json_values() -> SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                       st.floats(allow_nan=False, allow_infinity=False))
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)


def anything(pools: Pools) -> SearchStrategy[Any]:
    """A value of any JSON type: what a confused or hostile client sends for any argument."""
    return st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), strings(pools),
                     st.lists(st.integers(-3, 3), max_size=3),
                     st.dictionaries(st.text(NAME_CHARS, min_size=1, max_size=6),
                                     st.integers(), max_size=2))


def hostile_scalar(name: str, pools: Pools, hint: str = "") -> SearchStrategy[Any]:
    """Values for a scalar at its edges and beyond them (cursors for cursor arguments)."""
    if name == "String" and hint in CURSOR_ARGUMENTS:
        return st.one_of(forged_cursors(pools), strings(pools))
    hostile: dict[str, SearchStrategy[Any]] = {
        "Int": st.one_of(st.sampled_from(INT_EDGES), st.integers()),
        "Float": st.one_of(st.floats(), st.sampled_from(INT_EDGES)),
        "Boolean": st.one_of(st.booleans(), st.sampled_from(("true", 0, 1))),
        "ID": ids(pools),
        "Decimal": decimals(),
        "Date": st.one_of(st.sampled_from(DATE_EDGES), strings(pools)),
        "DateTime": st.one_of(st.sampled_from(DATETIME_EDGES), strings(pools)),
        "JSON": json_values(),
    }
    return hostile.get(name, strings(pools))
