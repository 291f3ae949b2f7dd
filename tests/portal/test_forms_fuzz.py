"""Fuzzing the portal's event forms (issue 14, item 7): the bracket-key parser
(gateway/crm/forms.py), the event parser (gateway/portal/events.py), and ``POST /bitrix/events``
on a real ``callguard serve``.

The property: a form is parsed (each field one leaf, no deeper than the bound) or refused with
the parser's own error, never another exception; the endpoint answers what its parser says, with
a JSON body, and never a 5xx.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from gateway.crm import forms
from gateway.portal import events
from tests.fuzz import examples, odd_text, served_client, weighted
from tests.portal.conftest import WEBHOOK_TOKEN

Pairs = list[tuple[str, str]]

no_brackets = st.characters(codec="utf-8", exclude_characters="[]")
names = st.one_of(
    st.sampled_from(["event", "data", "auth", "ts", "a", ""]),
    st.text(no_brackets, min_size=1, max_size=6),
)
segments = st.one_of(
    st.sampled_from(["", "0", "1", "FIELDS", "ID", "CALL_ID", "application_token"]),
    st.integers(0, 10**30).map(str),  # indices far past any list
    st.text(no_brackets, max_size=6),
)


def bracket_keys(depth: int) -> st.SearchStrategy[str]:
    return st.builds(
        lambda name, path: name + "".join(f"[{s}]" for s in path),
        names,
        st.lists(segments, max_size=depth),
    )


# Mostly well-formed keys; one in four with a bracket where it does not belong.
keys = weighted(
    (3, bracket_keys(10)),
    (
        1,
        st.builds(
            lambda key, junk, at: key[:at] + junk + key[at:],
            bracket_keys(4),
            st.sampled_from(["[", "]", "][", "[]", "a]b"]),
            st.integers(0, 40),
        ),
    ),
)
values = st.one_of(st.sampled_from(["", "7", "08", "８", "+7 495 123-45-67"]), odd_text)


@st.composite
def field_lists(draw: st.DrawFn) -> Pairs:
    """Fields with bracket keys, some given twice."""
    pairs: Pairs = draw(st.lists(st.tuples(keys, values), max_size=16))
    if pairs and draw(st.booleans()):
        pairs += draw(st.lists(st.sampled_from(pairs), max_size=3))
    return pairs


raw_forms = st.one_of(
    st.text(max_size=80),
    st.text("abc[]=&%5B%5D%zz%ff%C3+;", max_size=80),  # form syntax and broken escapes
    field_lists().map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)),  # unescaped
)


# Keys that are plain names (not all digits, which would make an array), any text as values.
plain_keys = st.text(no_brackets, min_size=1, max_size=8).filter(lambda k: not k.isdigit())
trees = st.dictionaries(
    plain_keys,
    st.recursive(
        st.text(st.characters(codec="utf-8"), max_size=8),
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3),
            st.dictionaries(plain_keys, inner, min_size=1, max_size=3),
        ),
        max_leaves=10,
    ),
    min_size=1,
    max_size=4,
)


def parsed(text: str, max_fields: int, max_depth: int) -> forms.Form | forms.FormError:
    try:
        return forms.parse_form(text, max_fields=max_fields, max_depth=max_depth)
    except forms.FormError as err:
        return err


def leaves(value: Any, depth: int = 1) -> Iterator[tuple[str, int]]:
    """Every string in a parsed form, with how deep it sits (a top-level field is 1)."""
    if isinstance(value, str):
        yield value, depth - 1
    else:
        assert isinstance(value, dict | list), value
        for item in value.values() if isinstance(value, dict) else value:
            yield from leaves(item, depth + 1)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    form=weighted(
        (2, trees.map(forms.encode_form)), (2, field_lists().map(urlencode)), (1, raw_forms)
    ),
    max_fields=st.sampled_from([5, 200, 200]),
    max_depth=st.sampled_from([3, 8]),
)
@example(form="a[99999999999999999999999]=1&a[]=2", max_fields=200, max_depth=8)
@example(form="a[b]=1&a[b][c]=2", max_fields=200, max_depth=8)
def test_any_form_is_parsed_within_its_bounds_or_refused(
    form: str, max_fields: int, max_depth: int
) -> None:
    result = parsed(form, max_fields, max_depth)
    event("refused" if isinstance(result, forms.FormError) else "parsed")
    if isinstance(result, forms.FormError):
        assert str(result)
        return
    found = list(leaves(result))
    assert len(found) <= max_fields
    assert all(depth <= max_depth for _, depth in found)


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field_lists())
def test_each_field_of_a_parsed_form_is_one_value(pairs: Pairs) -> None:
    result = parsed(urlencode(pairs), 10_000, 16)
    if not isinstance(result, forms.FormError):
        assert sorted(v for v, _ in leaves(result)) == sorted(v for _, v in pairs)


@settings(max_examples=examples(150), deadline=None)
@given(trees)
def test_a_form_reads_back_as_it_was_written(tree: dict[str, Any]) -> None:
    assert forms.parse_query(forms.encode_form(tree)) == tree


# -- the events ---------------------------------------------------------------------------

ids = st.one_of(st.sampled_from(["7", "08", "0", "８", "-1", "", " 7 "]), odd_text)
event_data = st.fixed_dictionaries(
    {},
    optional={
        "CALL_ID": st.one_of(st.sampled_from(["c1", " ", "x" * 129]), odd_text),
        "CALLER_ID": st.one_of(st.sampled_from(["+7 (495) 123-45-67", "abc", ""]), odd_text),
        "PHONE_NUMBER": st.one_of(st.sampled_from(["8 495 222 33 44", "1" * 65]), odd_text),
        "CALL_TYPE": st.sampled_from(["1", "2", ["1"]]),
        "USER_ID": st.one_of(ids, st.lists(ids, max_size=2)),
        "PORTAL_USER_ID": ids,
        "FIELDS": st.one_of(st.fixed_dictionaries({"ID": ids}), ids, st.just({})),
    },
)
event_names = st.one_of(
    st.sampled_from(sorted(events.HANDLED_EVENTS)),
    st.sampled_from(["ONAPPTEST", "ONCRMDEALUPDATE", "onvoximplantcallinit", " ONCRMLEADADD "]),
    odd_text,
)
tokens = weighted(
    (3, st.just(WEBHOOK_TOKEN)), (1, st.sampled_from(["", "wrong", "ток"])), (1, odd_text)
)


@st.composite
def event_forms(draw: st.DrawFn) -> dict[str, Any]:
    """An outgoing-webhook event: a name, its data, the application token; any of them odd
    or left out."""
    form: dict[str, Any] = {"event": draw(event_names), "data": draw(event_data)}
    if draw(st.integers(0, 4)):
        form["auth"] = {"application_token": draw(tokens), "domain": "portal.example"}
    if not draw(st.integers(0, 9)):
        del form[draw(st.sampled_from(["event", "data"]))]
    return form


@st.composite
def real_events(draw: st.DrawFn) -> dict[str, Any]:
    """An event as the portal sends it (reference/bitrix24.md §1-§3), now and then with one of
    its data fields odd."""
    name = draw(st.sampled_from(sorted(events.HANDLED_EVENTS)))
    call = f"call-{draw(st.integers(1, 50))}"
    user = str(draw(st.integers(1, 9)))
    data: dict[str, Any] = {
        "ONVOXIMPLANTCALLINIT": {
            "CALL_ID": call,
            "CALLER_ID": draw(st.sampled_from(["+7 (495) 123-45-67", "84957778899", "abc"])),
            "CALL_TYPE": draw(st.sampled_from(["1", "2"])),
        },
        "ONVOXIMPLANTCALLSTART": {"CALL_ID": call, "USER_ID": user},
        "ONVOXIMPLANTCALLEND": {"CALL_ID": call, "PORTAL_USER_ID": user},
    }.get(name, {"FIELDS": {"ID": str(draw(st.integers(1, 40)))}})
    if not draw(st.integers(0, 3)):
        data[draw(st.sampled_from(sorted(data)))] = draw(st.one_of(ids, event_data))
    return {"event": name, "data": data, "auth": {"application_token": WEBHOOK_TOKEN}}


bodies = weighted(
    (4, real_events().map(forms.encode_form).map(str.encode)),
    (1, event_forms().map(forms.encode_form).map(str.encode)),
    (
        1,
        event_forms()
        .map(forms.encode_form)
        .flatmap(lambda t: raw_forms.map(lambda r: t + "&" + r))
        .map(str.encode),
    ),
    (1, field_lists().map(urlencode).map(str.encode)),
    (1, raw_forms.map(str.encode)),
    (1, st.binary(max_size=100)),
    (1, st.integers(1, 1000).map(lambda n: b"a=" + b"x" * (events.MAX_BODY + n))),
)


def expected_status(body: bytes) -> int:
    """What POST /bitrix/events answers, by its parsers (gateway/portal/intake.py)."""
    if len(body) > events.MAX_BODY:
        return 413
    try:
        form = events.parse_form(body)
    except events.MalformedBody:
        return 400
    try:
        events.check_token(form, WEBHOOK_TOKEN)
    except events.BadToken:
        return 401
    try:
        events.parse_event(form)
    except events.MalformedBody:
        return 400
    return 200


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with served_client({"CALLGUARD_WEBHOOK_TOKEN": WEBHOOK_TOKEN}) as http:
        yield http


@settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=bodies)
@example(
    body=b"event=ONVOXIMPLANTCALLSTART&data[USER_ID][]=7&auth[application_token]="
    + WEBHOOK_TOKEN.encode()
)
def test_any_event_body_is_answered_as_its_parser_says(client: httpx.Client, body: bytes) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    response = client.post("/bitrix/events", content=body, headers=headers)
    event(str(response.status_code))
    assert response.status_code == expected_status(body), response.text
    doc = orjson.loads(response.content)
    if response.status_code == 200:
        assert doc["ok"] is True
    else:
        assert set(doc) == {"error", "message"}
