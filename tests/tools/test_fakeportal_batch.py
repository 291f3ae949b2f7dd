"""The fake portal's ``$result`` references, table by table, as ``CRestUtil::processBatchElement``
resolves them (reference/bitrix24.md §8a): the walk stops at the first key not set and keeps the
node reached; a whole-value reference takes that node whatever its type; an embedded one is
replaced only by a string or a number."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.tools.fakeportal.batch import is_numeric, resolve

ROWS = [{"ID": "10", "ASSIGNED_BY_ID": "6", "COMPANY_ID": None, "PHONE": []}]
ANSWERS: dict[str, Any] = {
    "result": {
        "L": ROWS,
        "co": {"ID": "10", "TITLE": "Ромашка", "SUM": 12.5, "N": 7, "OK": True, "IDS": [3, 4]},
        "cc": [],
        "s": "abc",
    },
    "total": {"L": 1},
    "next": {},
    "time": {},
    "error": {"bad": {"error": "", "error_description": "Not found"}},
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # a whole value takes the node as it is
        ("$result[co][ID]", "10"),
        ("$result[co][N]", 7),
        ("$result[co][IDS]", [3, 4]),
        ("$result[L][0]", ROWS[0]),
        (
            "$result[total][L]",
            ANSWERS["result"],  # [total] is a missing key of the result map: stop there
        ),
        ("$total[L]", 1),
        ("$error[bad][error_description]", "Not found"),
        # the walk stops at the first missing key and keeps the node reached
        ("$result[L][1][ID]", ROWS),
        ("$result[L][0][COMPANY_ID]", ROWS[0]),  # null is "not set": stays at the row
        ("$result[cc][0][COMPANY_ID]", []),
        ("$result[nope][ID]", ANSWERS["result"]),
        ("$result[co][IDS][5]", [3, 4]),
        ("$result[s][1]", "b"),  # isset($string[1]): a string offset
        ("$result[s][-1]", "c"),
        ("$result[s][x]", "abc"),
        ("$result[L][00]", ROWS),  # "00" is not the integer key 0
        # embedded: replaced by strings and numbers only
        ("id=$result[co][ID] ", "id=10 "),
        ("n$result[co][N] m", "n7 m"),
        ("x $result[co][SUM]", "x 12.5"),
        ("x $result[co][IDS]", "x $result[co][IDS]"),
        ("x $result[co][OK]", "x $result[co][OK]"),  # a bool is neither
        ("x $result[L][1][ID]", "x $result[L][1][ID]"),  # the node is the list: text stays
        ("x $result[co][ID],tail", "x 10"),  # the match runs to the next whitespace
        ("$result[co][ID] $result[co][N]", "10 7"),
        # not a reference
        ("$result", "$result"),
        ("x $result[] y", "x $result[] y"),
        ("$RESULT[co][ID]", None),  # /i finds it, $arResult["RESULT"] is not set
        ("$other[co]", "$other[co]"),
        ("plain", "plain"),
    ],
)
def test_a_reference_resolves_as_the_rest_module_does(value: str, expected: Any) -> None:
    assert resolve(value, ANSWERS) == expected


def test_arrays_are_resolved_element_by_element() -> None:
    params = {"filter": {"@ID": ["0", "$result[co][ID]", "$result[cc][0][COMPANY_ID]"]}}
    assert resolve(params, ANSWERS) == {"filter": {"@ID": ["0", "10", []]}}


@pytest.mark.parametrize(
    ("value", "numeric"),
    [
        (1, True),
        (1.5, True),
        ("12", True),
        (" 12", True),
        ("12 ", True),
        ("1e3", True),
        (".5", True),
        ("-3", True),
        ("0x1A", False),
        ("", False),
        ("1 2", False),
        (True, False),
        (None, False),
        ([1], False),
    ],
)
def test_is_numeric_is_phps(value: Any, numeric: bool) -> None:
    assert is_numeric(value) is numeric
