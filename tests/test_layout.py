"""The layout holds: stages import only from lower stages, nothing imports in a circle, Prefect stays in the flows.

Read from the code's own imports (function-level ones included), so a new
import that runs back up fails here rather than in a reader's head.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "mediamill"

# Low to high: a module may import from its own stage or from stages before it.
LAYERS = [
    "mediamill.config",
    "mediamill.core",
    "mediamill.text",
    "mediamill.epub",
    "mediamill.media",
    "mediamill.store",
    "mediamill.voices",
    "mediamill.profiles",
    "mediamill.manifest",
    "mediamill.verify",
    "mediamill.engines",
    "mediamill.backends",
    "mediamill.ingest",
    "mediamill.report",
    "mediamill.plan",
    "mediamill.generate",
    "mediamill.assemble",
    "mediamill.deliver",
    "mediamill.inbox",
    "mediamill.serve",
    "mediamill.flows",
    "mediamill.cli",
]
# Third-party packages only some stages may use.
ONLY_IN = {"prefect": ("mediamill.flows",)}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> list[tuple[str, int]]:
    """Every module ``name`` imports (absolute names, with the line), at any depth of the code."""
    path = MODULES[name]
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # "from pkg import submodule" imports the submodule
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in MODULES else target, node.lineno))
    return found


def layer_of(name: str) -> int | None:
    if name == "mediamill":
        return -1  # the package root holds only its version
    for index, prefix in enumerate(LAYERS):
        if name == prefix or name.startswith(prefix + "."):
            return index
    return None


def test_every_module_belongs_to_a_stage():
    assert [name for name in MODULES if layer_of(name) is None] == []


def test_no_stage_imports_a_stage_above_it():
    upward = []
    for name in MODULES:
        for target, line in imports_of(name):
            if target.startswith("mediamill") and layer_of(target) is not None and layer_of(target) > layer_of(name):
                upward.append(f"{name}:{line} imports {target}")
    assert upward == []


@pytest.mark.parametrize("package,allowed", ONLY_IN.items())
def test_third_party_parts_stay_in_their_stage(package, allowed):
    misplaced = [
        f"{name}:{line} imports {target}"
        for name in MODULES
        if not name.startswith(allowed)
        for target, line in imports_of(name)
        if target == package or target.startswith(package + ".")
    ]
    assert misplaced == []


def test_media_knows_ffmpeg_and_nothing_of_the_pipeline():
    outside = [
        f"{name}:{line} imports {target}"
        for name in MODULES
        if name.startswith("mediamill.media")
        for target, line in imports_of(name)
        # config: which ffmpeg to run is a setting, and config imports nothing of mediamill
        if target.startswith("mediamill")
        and not target.startswith(("mediamill.media", "mediamill.core", "mediamill.config"))
    ]
    assert outside == []


def test_no_import_circles():
    graph = {name: {t for t, _ in imports_of(name) if t in MODULES and t != name} for name in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    assert circles == []


def test_every_package_has_a_face_and_every_module_its_contract():
    missing_doc = [name for name, path in MODULES.items() if ast.get_docstring(ast.parse(path.read_text())) is None]
    faces = [p for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE]
    without_all = [str(p.relative_to(SRC)) for p in faces if "__all__" not in p.read_text()]
    assert missing_doc == [] and without_all == []
