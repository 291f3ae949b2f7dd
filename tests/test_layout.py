"""The house (issue 8): rooms by concern, small modules, no import circle, one of each thing.

These read the source as text or as a syntax tree; what they guard is how the code is laid out,
which no behaviour test would notice drifting.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = ROOT / "gateway"
MAX_ROOT_MODULES = 10
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for file in sorted([*GATEWAY.rglob("*.py"), *(ROOT / "rules").rglob("*.py")]):
        parts = file.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = file
    return found


def module_imports(file: Path, known: set[str]) -> set[str]:
    """Modules of ours imported when ``file`` is imported: top-level statements only (not the
    ones inside functions, nor under ``if TYPE_CHECKING``)."""
    out: set[str] = set()
    for node in ast.parse(file.read_text(encoding="utf-8")).body:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        out.update(n for n in names if n in known)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def source(path: str) -> str:
    return (ROOT / path).read_text(encoding="utf-8")


def gateway_files() -> list[Path]:
    return sorted(GATEWAY.rglob("*.py"))


def test_the_gateway_root_holds_few_modules() -> None:
    root = [f.name for f in GATEWAY.glob("*.py")]
    assert len(root) <= MAX_ROOT_MODULES, root


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(f.relative_to(ROOT)): n
        for f in [*gateway_files(), *(ROOT / "rules").rglob("*.py")]
        if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_import_circle() -> None:
    mods = modules()
    graph = {}
    for name, file in mods.items():
        # Importing a.b.c imports its packages first: a package's own imports count too.
        graph[name] = {m for m in module_imports(file, set(mods)) if m != name}
    assert cycles(graph) == []


def test_the_circle_check_sees_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_one_directory_factory() -> None:
    defs = [
        str(f.relative_to(ROOT))
        for f in gateway_files()
        if re.search(r"^def build_directory\b", f.read_text(encoding="utf-8"), re.M)
    ]
    assert defs == ["gateway/crm/build.py"]


def test_one_bracket_parser() -> None:
    # Whoever matches a bracket key ("name" then "[...]"s) or nests forms is a form parser.
    parsers = [
        str(f.relative_to(ROOT))
        for f in gateway_files()
        if re.search(r'r"\^\(\[\^\\\[|def _listify|def build_nested', f.read_text(encoding="utf-8"))
    ]
    assert parsers == ["gateway/crm/forms.py"]


def test_one_single_flight_layer() -> None:
    # The cache registers each in-flight lookup; the call pipeline keeps no lookups of its own.
    calls = source("gateway/live/calls.py")
    assert "Task[Findings]" not in calls
    assert "self._inflight[phone] = task" in source("gateway/crm/cache.py")
    rule = "register the in-flight task BEFORE any await"
    assert [f.name for f in gateway_files() if rule in f.read_text(encoding="utf-8")] == [
        "cache.py"
    ]


def test_one_status_field_cache() -> None:
    # The list items (item ID -> status code) are read and kept only by StatusField; setup-portal
    # reads the field's definition to add what it lacks, and keeps nothing (the fake portal,
    # being the portal, is not a reader).
    readers = [
        str(f.relative_to(ROOT))
        for f in gateway_files()
        if 'get("XML_ID")' in f.read_text(encoding="utf-8") and "fakeportal" not in f.parts
    ]
    assert readers == ["gateway/crm/statusfield.py", "gateway/portal/setup.py"]


def test_no_choice_by_the_class_behind_the_cache() -> None:
    for file in gateway_files():
        text = file.read_text(encoding="utf-8")
        found = re.findall(
            r"isinstance\([^)]*(?:CachedDirectory|DataFileDirectory|BitrixDirectory)", text
        )
        assert found == [], f"{file.relative_to(ROOT)}: {found}"
    assert "data_file_of" not in source("gateway/run/runtime.py")
