"""`callguard extension`: what it writes is a valid MV3 extension with no remote code, host
access to the portal and the gateway only, and the snippet bundled as it is served."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.tools.extension import SNIPPET

PORTAL = "https://example.bitrix24.ru/rest/1/s3cr3tw3bh00kc0de/"
GATEWAY = "https://callguard.example.com"
ALLOWED_URLS = {"https://example.bitrix24.ru", GATEWAY}


@pytest.fixture
def written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "ext"
    assert main(["extension", "--portal", PORTAL, "--gateway", GATEWAY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"unpacked extension: {out}" in printed
    assert f"zip for the stores: {out}.zip" in printed
    return out


def test_the_manifest_is_mv3_for_chromium_and_firefox(written: Path) -> None:
    manifest = json.loads((written / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["manifest_version"] == 3
    assert re.fullmatch(r"\d+(\.\d+){0,3}", manifest["version"])
    assert manifest["background"] == {
        "service_worker": "background.js",
        "scripts": ["background.js"],
    }
    assert manifest["browser_specific_settings"]["gecko"]["id"] == "callguard@callguard.example.com"
    assert len(manifest["description"]) <= 132  # the Chrome Web Store's limit
    referenced = [
        manifest["background"]["service_worker"],
        manifest["options_ui"]["page"],
        *manifest["icons"].values(),
        *(f for script in manifest["content_scripts"] for f in script["js"]),
    ]
    assert [f for f in referenced if not (written / f).is_file()] == []


def test_access_is_limited_to_the_two_origins(written: Path) -> None:
    manifest = json.loads((written / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["permissions"] == ["storage"]
    assert manifest["host_permissions"] == [
        "https://example.bitrix24.ru/*",
        "https://callguard.example.com/*",
    ]
    assert "optional_permissions" not in manifest
    assert "optional_host_permissions" not in manifest
    portal, signin = manifest["content_scripts"]
    assert portal == {
        "matches": ["https://example.bitrix24.ru/*"],
        "js": ["content.js"],
        "run_at": "document_idle",
    }
    assert signin["matches"] == ["https://callguard.example.com/auth/callback*"]
    assert "content_security_policy" not in manifest  # MV3's default: script-src 'self'


def test_no_remote_code(written: Path) -> None:
    for file in written.iterdir():
        if file.suffix not in (".js", ".html"):
            continue
        text = file.read_text(encoding="utf-8")
        assert re.findall(r"\beval\(|new Function\(|importScripts\(|\bimport\(", text) == [], file
        tags = re.findall(r"<script[^>]*>", text) if file.suffix == ".html" else []
        for tag in tags:
            assert re.fullmatch(r'<script src="[\w.]+\.js">', tag), (file, tag)
        urls = set(re.findall(r"(?:https?|wss?)://[\w.:-]+", text))
        assert urls <= ALLOWED_URLS | {"wss://callguard.example.com"}, (file.name, urls)


def test_the_snippet_is_bundled_as_served_and_the_webhook_code_is_not(written: Path) -> None:
    content = (written / "content.js").read_text(encoding="utf-8")
    assert SNIPPET.read_text(encoding="utf-8") in content
    assert '"ws": "wss://callguard.example.com/ws"' in content
    for file in written.iterdir():
        assert b"s3cr3tw3bh00kc0de" not in file.read_bytes(), file.name


def test_the_zip_holds_the_same_files(written: Path) -> None:
    with zipfile.ZipFile(f"{written}.zip") as zf:
        names = sorted(zf.namelist())
        assert names == sorted(p.name for p in written.iterdir())
        assert zf.read("manifest.json") == (written / "manifest.json").read_bytes()


def test_a_version_of_its_own(tmp_path: Path) -> None:
    out = tmp_path / "ext"
    args = ["--portal", PORTAL, "--gateway", GATEWAY, "--version", "0.1.0.7", "--out", str(out)]
    assert main(["extension", *args]) == 0
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["version"] == "0.1.0.7"


def test_a_gateway_under_a_path_keeps_it(tmp_path: Path) -> None:
    out = tmp_path / "ext"
    assert (
        main(["extension", "--portal", PORTAL, "--gateway", f"{GATEWAY}/cg/", "--out", str(out)])
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["content_scripts"][1]["matches"] == [
        "https://callguard.example.com/cg/auth/callback*"
    ]
    assert '"ws": "wss://callguard.example.com/cg/ws"' in (out / "content.js").read_text(
        encoding="utf-8"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--portal", "example.bitrix24.ru", "--gateway", GATEWAY], "--portal must be"),
        (["--portal", PORTAL, "--gateway", "ftp://gw"], "--gateway must be"),
        (["--portal", PORTAL, "--gateway", GATEWAY, "--version", "1.x"], "--version must"),
    ],
)
def test_bad_addresses_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["extension", *args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err


def test_it_will_not_empty_a_folder_that_is_not_an_extension(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    assert (
        main(["extension", "--portal", PORTAL, "--gateway", GATEWAY, "--out", str(tmp_path)]) == 2
    )
    assert "other things in it" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").exists()
