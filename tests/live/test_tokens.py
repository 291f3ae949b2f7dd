"""Connection tokens: what authenticates a tab and what does not (design.md §3.4, §3.7)."""

import base64
import hashlib
import hmac
import json

import jwt
import pytest

from gateway.live.tokens import (
    LEEWAY,
    MAX_TTL,
    MIN_LIFETIME,
    TokenError,
    check_token,
    issue_token,
    verify_token,
)
from tests.support import TEST_SECRET

NOW = 1_800_000_000.0  # every check below runs at this fixed moment


def signed(claims: dict[str, object], secret: str = TEST_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def raw_signed(payload: str) -> str:
    """A token whose claims are exactly ``payload`` (JSON PyJWT would not write, like NaN)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(payload.encode())
    mac = hmac.new(TEST_SECRET.encode(), head.encode(), hashlib.sha256).digest()
    return head + "." + b64(mac)


def check(token: str, **limits: float) -> str:
    return check_token(TEST_SECRET, token, now=NOW, **limits).user_id


def test_a_token_names_its_user_and_its_lifetime() -> None:
    identity = check_token(TEST_SECRET, issue_token(TEST_SECRET, "42", ttl=600, now=NOW), now=NOW)
    assert (identity.user_id, identity.lifetime) == ("42", 600)
    assert identity.expires_at - identity.issued_at == 600
    assert verify_token(TEST_SECRET, issue_token(TEST_SECRET, "42", ttl=60)) == "42"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "missing token"),
        ("", "missing token"),
        ("not-a-jwt", "malformed token"),
        (issue_token("another-secret-0123456789-0123456789", "42"), "signature does not match"),
        (
            jwt.encode({"sub": "42", "exp": NOW + 60}, TEST_SECRET * 2, algorithm="HS512"),
            "algorithm must be HS256",
        ),
        (jwt.encode({"sub": "42", "exp": NOW + 60}, None, algorithm="none"), "must be HS256"),
        (signed({"sub": "42"}), 'missing the "exp" claim'),
        (signed({"exp": NOW + 60}), 'missing the "sub" claim'),
        (signed({"sub": "abc", "exp": NOW + 60}), "token subject: a user id is ASCII digits"),
        (signed({"sub": 42, "exp": NOW + 60}), "subject must be a user id string"),
        (signed({"sub": "42", "iat": NOW, "exp": NOW}), "expires before it was issued"),
    ],
    ids=[
        "none",
        "empty",
        "garbage",
        "bad-signature",
        "hs512",
        "alg-none",
        "no-exp",
        "no-sub",
        "sub-letters",
        "sub-number",
        "exp-at-iat",
    ],
)
def test_tokens_that_do_not_authenticate(token: str | None, message: str) -> None:
    with pytest.raises(TokenError, match=message):
        check_token(TEST_SECRET, token, now=NOW)


# The edges of the 60 s clock skew: on the edge is accepted, a second beyond it is not.
@pytest.mark.parametrize(
    ("claims", "accepted"),
    [
        ({"exp": NOW - LEEWAY}, True),
        ({"exp": NOW - LEEWAY - 1}, False),
        ({"iat": NOW + LEEWAY, "exp": NOW + LEEWAY + 600}, True),
        ({"iat": NOW + LEEWAY + 1, "exp": NOW + LEEWAY + 600}, False),
        ({"nbf": NOW + LEEWAY, "exp": NOW + 600}, True),
        ({"nbf": NOW + LEEWAY + 1, "exp": NOW + 600}, False),
    ],
    ids=["exp-edge", "exp-beyond", "iat-edge", "iat-beyond", "nbf-edge", "nbf-beyond"],
)
def test_clock_skew_of_a_minute_is_allowed_and_no_more(
    claims: dict[str, float], accepted: bool
) -> None:
    token = signed({"sub": "7", **claims})
    if accepted:
        assert check(token) == "7"
    else:
        with pytest.raises(TokenError, match=r"expired|not valid yet|in the future"):
            check(token)


def test_the_skew_is_a_setting() -> None:
    token = signed({"sub": "7", "exp": NOW - 1})
    assert check(token, leeway=5) == "7"
    with pytest.raises(TokenError, match="token expired"):
        check(token, leeway=0)
    early = signed({"sub": "7", "nbf": NOW + 1, "exp": NOW + 60})
    with pytest.raises(TokenError, match="not valid yet"):
        check(early, leeway=0)


def test_a_token_living_longer_than_the_max_ttl_is_refused() -> None:
    assert check(signed({"sub": "7", "iat": NOW, "exp": NOW + MAX_TTL})) == "7"
    year_3000 = signed({"sub": "7", "iat": NOW, "exp": 32_503_680_000})
    for token in (signed({"sub": "7", "iat": NOW, "exp": NOW + MAX_TTL + 1}), year_3000):
        with pytest.raises(TokenError, match="CALLGUARD_TOKEN_MAX_TTL"):
            check(token)
    # Without iat the lifetime is at least what is left of it.
    with pytest.raises(TokenError, match="CALLGUARD_TOKEN_MAX_TTL"):
        check(signed({"sub": "7", "exp": NOW + MAX_TTL + 1}))
    # The limit is a setting.
    with pytest.raises(TokenError, match="longer than 3600 s"):
        check(signed({"sub": "7", "iat": NOW, "exp": NOW + 3601}), max_ttl=3600)


def test_a_token_without_iat_renews_with_what_was_left_of_it() -> None:
    identity = check_token(TEST_SECRET, signed({"sub": "7", "exp": NOW + 3600}), now=NOW)
    assert (identity.issued_at, identity.lifetime) == (NOW, 3600)
    # Accepted within the skew after its exp: it still renews into a usable token.
    late = check_token(TEST_SECRET, signed({"sub": "7", "exp": NOW - 30}), now=NOW)
    assert late.lifetime == MIN_LIFETIME


@pytest.mark.parametrize(
    "payload",
    [
        '{"sub": "7", "exp": "1800000600"}',
        '{"sub": "7", "exp": true}',
        '{"sub": "7", "exp": NaN}',
        '{"sub": "7", "exp": Infinity}',
        '{"sub": "7", "exp": [1800000600]}',
        '{"sub": "7", "exp": 1' + "0" * 400 + "}",
        '{"sub": "7", "exp": 1800000600, "iat": "1800000000"}',
        '{"sub": "7", "exp": 1800000600, "iat": false}',
        '{"sub": "7", "exp": 1800000600, "nbf": -Infinity}',
        '{"sub": "7", "exp": 1800000600, "nbf": {}}',
    ],
)
def test_time_claims_must_be_numbers(payload: str) -> None:
    with pytest.raises(TokenError, match="must be a number of seconds"):
        check(raw_signed(payload))


@pytest.mark.parametrize(
    "sub",
    ["08", "0", "007", "８", "٨", "7.0", "+7", "-7", "1e3", "7a", "", "1" * 19, "7\x00"],
)
def test_a_subject_is_a_user_id_in_ascii_digits_without_leading_zeros(sub: str) -> None:
    with pytest.raises(TokenError, match="token subject"):
        check(signed({"sub": sub, "exp": NOW + 60}))


def test_a_null_exp_is_a_missing_one() -> None:
    with pytest.raises(TokenError, match='missing the "exp" claim'):
        check(raw_signed('{"sub": "7", "exp": null}'))


def test_numbers_as_json_writes_them_are_accepted() -> None:
    assert check(raw_signed('{"sub": "7", "iat": 1800000000.5, "exp": 1800000600.25}')) == "7"


@pytest.mark.parametrize(("user", "ttl"), [("abc", 60.0), ("", 60.0), ("08", 60.0), ("5", 0.0)])
def test_issue_refuses_bad_input(user: str, ttl: float) -> None:
    with pytest.raises(ValueError, match=r"user id|ttl"):
        issue_token(TEST_SECRET, user, ttl)


def test_issued_tokens_carry_whole_seconds() -> None:
    claims = jwt.decode(
        issue_token(TEST_SECRET, "7", ttl=90.7, now=NOW + 0.9),
        TEST_SECRET,
        algorithms=["HS256"],
        options={"verify_signature": False},
    )
    assert claims == {"sub": "7", "iat": int(NOW), "exp": int(NOW) + 90}
