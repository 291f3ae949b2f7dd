"""Pure parsing of the portal's form bodies: bracket keys, bounds, token, typed events."""

from urllib.parse import urlencode

import pytest

from gateway.portal.events import (
    MAX_BODY,
    MAX_DEPTH,
    MAX_FIELDS,
    BadToken,
    CallEnd,
    CallInit,
    CallStart,
    CrmChange,
    MalformedBody,
    Unknown,
    check_token,
    parse_event,
    parse_form,
)

# reference/bitrix24.md §2.4, verbatim.
COMPANY_UPDATE = (
    b"event=ONCRMCOMPANYUPDATE&event_handler_id=975&data%5BFIELDS%5D%5BID%5D=2917&ts=1743165490"
    b"&auth%5Bdomain%5D=example.bitrix24.ru&auth%5Bclient_endpoint%5D=https%3A%2F%2Fexample.bitrix24.ru%2Frest%2F"
    b"&auth%5Bserver_endpoint%5D=https%3A%2F%2Foauth.bitrix.info%2Frest%2F&auth%5Bmember_id%5D=d897063e1ce7c5eb9f04b9751eef5915"
    b"&auth%5Bapplication_token%5D=jvh9y1ulvt2m6k5or90v9mg8nn32ozas"
)
CALL_INIT = (
    b"event=ONVOXIMPLANTCALLINIT&event_handler_id=976&data%5BCALL_ID%5D=5E316880469A6376.1773306964.8740011"
    b"&data%5BCALL_TYPE%5D=2&data%5BACCOUNT_SEARCH_ID%5D=reg150908&data%5BPHONE_NUMBER%5D=%2B74951112233"
    b"&data%5BCALLER_ID%5D=%2B79991234567&ts=1773306964&auth%5Bdomain%5D=example.bitrix24.ru"
    b"&auth%5Bapplication_token%5D=jvh9y1ulvt2m6k5or90v9mg8nn32ozas"
)
TOKEN = "jvh9y1ulvt2m6k5or90v9mg8nn32ozas"


def form(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


def test_reference_company_update_nests() -> None:
    parsed = parse_form(COMPANY_UPDATE)
    assert parsed["data"] == {"FIELDS": {"ID": "2917"}}
    assert parsed["auth"]["application_token"] == TOKEN
    assert parsed["auth"]["client_endpoint"] == "https://example.bitrix24.ru/rest/"
    check_token(parsed, TOKEN)
    assert parse_event(parsed) == CrmChange("company", "update", "2917")


def test_reference_call_init_incoming_uses_caller_id() -> None:
    parsed = parse_form(CALL_INIT)
    assert parse_event(parsed) == CallInit(
        "5E316880469A6376.1773306964.8740011", "+79991234567", "in"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"CALL_TYPE": "1", "PHONE_NUMBER": "+74951112233", "CALLER_ID": "reg1"},
            CallInit("c1", "+74951112233", "out"),
        ),
        (
            {"CALL_TYPE": "1", "CALLER_ID": "+499061234567", "REST_APP_ID": "3"},
            CallInit("c1", "+499061234567", "out"),
        ),
        (
            {"CALL_TYPE": "3", "PHONE_NUMBER": "+74951112233", "CALLER_ID": "+79160001122"},
            CallInit("c1", "+79160001122", "in"),
        ),
        (
            {"CALL_TYPE": "4", "CALLER_ID": " 8 916 000-11-22 "},
            CallInit("c1", "8 916 000-11-22", "in"),
        ),
    ],
)
def test_call_init_client_number(data: dict[str, str], expected: CallInit) -> None:
    fields = {"event": "ONVOXIMPLANTCALLINIT", "data[CALL_ID]": "c1"}
    fields.update({f"data[{k}]": v for k, v in data.items()})
    assert parse_event(parse_form(form(fields))) == expected


