"""Hypothesis strategies the fuzz tests share (issue 14, item 7): odd text, odd numbers, any JSON,
and JSON text no well-behaved encoder writes.

Every fuzz test states its example count with ``settings(max_examples=examples(N))``: the counts
are part of the suite's time budget (about 14 s in all without coverage), so the ``ci`` and
``default`` profiles of tests/conftest.py do not change them. For a longer hunt,
``CALLGUARD_TEST_FUZZ_SCALE=20`` runs twenty times as many examples.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import httpx
from hypothesis import strategies as st

from tests.processes import Served, callguard
from tests.support import TEST_SECRET
from tests.timing import timeout

# Strings that have broken parsers before: digits that are not ASCII, invisible and direction
# characters, a NUL, a byte-order mark, whitespace str.strip() knows and JSON does not.
ODD_STRINGS = [
    "",
    " ",
    "\t\n",
    "\u2003",
    "\x00",
    "\ufeff",
    "\u200b",
    "\u202e",
    "８",
    "٨",
    "08",
    "0",
    "-1",
    "1e3",
    "7 ",
    "NaN",
    "null",
    "true",
    "[]",
    "{}",
    "𝟕",
    "я" * 70,
    "🙂" * 40,
    "x" * 129,
]

T = TypeVar("T")


def _scale() -> float:
    text = os.environ.get("CALLGUARD_TEST_FUZZ_SCALE", "1")
    try:
        scale = float(text)
    except ValueError:
        scale = math.nan
    if not scale > 0:
        raise ValueError(f"CALLGUARD_TEST_FUZZ_SCALE must be a number above 0, got {text!r}")
    return scale


SCALE = _scale()


def examples(count: int) -> int:
    """``count`` examples, times CALLGUARD_TEST_FUZZ_SCALE."""
    return max(1, round(count * SCALE))


def weighted(*choices: tuple[int, st.SearchStrategy[T]]) -> st.SearchStrategy[T]:
    """One of the strategies, each as often as its weight says. (st.one_of picks its branches
    evenly and counts a strategy given twice once; it shrinks towards the first one here too.)"""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(
        lambda chosen: chosen
    )


odd_text = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=40))

# Numbers at the edges: past 2**53 and 2**64, negative, fractional, infinite, not a number.
odd_numbers = st.one_of(
    st.sampled_from([0, -1, 1, 2**31, 2**53, 2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**30]),
    st.integers(),
    st.floats(),
    st.sampled_from([0.0, -0.0, 0.5, 1e308, -1e308, 5e-324]),
)


def json_documents(finite: bool = False) -> st.SearchStrategy[Any]:
    """Any JSON document; unless ``finite``, with NaN and Infinity (json.dumps writes them,
    orjson refuses them)."""
    numbers = odd_numbers.filter(math.isfinite) if finite else odd_numbers
    return st.recursive(
        st.one_of(st.none(), st.booleans(), numbers, odd_text),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(odd_text, inner, max_size=4)
        ),
        max_leaves=12,
    )


json_values = json_documents()


def json_text(value: Any, ascii_only: bool = False) -> str:
    """``value`` as JSON text; big integers stay integers, NaN is written as ``NaN``."""
    return json.dumps(value, ensure_ascii=ascii_only)


# Nesting far past any parser's depth limit (orjson's is 1024), in a few hundred bytes.
deep_nesting = st.integers(1, 3000).flatmap(
    lambda depth: st.sampled_from(["[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth])
)


@st.composite
def mutated(draw: st.DrawFn, text: str, surrogates: bool = False) -> str:
    """``text`` with a few characters deleted, replaced or inserted, or cut short; the new
    characters are any code point, lone surrogates only with ``surrogates`` (no socket or
    HTTP request delivers one)."""
    chars = st.characters() if surrogates else st.characters(codec="utf-8")
    out = text
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(out)))
        how = draw(st.sampled_from(["delete", "replace", "insert", "truncate"]))
        char = draw(chars)
        if how == "delete":
            out = out[:where] + out[where + 1 :]
        elif how == "replace":
            out = out[:where] + char + out[where + 1 :]
        elif how == "insert":
            out = out[:where] + char + out[where:]
        else:
            out = out[:where]
    return out


@contextlib.contextmanager
def served_cleanly(env: Mapping[str, str]) -> Iterator[Served]:
    """``callguard serve`` with the test secret and ``env``, for a module's examples; once it
    has stopped, nothing it logged may be an error or a traceback."""
    with callguard("serve", env={"CALLGUARD_SECRET": TEST_SECRET, **env}) as gateway:
        yield gateway
    failures = [line for line in gateway.stderr if "Traceback" in line or " ERROR " in line]
    assert not failures, "\n".join(gateway.stderr)


@contextlib.contextmanager
def served_client(env: Mapping[str, str]) -> Iterator[httpx.Client]:
    """One HTTP client, for every example of a module, to :func:`served_cleanly`'s gateway."""
    with (
        served_cleanly(env) as gateway,
        httpx.Client(base_url=gateway.base, timeout=timeout()) as http,
    ):
        yield http
