"""The package's import graph (issue 26): no import circles between its modules, no private name imported
across files, and matplotlib imported only by the reporting wing (``persona_circuits/reporting/``). Every import
counts, at the top of a module or inside a function (a lazy import closes a circle just the same). Read with
``ast``; nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "persona_circuits"
#: Circles allowed (none: the core's last one, masks <-> projection gate, went with the method registry).
KNOWN_CIRCLES: list[set[str]] = []


def import_graph(root: Path) -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """``{module: modules it imports}`` (dotted names under ``root``'s package) and the private names imported
    from another module, ``(importer, module, name)``."""
    mods = {}
    for f in root.rglob("*.py"):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for m, (f, is_pkg) in mods.items():
        pkg = m if is_pkg else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                sub = f"{target}.{a.name}"
                t = sub if sub in mods else target
                if t in mods and t != m:
                    edges[m].add(t)
                    if a.name.startswith("_") and not a.name.startswith("__") and sub not in mods:
                        private.append((m, t, a.name))
    return edges, private


def circles(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(comp)
    return out


def test_no_import_circles_but_the_known_one():
    edges, _ = import_graph(PACKAGE)
    found = [{m.removeprefix("persona_circuits.") for m in c} for c in circles(edges)]
    new = [sorted(c) for c in found if c not in KNOWN_CIRCLES]
    assert not new, f"import circles: {new}"


def test_no_private_name_crosses_files():
    _, private = import_graph(PACKAGE)
    assert not private, f"private names imported from another module: {private}"


def test_the_checks_see_a_circle_and_a_private_import(tmp_path):
    """The checks can fail: a two-module circle through a lazy import, and a private name, are both reported."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import g\n\ndef f():\n    return g()\n")
    (pkg / "b.py").write_text("def g():\n    from .a import _h\n    return _h\n")
    (pkg / "c.py").write_text("from . import a\n")
    edges, private = import_graph(pkg)
    assert circles(edges) == [{"pkg.a", "pkg.b"}]
    assert private == [("pkg.b", "pkg.a", "_h")]


def test_nothing_imports_the_command_line():
    edges, _ = import_graph(PACKAGE)
    users = sorted(m for m, deps in edges.items() if not m.startswith("persona_circuits.cli")
                   and any(d == "persona_circuits.cli" or d.startswith("persona_circuits.cli.") for d in deps))
    assert not users, f"modules importing persona_circuits.cli: {users}"


def matplotlib_users(root: Path) -> list[str]:
    """The modules of ``root``'s package outside its ``reporting/`` wing that import matplotlib (``import``,
    ``from ... import``, ``importlib.import_module`` or ``__import__``; at the top or inside a function)."""
    def is_mpl(name) -> bool:
        """Whether ``name`` is matplotlib or one of its modules."""
        return isinstance(name, str) and (name == "matplotlib" or name.startswith("matplotlib."))

    users = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root)
        if rel.parts[0] == "reporting":
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module] if not node.level else []
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) and \
                    getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__"):
                names = [node.args[0].value]
            else:
                continue
            if any(is_mpl(n) for n in names):
                users.append(str(rel))
                break
    return users


def test_only_the_reporting_wing_imports_matplotlib():
    assert matplotlib_users(PACKAGE) == [], "plotting belongs in persona_circuits/reporting/"


def test_the_matplotlib_check_sees_an_import(tmp_path):
    """The check can fail: lazy, aliased and dynamic imports outside ``reporting/`` are reported, the wing's are not."""
    pkg = tmp_path / "pkg"
    (pkg / "reporting").mkdir(parents=True)
    (pkg / "analysis").mkdir()
    (pkg / "reporting" / "fig.py").write_text("import matplotlib.pyplot as plt\n")
    (pkg / "analysis" / "plots.py").write_text("def f():\n    from matplotlib.figure import Figure\n    return Figure\n")
    (pkg / "a.py").write_text("import numpy, matplotlib as mpl\n")
    (pkg / "b.py").write_text("import importlib\nm = importlib.import_module('matplotlib.colors')\n")
    (pkg / "c.py").write_text("from .matplotlib_free import x\nimport matplotlibx\n")
    assert matplotlib_users(pkg) == ["a.py", "analysis/plots.py", "b.py"]


def private_imports(root: Path) -> list[tuple[str, str, str]]:
    """``(file, module, name)`` for every private name (one leading underscore) a file under ``root`` imports."""
    out = []
    for f in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                out += [(str(f.relative_to(root.parent)), "." * node.level + (node.module or ""), a.name)
                        for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    return out


def test_tests_and_benchmarks_import_no_private_name():
    """Issue 26: what a test or a benchmark needs of the package (or of a shared helper) is public."""
    found = [p for d in ("tests", "benchmarks", "analyses") for p in private_imports(PACKAGE.parent / d)]
    assert not found, f"private names imported: {found}"


def test_the_private_import_scan_can_fail(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.py").write_text("from x import _y, __version__\n")
    assert private_imports(tmp_path / "t") == [("t/a.py", "x", "_y")]
