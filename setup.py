"""Build hook: the wheel carries the top-level ``static/`` (the snippet and the demo page) as
``gateway/static``, so an installed gateway serves them from any working directory. ``static/``
stays the one source: nothing is copied into the checkout, only into the build tree."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithStatic(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads static/ from the checkout
            return
        target = Path(self.build_lib) / "gateway" / "static"
        shutil.copytree(ROOT / "static", target, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithStatic})
