"""`callguard explain`: the decision for a person, or one JSON object; exit 2 on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["explain", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_red_for_another_managers_company(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--phone", "8 495 222-33-44", "--caller", "6")
    assert code == 0
    assert "RED (#d32f2f)" in out
    assert "foreign-client-in-work" in out
    assert "АО «Вектор»" in out


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--phone", "+7 916 123-45-67", "--caller", "6", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["colour"] == "blue"
    assert doc["rule"] == "lead-only"
    assert doc["background"] == "#1565c0"
    assert doc["phone"] == "+79161234567"
    assert [x["id"] for x in doc["findings"]["leads"]] == ["40"]
    assert "reason" in doc


def test_none_is_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--phone", "+7 999 000 00 00", "--caller", "6", "--json")
    assert code == 0
    assert json.loads(out)["colour"] == "none"
    assert json.loads(out)["background"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--phone", "hello", "--caller", "6"], "'hello' is not a phone number"),
        (
            ["--phone", "+7 916 000 11 22", "--caller", "anna"],
            "--caller must be a Bitrix24 user id",
        ),
        (
            ["--phone", "+7 916 000 11 22", "--caller", "06"],
            "without leading zeros (e.g. 7), got '06'",
        ),
        (
            ["--phone", "+7 916 000 11 22", "--caller", "6", "--directory", "/nope.json"],
            "data file not found",
        ),
        (
            ["--phone", "+7 916 000 11 22", "--caller", "6", "--rules", "/nope.toml"],
            "rules file not found",
        ),
        (
            ["--phone", "+7 916 000 11 22", "--caller", "6", "--region", "XX"],
            "unknown phone region",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2
    assert out == ""
    assert message in err
    assert err.count("\n") == 1
    assert err.startswith("callguard explain: ")


def test_malformed_files_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rules = tmp_path / "r.toml"
    rules.write_text("[[rules]]\nid = 'x'\n", encoding="utf-8")
    code, _, err = run(capsys, "--phone", "+79160001122", "--caller", "6", "--rules", str(rules))
    assert code == 2
    assert "r.toml: " in err
    data = tmp_path / "d.json"
    data.write_text('{"companies": [{"id": 1}]}', encoding="utf-8")
    code, _, err = run(capsys, "--phone", "+79160001122", "--caller", "6", "--directory", str(data))
    assert code == 2
    assert "companies[0].assigned_by: missing" in err


def test_console_script_and_python_m_agree() -> None:
    args = ["explain", "--phone", "+7 (916) 000-11-22", "--caller", "7", "--json"]
    via_module = subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, check=True
    )
    script = Path(sys.executable).parent / "callguard"
    via_script = subprocess.run([str(script), *args], capture_output=True, text=True, check=True)
    assert json.loads(via_module.stdout) == json.loads(via_script.stdout)
    assert json.loads(via_module.stdout)["colour"] == "red"
