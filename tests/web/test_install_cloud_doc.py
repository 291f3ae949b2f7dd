"""docs/install-cloud.md is tested: its `callguard extension` line builds, its policy files are
valid JSON naming the id the builder gives, its variables are all documented and read."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from gateway.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "install-cloud.md").read_text(encoding="utf-8")


def json_blocks() -> list[object]:
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", DOC, re.DOTALL)]


def test_the_extension_command_builds_what_the_policies_name(tmp_path: Path) -> None:
    [line] = [x for x in DOC.splitlines() if x.startswith("/opt/callguard/.venv/bin/callguard ")]
    args = shlex.split(line)[1:]
    args[args.index("--out") + 1] = str(tmp_path / "callguard-extension")
    assert main(args) == 0
    manifest = json.loads((tmp_path / "callguard-extension" / "manifest.json").read_text("utf-8"))
    gecko_id = manifest["browser_specific_settings"]["gecko"]["id"]
    chrome, firefox = json_blocks()
    assert isinstance(chrome, dict)
    assert isinstance(firefox, dict)
    assert list(chrome) == ["ExtensionInstallForcelist"]
    assert list(firefox["policies"]["ExtensionSettings"]) == [gecko_id]


def test_every_variable_it_names_is_documented_and_read() -> None:
    names = set(re.findall(r"CALLGUARD_[A-Z_]+", DOC))
    configuration = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    code = "\n".join(f.read_text(encoding="utf-8") for f in (ROOT / "gateway").rglob("*.py"))
    assert sorted(n for n in names if f"`{n}`" not in configuration) == []
    read = [n for n in names if f'"{n}"' in code or f'"{n.removeprefix("CALLGUARD_")}"' in code]
    assert sorted(names - set(read)) == []
