"""Phone normalisation: every way people type a number becomes one E.164 key."""

import re

import phonenumbers
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from rules.phones import InvalidPhone, check_region, normalize, try_normalize
from tests.fuzz import examples, mutated

SAME_RU = [
    "8 916 000-11-22",
    "+7 (916) 000-11-22",
    "79160001122",
    "9160001122",
    "89160001122",
    "+7 916 000 11 22",
    "8(916)000-11-22",
    "+7-916-000-11-22",
    "  +7 916 0001122  ",
    "8 916 000-11-22 доб. 12",
    "8 916 000-11-22 доб 12",
    "+7 916 000-11-22, доб. 1234",
    "+7 916 000-11-22 ext. 12",
    "+7 916 000-11-22 EXT 12",
    "+7 916 000-11-22 x12",
    "+7 916 000-11-22#12",
    "+7 916 000-11-22 # 12",
    "8 916 000-11-22 доп. 7",
]


@pytest.mark.parametrize("text", SAME_RU)
def test_ru_formats_are_one_number(text: str) -> None:
    assert normalize(text) == "+79160001122"


@pytest.mark.parametrize(
    ("text", "region", "key"),
    [
        ("8 495 123-45-67", "RU", "+74951234567"),
        ("(495) 123-45-67", "RU", "+74951234567"),
        ("+49 30 1234567", "RU", "+49301234567"),
        ("0049 30 1234567", "RU", "+49301234567"),
        ("030 1234567", "DE", "+49301234567"),
        ("+1 (202) 555-0143", "RU", "+12025550143"),
        ("202-555-0143", "US", "+12025550143"),
        ("+44 20 7946 0958", "RU", "+442079460958"),
        ("8-800-555-35-35", "RU", "+78005553535"),
        ("+375 29 123-45-67", "RU", "+375291234567"),
    ],
)
def test_national_and_foreign_numbers(text: str, region: str, key: str) -> None:
    assert normalize(text, region) == key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "phone is empty"),
        ("   ", "phone is empty"),
        ("abc", "'abc' is not a phone number"),
        ("call me maybe", "is not a phone number"),
        ("12", "wrong number of digits"),
        ("+7 916", "wrong number of digits"),
        ("+7 916 000 11 22 33 44 55", "is not a phone number"),
        ("916-000-11-22; drop table", "is not a phone number"),
        ("+999 123 456 789", "unknown country code"),
        ("доб. 12", "is not a phone number"),
        ("1" * 80, "too long"),
        ("++79160001122", "is not a phone number"),
        ("7916000112２", "is not a phone number"),
    ],
)
def test_garbage_is_rejected_with_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(InvalidPhone, match=message):
        normalize(text)


def test_non_string_is_rejected() -> None:
    with pytest.raises(InvalidPhone, match="must be a string, not int"):
        normalize(79160001122)  # type: ignore[arg-type]


def test_try_normalize_is_none_for_garbage() -> None:
    assert try_normalize("n/a") is None
    assert try_normalize("8 916 000 11 22") == "+79160001122"


def test_region_is_checked() -> None:
    assert check_region("de") == "DE"
    with pytest.raises(ValueError, match="unknown phone region 'XX'"):
        check_region("XX")


REGIONS = ["RU", "DE", "US", "GB", "FR", "KZ", "BY"]


@st.composite
def formatted_numbers(draw: st.DrawFn) -> tuple[str, str, str]:
    """A valid number of some region, typed in one of the many ways people type it."""
    region = draw(st.sampled_from(REGIONS))
    kind = draw(st.sampled_from(["MOBILE", "FIXED_LINE"]))
    example = phonenumbers.example_number_for_type(
        region, getattr(phonenumbers.PhoneNumberType, kind)
    )
    assert example is not None
    key = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    style = draw(st.sampled_from(["E164", "INTERNATIONAL", "NATIONAL", "RFC3966", "digits"]))
    if style == "digits":
        text = key[1:] if region == "RU" else "+" + key[1:]
    else:
        text = phonenumbers.format_number(
            example, getattr(phonenumbers.PhoneNumberFormat, style)
        ).removeprefix("tel:")
    # Re-space the digits: people put separators anywhere between them.
    seps = st.sampled_from(["", "", " ", "-", ".", " - "])
    out = ""
    for ch in text:
        out += ch
        if ch.isdigit():
            out += draw(seps)
    out = out.strip(" -.")
    if draw(st.booleans()):
        out += draw(st.sampled_from([" доб. ", " ext. ", " #", " x", ", доб "]))
        out += str(draw(st.integers(1, 99999)))
    parse_region = region if style in ("NATIONAL", "digits") else draw(st.sampled_from(REGIONS))
    return out, parse_region, key


@given(formatted_numbers())
def test_any_formatting_of_a_valid_number_gives_the_same_key(case: tuple[str, str, str]) -> None:
    text, region, key = case
    assert normalize(text, region) == key


# Typed by hand or pasted from anywhere: separators, extension words, digits of other scripts,
# letters, a "+" in the wrong place, and far too many digits.
phone_like = st.lists(
    st.sampled_from([*"0123456789+()-./ #x,;\t", "доб", "ext", "８", "٨", "𝟕", "\u00a0", "о"]),
    max_size=24,
).map(lambda parts: "".join(parts).strip())


@settings(max_examples=examples(400), deadline=None)
@given(
    text=st.one_of(
        phone_like,
        st.text(max_size=80),
        st.from_regex(r"\+?[0-9]{1,20}", fullmatch=True),
        formatted_numbers().flatmap(lambda case: mutated(case[0])),  # a real number, mistyped
    ),
    region=st.sampled_from(REGIONS),
)
@example(text="８ 916 000-11-22", region="RU")
@example(text="+" + "9" * 63, region="RU")
@example(text="10000000000000", region="DE")
def test_any_text_is_a_key_or_invalid_phone(text: str, region: str) -> None:
    """Issue 14, item 7: random text becomes an E.164 key or InvalidPhone, nothing else; and the
    key of a valid number is its own key in every region."""
    key = try_normalize(text, region)
    event("invalid" if key is None else "key")
    if key is None:  # InvalidPhone: any other exception fails the test
        return
    # A country code and a national number, at most 3 + 17 digits as phonenumbers allows (German
    # numbers make keys longer than E.164's 15).
    assert re.fullmatch(r"\+[1-9][0-9]{1,19}", key)
    if phonenumbers.is_valid_number(phonenumbers.parse(key)):
        # A number that is only "possible" may not be: "+98000000" -> "+9800000" -> "+980000".
        assert all(normalize(key, other) == key for other in REGIONS)
