"""rules/ is the pure core: only the standard library and phonenumbers, no I/O libraries."""

import ast
import sys
from pathlib import Path

import rules

ALLOWED_THIRD_PARTY = {"phonenumbers"}
# Standard-library modules that would bring I/O or concurrency into the core.
FORBIDDEN_STDLIB = {"asyncio", "socket", "subprocess", "threading", "http", "urllib", "sqlite3"}


def imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_rules_imports_only_stdlib_and_phonenumbers() -> None:
    package = Path(rules.__file__).parent
    files = sorted(package.rglob("*.py"))
    assert len(files) >= 5
    for file in files:
        for root in imported_roots(ast.parse(file.read_text(encoding="utf-8"))):
            if root in ("rules", "__future__"):
                continue
            assert root not in FORBIDDEN_STDLIB, f"{file.name} imports {root}"
            assert root in sys.stdlib_module_names or root in ALLOWED_THIRD_PARTY, (
                f"{file.name} imports {root}, which the pure core may not use"
            )


def test_the_check_catches_a_forbidden_import() -> None:
    assert imported_roots(ast.parse("import aiohttp\nfrom gateway import x")) == {
        "aiohttp",
        "gateway",
    }
