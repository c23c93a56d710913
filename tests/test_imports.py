"""The app's parts import each other without a circle, so each can be read (and tested) alone.

A part is a module of `shared`, or a package of it (`shared.room`, `shared.store`, `shared.assistant`) as a
whole; imports for type hints count too: a circle there is still two parts that cannot be read apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "shared"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part(module: str) -> str:
    """`shared.room.turns` -> `shared.room`: a package of the app counts as one part."""
    return ".".join(module.split(".")[:2])


def imports(path: Path) -> set[str]:
    """The parts of `shared` a module imports: at the top, under TYPE_CHECKING or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("shared"):
            found.add(part(node.module) if node.module != "shared" else f"shared.{node.names[0].name}")
        elif isinstance(node, ast.Import):
            found.update(part(alias.name) for alias in node.names if alias.name.startswith("shared."))
    return found


def test_the_apps_parts_import_each_other_without_a_circle():
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = part(module_name(path))
        if name != "shared":
            graph.setdefault(name, set()).update(imports(path) - {name, "shared"})

    def circle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            name, trail = stack.pop()
            for nxt in graph.get(name, ()):
                if nxt == start:
                    return [*trail, start]
                if nxt not in trail:
                    stack.append((nxt, [*trail, nxt]))
        return None

    circles = [c for name in sorted(graph) if (c := circle_from(name))]
    assert circles == [], "import circles: " + "; ".join(" -> ".join(c) for c in circles)
