"""The built wheel, installed into a fresh venv outside the checkout, serves the snippet and the
demo page (issue 9: ``pip install .`` used to answer 500 for ``/static/callguard.js``).

One test, ~30-60 s: build the wheel from a copy of the sources, install it with ``--no-index``
(the dependencies come from this test run's own environment, linked in read-only, without the
editable callguard), and run ``callguard serve`` and ``callguard demo`` from a temporary
directory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest

from tests.processes import ROOT, callguard, clean_env
from tests.timing import timeout

SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "gateway", "rules", "static")


def deps_without_callguard(target: Path) -> Path:
    """This environment's installed packages, less the editable callguard, linked into one dir."""
    target.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        name = entry.name.lower()
        if name.startswith(("callguard", "__editable__", "gateway", "rules")) or name.endswith(
            ".pth"
        ):
            continue
        (target / entry.name).symlink_to(entry)
    return target


def run(*command: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout(36),
        # pip's own settings (index, find-links) stay; nothing points Python at the checkout.
        env={k: v for k, v in clean_env().items() if not k.startswith("PYTHON")},
    )
    assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.packaging
def test_the_wheel_serves_the_snippet_and_the_demo_page_from_any_directory(
    tmp_path: Path,
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    pip = (sys.executable, "-m", "pip")
    run(*pip, "wheel", "--no-deps", "-q", "-w", dist, source, cwd=tmp_path)
    wheel = next(dist.glob("callguard-*.whl"))
    listing = run(sys.executable, "-m", "zipfile", "-l", wheel, cwd=tmp_path)
    assert "gateway/static/callguard.js" in listing
    assert "gateway/static/demo/index.html" in listing

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
    )
    deps = deps_without_callguard(tmp_path / "deps")
    (Path(site.strip()) / "deps.pth").write_text(f"{deps}\n", encoding="utf-8")
    run(
        *pip,
        "--python",
        python,
        "install",
        "-q",
        "--no-index",
        "--find-links",
        dist,
        "callguard",
        cwd=tmp_path,
    )
    where = run(python, "-c", "import gateway.web.app as a; print(a.STATIC_DIR)", cwd=tmp_path)
    assert where.strip().startswith(str(venv)), where

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    snippet = (ROOT / "static" / "callguard.js").read_bytes()
    command = (str(venv / "bin" / "callguard"),)
    with (
        callguard("serve", "--insecure-dev", command=command, cwd=outside) as gw,
        httpx.Client(base_url=gw.base, timeout=timeout()) as http,
    ):
        served = http.get("/static/callguard.js")
        assert (served.status_code, served.content) == (200, snippet)
        assert http.get("/demo/").status_code == 404  # the demo page is callguard demo's alone
    with (
        callguard("demo", command=command, cwd=outside) as demo,
        httpx.Client(base_url=demo.base, timeout=timeout()) as http,
    ):
        page = http.get("/demo/")
        assert page.status_code == 200
        assert "Callguard" in page.text
        assert http.get("/demo/demo.js").status_code == 200
        assert http.get("/static/callguard.js").content == snippet
