import time

import jwt
import pytest

from gateway.live.tokens import TokenError, issue_token, verify_token
from tests.support import TEST_SECRET


def test_a_token_names_its_user() -> None:
    assert verify_token(TEST_SECRET, issue_token(TEST_SECRET, "42", ttl=60)) == "42"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "missing token"),
        ("", "missing token"),
        ("not-a-jwt", "malformed token"),
        (issue_token("another-secret-0123456789-0123456789", "42"), "signature does not match"),
        (issue_token(TEST_SECRET, "42", ttl=60, now=time.time() - 120), "token expired"),
        (
            jwt.encode({"sub": "42", "exp": time.time() + 60}, TEST_SECRET * 2, algorithm="HS512"),
            "algorithm must be HS256",
        ),
        (
            jwt.encode({"sub": "42", "exp": time.time() + 60}, None, algorithm="none"),
            "algorithm must be HS256",
        ),
        (jwt.encode({"sub": "42"}, TEST_SECRET, algorithm="HS256"), 'missing the "exp" claim'),
        (
            # Built at collection, checked a minute or more later: an hour keeps it unexpired.
            jwt.encode({"sub": "abc", "exp": time.time() + 3600}, TEST_SECRET, algorithm="HS256"),
            "subject must be a user id",
        ),
    ],
    ids=[
        "none",
        "empty",
        "garbage",
        "bad-signature",
        "expired",
        "hs512",
        "alg-none",
        "no-exp",
        "sub",
    ],
)
def test_tokens_that_do_not_authenticate(token: str | None, message: str) -> None:
    with pytest.raises(TokenError, match=message):
        verify_token(TEST_SECRET, token)


@pytest.mark.parametrize(("user", "ttl"), [("abc", 60.0), ("", 60.0), ("5", 0.0)])
def test_issue_refuses_bad_input(user: str, ttl: float) -> None:
    with pytest.raises(ValueError, match=r"user id|ttl"):
        issue_token(TEST_SECRET, user, ttl)
