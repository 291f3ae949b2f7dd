"""One rule for a Bitrix24 user id, wherever it comes from (gateway/userid.py)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.userid import InvalidUserId, is_user_id, user_id


@pytest.mark.parametrize(
    ("value", "expected"), [("7", "7"), (" 42 ", "42"), (7, "7"), ("1" * 18, "1" * 18)]
)
def test_user_ids(value: object, expected: str) -> None:
    assert user_id(value) == expected


@pytest.mark.parametrize(
    "value",
    ["08", "0", "00", 0, -1, True, None, 7.0, "", " ", "８", "٨", "²", "7.0", "+7", "1" * 19, [7]],
)
def test_not_user_ids(value: object) -> None:
    with pytest.raises(InvalidUserId, match="ASCII digits from 1, without leading zeros"):
        user_id(value)
    assert not is_user_id(value)


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=1, max_value=10**18 - 1))
def test_every_positive_number_is_one_id_only(number: int) -> None:
    assert user_id(number) == user_id(str(number)) == str(number)
    assert not is_user_id("0" + str(number))


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=12))
def test_whatever_is_accepted_is_canonical(text: str) -> None:
    if is_user_id(text):
        canonical = user_id(text)
        assert canonical.isascii()
        assert canonical.isdigit()
        assert not canonical.startswith("0")
        assert str(int(canonical)) == canonical