def test_call_start_and_end() -> None:
    start = form({"event": "ONVOXIMPLANTCALLSTART", "data[CALL_ID]": "c9", "data[USER_ID]": "1269"})
    end = form(
        {
            "event": "onVoximplantCallEnd",
            "data[CALL_ID]": "c9",
            "data[PORTAL_USER_ID]": "1269",
            "data[CALL_FAILED_CODE]": "304",
        }
    )
    assert parse_event(parse_form(start)) == CallStart("c9", "1269")
    assert parse_event(parse_form(end)) == CallEnd("c9", "1269")


@pytest.mark.parametrize("kind", ["COMPANY", "CONTACT", "LEAD"])
@pytest.mark.parametrize("action", ["ADD", "UPDATE", "DELETE"])
def test_every_crm_event(kind: str, action: str) -> None:
    body = form({"event": f"ONCRM{kind}{action}", "data[FIELDS][ID]": "82"})
    assert parse_event(parse_form(body)) == CrmChange(kind.lower(), action.lower(), "82")  # type: ignore[arg-type]


def test_unknown_event_is_a_value_not_an_error() -> None:
    assert parse_event(parse_form(b"event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=1")) == Unknown(
        "ONCRMDEALUPDATE"
    )


def test_php_append_and_lists() -> None:
    assert parse_form(b"a%5B%5D=1&a%5B%5D=2&b%5Bx%5D%5B%5D=3") == {
        "a": ["1", "2"],
        "b": {"x": ["3"]},
    }
    assert parse_form(b"a%5B%5D%5Bx%5D=1&a%5B%5D%5B%5D=2") == {"a": [{"x": "1"}, ["2"]]}
    assert parse_form(b"") == {}
    assert parse_form(b"a=&b=%D0%AF") == {"a": "", "b": "Я"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"event", "body is not a form: bad query field: 'event'"),
        (b"a=1&&b=2", "body is not a form: bad query field: ''"),
        (b"a=%ff", "body is not URL-encoded UTF-8"),
        (b"\xff=1", "body is not URL-encoded UTF-8"),
        (b"a%5Bb=1", "bad form key 'a[b'"),
        (b"a%5Bb%5Dc=1", "bad form key 'a[b]c'"),
        (b"%5Bb%5D=1", "bad form key '[b]'"),
        (b"a=1&a=2", "form key 'a' is given twice"),
        (b"a=1&a%5Bb%5D=2", "form key 'a[b]' conflicts with an earlier key"),
        (b"a%5Bb%5D=2&a=1", "form key 'a' is given twice"),
        (b"a%5B%5D=1&a%5Bb%5D=2", "form key 'a[b]' conflicts with an earlier key"),
        (b"a%5Bx%5D=1&a%5B%5D=2", "form key 'a[]' conflicts with an earlier key"),
    ],
)
def test_malformed_forms(body: bytes, message: str) -> None:
    with pytest.raises(MalformedBody) as err:
        parse_form(body)
    assert str(err.value) == message


