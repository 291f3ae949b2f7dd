import orjson
import pytest

from gateway.live import wire
from rules.model import Decision, Owner, Subject


def test_client_frames_decode_to_typed_values() -> None:
    call = '{"type":"call","call_id":"c1","phone":"+7 495 123-45-67","direction":"out"}'
    assert wire.decode(call, 4096) == wire.CallFrame("c1", "+7 495 123-45-67", "out")
    assert wire.decode('{"type":"call","call_id":"c1","phone":"1"}', 4096).direction == "in"  # type: ignore[union-attr]
    assert wire.decode('{"type":"ended","call_id":"c1"}', 4096) == wire.EndedFrame("c1")
    applied = '{"type":"applied","call_id":"c1","seq":3,"latency_ms":41.5,"extra":1}'
    assert wire.decode(applied, 4096) == wire.AppliedFrame("c1", 3, 41.5)
    assert wire.decode('{"type":"applied","call_id":"c","seq":0}', 4096) == wire.AppliedFrame(
        "c", 0, None
    )


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("x" * 5000, wire.TOO_LARGE),
        ('{"type":"call","phone":"' + "я" * 2100 + '"}', wire.TOO_LARGE),
        (b'{"type":"ended","call_id":"c"}', wire.INVALID_MESSAGE),
        ("{not json", wire.INVALID_JSON),
        ("[1, 2]", wire.INVALID_MESSAGE),
        ('{"call_id":"c"}', wire.INVALID_MESSAGE),
        ('{"type":"hello"}', wire.UNKNOWN_TYPE),
        ('{"type":"call","call_id":"c","phone":5}', wire.INVALID_MESSAGE),
        ('{"type":"call","call_id":"","phone":"1"}', wire.INVALID_MESSAGE),
        ('{"type":"call","call_id":"' + "c" * 200 + '","phone":"1"}', wire.INVALID_MESSAGE),
        ('{"type":"call","call_id":"c","phone":"1","direction":"up"}', wire.INVALID_MESSAGE),
        ('{"type":"applied","call_id":"c","seq":-1}', wire.INVALID_MESSAGE),
        ('{"type":"applied","call_id":"c","seq":true}', wire.INVALID_MESSAGE),
        ('{"type":"applied","call_id":"c","seq":1,"latency_ms":"fast"}', wire.INVALID_MESSAGE),
        ('{"type":"applied","call_id":"c","seq":1,"latency_ms":-5}', wire.INVALID_MESSAGE),
    ],
)
def test_bad_client_frames_name_the_problem(frame: str | bytes, code: str) -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.decode(frame, 4096)
    assert caught.value.code == code
    assert caught.value.message


def test_server_frames_match_the_contract() -> None:
    decision = Decision("red", "#d32f2f", "foreign-client-in-work", "Чужой клиент")
    assert orjson.loads(wire.paint("c1", 2, decision)) == {
        "type": "paint",
        "call_id": "c1",
        "seq": 2,
        "colour": "red",
        "background": "#d32f2f",
        "rule": "foreign-client-in-work",
        "text": "Чужой клиент",
    }
    assert orjson.loads(wire.clear("c1")) == {"type": "clear", "call_id": "c1"}


def test_paints_sharing_a_decision_carry_their_own_call_and_language() -> None:
    """A decision's part of the frame is encoded once per decision and language
    (gateway.live.decisions.PerDecision): each frame still has its own call, seq and text."""
    owner, subject = (
        Owner("6", "Анна"),
        Subject("company", "12", "ООО Ромашка", "W", "В работе", "In work"),
    )
    decision = Decision(
        "red", "#d32f2f", "foreign", "Чужой клиент", None, "Someone else's client", owner, subject
    )
    for n, lang in enumerate(("ru", "en", "ru", "en")):
        text = wire.paint(f"c{n}", n, decision, lang)
        assert text.startswith(wire.PAINT_START)  # how a tab tells a paint from other frames
        frame = orjson.loads(text)
        english = lang == "en"
        assert frame == {
            "type": "paint",
            "call_id": f"c{n}",
            "seq": n,
            "colour": "red",
            "background": "#d32f2f",
            "rule": "foreign",
            "text": "Someone else's client" if english else "Чужой клиент",
            "owner": {"id": "6", "name": "Анна"},
            "entity": {
                "type": "company",
                "id": "12",
                "title": "ООО Ромашка",
                "status": "In work" if english else "В работе",
            },
        }
    other = Decision("yellow", "#fbc02d", "contact", "Контакт")  # another decision: its own part
    assert orjson.loads(wire.paint("c9", 1, other))["colour"] == "yellow"
    assert orjson.loads(wire.error("x", "why")) == {"type": "error", "code": "x", "message": "why"}
    hello = orjson.loads(wire.hello("6", 20.0, "0.1.0"))
    assert hello["type"] == "hello"
    assert hello["user_id"] == "6"
