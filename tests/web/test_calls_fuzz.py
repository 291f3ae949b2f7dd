"""Fuzzing ``POST /api/calls`` (issue 14, item 7) on a real ``callguard serve`` over loopback,
one HTTP client for every example.

The property: never a 5xx; a refusal is a 4xx with the JSON error body every endpoint uses
(``{"error": code, "message": text}``: gateway/web/responses.py), in the order the endpoint
checks (key, size, body); a valid call is painted (200).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from gateway.web.callapi import MAX_BODY
from tests.fuzz import (
    examples,
    json_text,
    json_values,
    mutated,
    odd_numbers,
    odd_text,
    served_client,
    weighted,
)
from tests.live.conftest import API_KEY, RED_PHONE

COLOURS = {"red", "yellow", "blue", "none"}
GOOD_AUTH = f"Bearer {API_KEY}"
# Numbers that are phone numbers: the demo data's and any Russian mobile.
PHONES = [RED_PHONE, "8 495 222 33 44", "84957778899", "+7 812 555-01-02", "+49 30 123456"]
phones = st.one_of(
    st.sampled_from(PHONES),
    st.from_regex(r"\+7 9[0-9]{2} [0-9]{3}-[0-9]{2}-[0-9]{2}", fullmatch=True),
)


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with served_client({"CALLGUARD_API_KEY": API_KEY}) as http:
        yield http


@dataclass(frozen=True)
class Oversized:
    """A body ``extra`` bytes over the bound, built when sent (a failing example prints short);
    ``chunked``: without a Content-Length, so the gateway must count as it reads."""

    extra: int
    chunked: bool

    @property
    def body(self) -> bytes:
        return b'{"user_id": "7", "phone": "' + b"1" * (MAX_BODY + self.extra) + b'"}'


Body = bytes | Oversized


@st.composite
def call_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A call as the contract says (user id as a string or a number, call id with spaces
    around, direction maybe left out, lang maybe given): a call the gateway paints."""
    doc: dict[str, Any] = {
        "user_id": draw(st.integers(1, 10**6).flatmap(lambda n: st.sampled_from([n, str(n)]))),
        "call_id": draw(
            st.text(st.characters(codec="utf-8", categories=["L", "N"]), min_size=1, max_size=40)
        ),
        "phone": draw(phones),
    }
    if draw(st.booleans()):
        doc["call_id"] = f" {doc['call_id']} "
    if draw(st.booleans()):
        doc["direction"] = draw(st.sampled_from(["in", "out"]))
    if draw(st.booleans()):
        doc["lang"] = draw(st.one_of(st.sampled_from(["ru", "en", "en-US"]), odd_text, json_values))
    return doc


odd_values = st.one_of(
    st.sampled_from(["８", "٨", "08", "0", "-1", "", " ", "x" * 129, "1" * 19]),
    st.text("0123456789 +()-#x", max_size=24),  # a number, or nearly
    odd_text,
    odd_numbers,
    json_values,
)


@st.composite
def odd_call_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid call whose fields are each, one time in six, left out or given an odd value."""
    doc = draw(call_bodies())
    for key in ("user_id", "call_id", "phone", "direction"):
        change = draw(st.integers(0, 5))
        if change == 0:
            doc.pop(key, None)
        elif change == 1:
            doc[key] = draw(odd_values)
    return doc


# A valid call but for its number, which is text (that may or may not be a phone number).
odd_phone_calls = st.builds(
    lambda doc, phone: {**doc, "phone": phone},
    call_bodies(),
    st.one_of(st.text("0123456789 +()-#x", min_size=1, max_size=24), odd_text),
)
bodies: st.SearchStrategy[Body] = st.one_of(
    call_bodies().map(json_text).map(str.encode),
    odd_phone_calls.map(json_text).map(str.encode),
    odd_call_bodies().map(json_text).map(str.encode),
    odd_call_bodies().map(json_text).flatmap(mutated).map(lambda t: t.encode("utf-8")),
    json_values.map(json_text).map(str.encode),
    st.binary(max_size=200),
    st.builds(Oversized, st.integers(1, 4096), st.booleans()),
)
# (h11 sends no header value with spaces around it: neither would any other client.)
auths = weighted(
    (6, st.just(GOOD_AUTH)),
    (
        1,
        st.sampled_from([None, "", "Bearer", f"bearer {API_KEY}", f"Bearer  {API_KEY}", "Basic x"]),
    ),
    (
        1,
        st.text(st.characters(codec="ascii", min_codepoint=32, max_codepoint=126), max_size=40).map(
            str.strip
        ),
    ),
)
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
    ]
)


def post(
    client: httpx.Client, body: Body, auth: str | None, content_type: str | None
) -> httpx.Response:
    headers = {}
    if auth is not None:
        headers["Authorization"] = auth
    if content_type is not None:
        headers["Content-Type"] = content_type
    content: bytes | Iterator[bytes] = body.body if isinstance(body, Oversized) else body
    if isinstance(body, Oversized) and body.chunked:
        content = iter([content[:1000], content[1000:]])
    return client.post("/api/calls", content=content, headers=headers)


def authorised(auth: str | None) -> bool:
    """The endpoint's rule: the Bearer scheme in any case, the key with spaces around."""
    scheme, _, key = (auth or "").partition(" ")
    return scheme.lower() == "bearer" and key.strip() == API_KEY


def assert_refusal(response: httpx.Response) -> dict[str, Any]:
    doc = orjson.loads(response.content)
    assert set(doc) == {"error", "message"}, doc
    assert isinstance(doc["error"], str)
    assert isinstance(doc["message"], str)
    assert doc["message"]
    return doc


@settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=bodies, auth=auths, content_type=content_types)
@example(
    body=b'{"user_id": 10000000000000000000000, "call_id": "c", "phone": "1"}',
    auth=GOOD_AUTH,
    content_type=None,
)
@example(body=Oversized(1, chunked=True), auth=GOOD_AUTH, content_type="application/json")
def test_any_request_is_answered_without_a_5xx(
    client: httpx.Client, body: Body, auth: str | None, content_type: str | None
) -> None:
    response = post(client, body, auth, content_type)
    event(f"{response.status_code} {response.json().get('error', '')}")
    assert response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/json"
    if not authorised(auth):
        assert response.status_code == 401
        assert assert_refusal(response)["error"] == "unauthorized"
    elif isinstance(body, Oversized):
        assert response.status_code == 413
        assert assert_refusal(response)["error"] == "too_large"
    elif response.status_code >= 400:
        assert response.status_code == 422
        assert assert_refusal(response)["error"] in (
            "invalid_json",
            "invalid_request",
            "invalid_phone",
        )
    else:
        doc = orjson.loads(response.content)
        assert response.status_code in (200, 202)
        assert doc["status"] == ("painted" if response.status_code == 200 else "superseded")


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=call_bodies(), content_type=content_types)
def test_a_valid_call_is_painted(
    client: httpx.Client, doc: dict[str, Any], content_type: str | None
) -> None:
    response = post(client, json_text(doc).encode(), GOOD_AUTH, content_type)
    assert response.status_code == 200, response.text
    painted = orjson.loads(response.content)
    assert painted["call_id"] == doc["call_id"].strip()
    assert painted["status"] == "painted"
    assert painted["colour"] in COLOURS