def test_bounds() -> None:
    with pytest.raises(MalformedBody, match=r"^body too large \(65537 bytes, at most 65536\)$"):
        parse_form(b"a=" + b"x" * (MAX_BODY - 1))
    many = "&".join(f"k{i}=1" for i in range(MAX_FIELDS + 1)).encode()
    with pytest.raises(MalformedBody, match="Max number of fields exceeded"):
        parse_form(many)
    deep = ("a" + "[x]" * MAX_DEPTH + "=1").encode()
    with pytest.raises(MalformedBody, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_form(deep)
    assert parse_form(("a" + "[x]" * (MAX_DEPTH - 1) + "=1").encode())


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "auth[application_token] is missing"),
        ({"auth": "x"}, "auth[application_token] is missing"),
        ({"auth": {"application_token": ""}}, "auth[application_token] is missing"),
        (
            {"auth": {"application_token": "nope"}},
            "auth[application_token] does not match CALLGUARD_WEBHOOK_TOKEN",
        ),
        (
            {"auth": {"application_token": "jvh9y1ulvt2m6k5or90v9mg8nn32oza"}},
            "auth[application_token] does not match CALLGUARD_WEBHOOK_TOKEN",
        ),
        (
            {"auth": {"application_token": "жжж"}},
            "auth[application_token] does not match CALLGUARD_WEBHOOK_TOKEN",
        ),
        ({"auth": {"application_token": ["x"]}}, "auth[application_token] is missing"),
    ],
)
def test_bad_tokens(fields: dict[str, object], message: str) -> None:
    with pytest.raises(BadToken) as err:
        check_token(fields, TOKEN)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "the form has no 'event' field"),
        (
            {"event": "ONVOXIMPLANTCALLINIT"},
            "ONVOXIMPLANTCALLINIT: the form has no data[...] fields",
        ),
        (
            {"event": "ONVOXIMPLANTCALLINIT", "data[CALL_TYPE]": "2"},
            "ONVOXIMPLANTCALLINIT: data[CALL_ID] is missing",
        ),
        (
            {"event": "ONVOXIMPLANTCALLINIT", "data[CALL_ID]": "c", "data[CALL_TYPE]": "2"},
            "ONVOXIMPLANTCALLINIT: data[CALLER_ID] is missing",
        ),
        (
            {"event": "ONVOXIMPLANTCALLSTART", "data[CALL_ID]": "c", "data[USER_ID]": "x"},
            "ONVOXIMPLANTCALLSTART: data[USER_ID] must be a numeric id, got 'x'",
        ),
        (
            {"event": "ONVOXIMPLANTCALLEND", "data[CALL_ID]": "c"},
            "ONVOXIMPLANTCALLEND: data[PORTAL_USER_ID] must be a numeric id, got None",
        ),
        (
            {"event": "ONCRMCOMPANYUPDATE", "data[FIELDS]": "1"},
            "ONCRMCOMPANYUPDATE: data[FIELDS][ID] must be a numeric id, got None",
        ),
        (
            {"event": "ONCRMLEADADD", "data[FIELDS][ID]": "-1"},
            "ONCRMLEADADD: data[FIELDS][ID] must be a numeric id, got '-1'",
        ),
        (
            # "08" would be a second identity of user 8; "٨" is a digit only to str.isdigit().
            {"event": "ONVOXIMPLANTCALLSTART", "data[CALL_ID]": "c", "data[USER_ID]": "08"},
            "ONVOXIMPLANTCALLSTART: data[USER_ID] must be a numeric id, got '08'",
        ),
        (
            {"event": "ONVOXIMPLANTCALLEND", "data[CALL_ID]": "c", "data[PORTAL_USER_ID]": "٨"},
            "ONVOXIMPLANTCALLEND: data[PORTAL_USER_ID] must be a numeric id, got '٨'",
        ),
        (
            {"event": "ONCRMCOMPANYUPDATE", "data[FIELDS][ID]": "0"},
            "ONCRMCOMPANYUPDATE: data[FIELDS][ID] must be a numeric id, got '0'",
        ),
        (
            {
                "event": "ONVOXIMPLANTCALLEND",
                "data[CALL_ID]": "c" * 129,
                "data[PORTAL_USER_ID]": "1",
            },
            "ONVOXIMPLANTCALLEND: data[CALL_ID] is longer than 128 characters",
        ),
        (
            {"event": "ONVOXIMPLANTCALLINIT", "data[CALL_ID]": "c", "data[CALLER_ID]": "7" * 65},
            "ONVOXIMPLANTCALLINIT: data[CALLER_ID] is longer than 64 characters",
        ),
        (
            {
                "event": "ONVOXIMPLANTCALLINIT",
                "data[CALL_ID]": "c",
                "data[CALL_TYPE]": "1",
                "data[PHONE_NUMBER]": "7" * 65,
            },
            "ONVOXIMPLANTCALLINIT: data[PHONE_NUMBER] is longer than 64 characters",
        ),
    ],
)
def test_malformed_events(fields: dict[str, str], message: str) -> None:
    with pytest.raises(MalformedBody) as err:
        parse_event(parse_form(form(fields)))
    assert str(err.value) == message
