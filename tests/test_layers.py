"""The package's imports point one way: docs/architecture.md, checked on every import of ``src/propensity``.

Every ``import`` and ``from ... import`` inside the package counts, lazy ones inside
functions too: a module may import its own layer or a layer below it, never one
above; modules import no private (``_name``) of another module; and no import
cycle exists between modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import propensity

ROOT = Path(propensity.__file__).parent
# Lowest first: the order of docs/architecture.md's table.
# ``pyfunc`` is propensity.pyfunc, the name models logged by 0.1 import (it re-exports tracking's wrapper).
LAYERS = ("core", "config", "data", "features", "scoring", "modeling", "tabular", "monitoring", "tracking", "pyfunc",
          "spark", "jobs", "cli")


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(("propensity", *parts)).removesuffix(".__init__")
        out[name] = path
    return out


MODULES = _modules()


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None  # None: the package itself (its lazy public API)


def _imports(name: str, path: Path) -> list[tuple[str, str, int]]:
    """``(imported module, imported name or "", line)`` for every propensity import in the module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "propensity"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "propensity":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.append((sub, "", node.lineno) if sub in MODULES else (base, a.name, node.lineno))
    return found


EDGES = [(src, *imp) for src, path in MODULES.items() for imp in _imports(src, path)]


def test_every_module_belongs_to_a_layer():
    unknown = sorted({_layer(m) for m in MODULES if _layer(m) is not None and _layer(m) not in LAYERS})
    assert unknown == [], f"add these packages to docs/architecture.md and LAYERS: {unknown}"


def test_imports_only_point_down():
    up = []
    for src, target, name, line in EDGES:
        s, t = _layer(src), _layer(target)
        if s is None or (t is None and name == "__version__"):
            continue  # the package's lazy facade; the version is package metadata
        if t is None or LAYERS.index(t) > LAYERS.index(s):
            up.append(f"{MODULES[src].relative_to(ROOT.parent)}:{line} {src} imports {target}"
                      + (f".{name}" if name else ""))
    assert up == [], "imports that point up:\n" + "\n".join(up)


def test_no_private_name_is_imported_across_modules():
    private = [f"{MODULES[src].relative_to(ROOT.parent)}:{line} {target}.{name}" for src, target, name, line in EDGES
               if name.startswith("_") and not name.startswith("__") and target != src]
    assert private == [], "private names imported across modules:\n" + "\n".join(private)


def test_no_private_attribute_of_another_module_is_used():
    used = []
    for path in MODULES.values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                aliases.update({(a.asname or a.name.split(".")[0]): a.name for a in node.names
                                if a.name.startswith("propensity")})
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("propensity"):
                aliases.update({(a.asname or a.name): f"{node.module}.{a.name}" for a in node.names
                                if f"{node.module}.{a.name}" in MODULES})
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                used.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {aliases[node.value.id]}.{node.attr}")
    assert used == [], "private attributes of other modules:\n" + "\n".join(used)


def test_no_import_cycle():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for src, target, _name, _line in EDGES:
        if target in MODULES and target != src and _layer(src) is not None:
            graph[src].add(target)
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(" -> ".join([*stack[stack.index(n):], n]))
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small_or_say_why(module):
    path = MODULES[module]
    lines = path.read_text(encoding="utf-8").count("\n")
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    assert lines <= 500 or "Why this module is long" in doc, \
        f"{path.relative_to(ROOT.parent)} has {lines} lines: split it, or say why in its docstring"
