"""`callguard fake-portal` serves the data file; `callguard explain --portal` reads it over REST."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from gateway.cli import main
from tests.timing import timeout


@pytest.fixture(scope="module")
def portal_url() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "fake-portal", "--port", "0", "--code", "s3cr3t0code"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # blocks until the server is up (or exits)
        assert first.startswith("fake portal listening on http://127.0.0.1:"), first
        yield proc.stdout.readline().strip().removeprefix("CALLGUARD_PORTAL_URL=")
    finally:
        proc.terminate()
        proc.wait(timeout())
        if proc.stdout is not None:
            proc.stdout.close()


def test_explain_over_rest_equals_explain_over_the_data_file(
    portal_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert portal_url.endswith("/rest/1/s3cr3t0code/")
    args = ["explain", "--phone", "8 916 000-11-22", "--caller", "9", "--json"]
    assert main([*args, "--portal", portal_url]) == 0
    over_rest = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    assert over_rest == json.loads(capsys.readouterr().out)
    assert over_rest["colour"] == "red"


def test_explain_with_a_wrong_code_says_so_without_the_code(
    portal_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = portal_url.replace("s3cr3t0code", "wr0ng0code")
    assert main(["explain", "--phone", "+74951234567", "--caller", "7", "--portal", wrong]) == 2
    err = capsys.readouterr().err
    assert "HTTP 401 NO_AUTH_FOUND: Wrong authorization data" in err
    assert "wr0ng0code" not in err
