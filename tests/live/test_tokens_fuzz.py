"""Fuzzing connection tokens (issue 14, item 7): ``check_token`` on mutated and forged tokens.

The property: a token is refused with :class:`TokenError` or names a user id of the one rule
(ASCII digits from 1, no leading zero: gateway/userid.py) with claims that are numbers within
the limits; never another exception, and never a token the secret did not sign.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from gateway.live.tokens import LEEWAY, MAX_TTL, Identity, TokenError, check_token, issue_token
from tests.fuzz import examples, json_values, mutated, odd_numbers, odd_text, weighted
from tests.support import TEST_SECRET

NOW = 1_800_000_000.0  # every check runs at this moment
OTHER_SECRET = "another-secret-0123456789abcdef-0123"
USER_ID = re.compile(r"[1-9][0-9]{0,17}", re.ASCII)  # gateway/userid.py, said again
MISSING = object()  # a claim left out


def outcome(token: str) -> Identity | TokenError:
    """What check_token makes of ``token``; any exception but TokenError escapes."""
    try:
        return check_token(TEST_SECRET, token, now=NOW)
    except TokenError as err:
        return err


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: object, claims: object, key: str | None) -> str:
    """A JWT of exactly these header and claims (JSON a library would not write included),
    signed HS256 with ``key``, or with no signature at all for ``None``."""
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    if key is None:
        return head + "."
    return head + "." + b64(hmac.new(key.encode(), head.encode(), hashlib.sha256).digest())


# Each family's plausible values come first (and weigh more below), so that tokens get past the
# signature and the header often enough to test the claims.
ids = st.integers(1, 10**6).map(str)
user_ids = st.one_of(
    ids,
    st.sampled_from(["８", "٨", "𝟕", "08", "0", "-1", " 7", "7 ", "7.0", "1e3", "1" * 19]),
    st.integers(-10, 10**20),
    odd_text,
    json_values,
)
near = st.integers(-(2 * 86_400), 2 * 86_400)  # seconds from now: a token's life and then some
moments = st.one_of(
    near.map(lambda d: int(NOW) + d),
    near.map(lambda d: NOW + d + 0.5),
    st.sampled_from([32_503_680_000, str(int(NOW) + 600), True, None, [], {}]),
    st.sampled_from([float("nan"), float("inf"), 10**400]),
    odd_numbers,
    odd_text,
)
odd_headers = st.fixed_dictionaries(
    {"alg": st.one_of(st.sampled_from(["HS256", "none", "HS512", "hs256", "RS256"]), json_values)},
    optional={
        "typ": st.sampled_from(["JWT", "jwt", 1]),
        "kid": st.one_of(st.text(max_size=8), json_values),
        "crit": st.lists(st.text(max_size=8), max_size=2),
        "b64": st.booleans(),
    },
)
headers = weighted((3, st.just({"alg": "HS256", "typ": "JWT"})), (1, odd_headers))
keys = st.sampled_from([TEST_SECRET, TEST_SECRET, TEST_SECRET, OTHER_SECRET, None])


@st.composite
def claim_sets(draw: st.DrawFn) -> dict[str, Any]:
    """``sub``, ``exp``, ``iat``, ``nbf``, each but ``sub`` maybe left out, now and then
    another claim."""
    claims: dict[str, Any] = {}
    for name, values in (("sub", user_ids), ("exp", moments), ("iat", moments), ("nbf", moments)):
        value = draw(weighted((1, st.just(MISSING)), (2, values)) if name != "sub" else values)
        if value is not MISSING:
            claims[name] = value
    if draw(st.booleans()):
        claims[draw(st.sampled_from(["aud", "iss", "jti", "x"]))] = draw(json_values)
    return claims


def assert_sound(identity: Identity, claims: dict[str, Any]) -> None:
    """An accepted token's claims: a user id string of the one rule, numeric times that hold
    now (with the leeway), a lifetime no longer than the longest allowed."""
    sub = claims["sub"]
    assert isinstance(sub, str)
    assert identity.user_id == sub.strip()
    assert USER_ID.fullmatch(identity.user_id)
    times = {}
    for name in ("exp", "iat", "nbf"):
        if name in claims:
            value = claims[name]
            assert type(value) in (int, float)
            assert math.isfinite(value)
            times[name] = value
    assert times["exp"] + LEEWAY >= NOW
    assert times.get("nbf", NOW) <= NOW + LEEWAY
    if "iat" in times:
        assert times["iat"] <= NOW + LEEWAY
        assert 0 < times["exp"] - times["iat"] <= MAX_TTL
    else:  # counted from now; the leeway may have let it in just after its exp
        assert times["exp"] - NOW <= MAX_TTL
    assert 1 <= identity.lifetime <= MAX_TTL
    assert identity.expires_at == times["exp"]


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=headers, claims=claim_sets(), key=keys)
@example(header={"alg": "HS256"}, claims={"sub": "7", "exp": 32_503_680_000}, key=TEST_SECRET)
@example(header={"alg": "HS256"}, claims={"sub": "7", "exp": str(int(NOW) + 600)}, key=TEST_SECRET)
@example(header={"alg": "HS256"}, claims={"sub": "８", "exp": NOW + 600}, key=TEST_SECRET)
@example(header={"alg": "HS256"}, claims={"sub": "08", "exp": NOW + 600}, key=TEST_SECRET)
@example(header={"alg": "none"}, claims={"sub": "7", "exp": NOW + 600}, key=None)
def test_a_forged_token_is_refused_or_sound(
    header: dict[str, Any], claims: dict[str, Any], key: str | None
) -> None:
    result = outcome(forge(header, claims, key))
    event("accepted" if isinstance(result, Identity) else str(result).split(":")[0][:40])
    if isinstance(result, TokenError):
        assert str(result)
        return
    assert key == TEST_SECRET  # only the secret signs a token that is accepted
    assert header["alg"] == "HS256"
    assert_sound(result, claims)


@st.composite
def plausible_claims(draw: st.DrawFn) -> dict[str, Any]:
    """Claims around the limits: an age and a lifetime from two minutes below zero to a day
    (and an hour past it), ``iat`` and ``nbf`` maybe left out, in one token of four one odd
    value."""
    issued = int(NOW) - draw(st.integers(-2 * int(LEEWAY), int(MAX_TTL)))
    claims: dict[str, Any] = {
        "sub": draw(weighted((2, ids), (1, user_ids))),
        "exp": issued + draw(st.integers(-2 * int(LEEWAY), int(MAX_TTL) + 3600)),
    }
    if draw(st.booleans()):
        claims["iat"] = issued
    if draw(st.booleans()):
        claims["nbf"] = issued + draw(st.integers(-2 * int(LEEWAY), 4 * int(LEEWAY)))
    if draw(st.integers(0, 3)) == 0:
        claims[draw(st.sampled_from(["exp", "iat", "nbf"]))] = draw(moments)
    return claims


def finite(value: float) -> bool:
    """A real number of seconds: not NaN nor infinite, nor an integer of hundreds of digits."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def acceptable(claims: dict[str, Any]) -> bool:
    """The rules of design.md §3.4/§3.7 and issue 14, said again: a user id string, numeric
    times, not expired nor not yet valid (60 s leeway), and a lifetime of at most 24 h."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not USER_ID.fullmatch(sub.strip()):
        return False
    times = {}
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name, MISSING)
        if value is MISSING:
            continue
        if type(value) not in (int, float) or not finite(value):
            return False
        times[name] = value
    if "exp" not in times or times["exp"] + LEEWAY < NOW:
        return False
    if times.get("nbf", NOW) > NOW + LEEWAY or times.get("iat", NOW) > NOW + LEEWAY:
        return False
    lifetime = times["exp"] - times.get("iat", NOW)
    return ("iat" not in times or lifetime > 0) and lifetime <= MAX_TTL


@settings(max_examples=examples(500), deadline=None)
@given(plausible_claims())
def test_a_token_signed_with_the_secret_is_accepted_by_the_rules_alone(
    claims: dict[str, Any],
) -> None:
    result = outcome(forge({"alg": "HS256", "typ": "JWT"}, claims, TEST_SECRET))
    event("accepted" if isinstance(result, Identity) else "refused")
    assert isinstance(result, Identity) == acceptable(claims), result
    if isinstance(result, Identity):
        assert_sound(result, claims)


VALID = issue_token(TEST_SECRET, "42", ttl=600, now=NOW)


@settings(max_examples=examples(400), deadline=None)
@given(mutated(VALID, surrogates=True))
# Found by this test: PyJWT raised UnicodeEncodeError on a lone surrogate. A query string or a
# header never carries one, but check_token() promises a TokenError for anything else.
@example("\ud800" + VALID[1:])
def test_a_mutated_token_is_refused_or_unchanged(token: str) -> None:
    result = outcome(token)
    if isinstance(result, Identity):  # e.g. a change in the signature's unused low bits
        assert result == check_token(TEST_SECRET, VALID, now=NOW)


@settings(max_examples=examples(150), deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.lists(st.text("ABCDEFabcdef0123456789-_=", max_size=60), max_size=5).map(".".join),
    )
)
def test_any_text_is_refused_with_a_token_error(token: str) -> None:
    assert isinstance(outcome(token), TokenError)
