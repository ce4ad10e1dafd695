"""The package structure check CI runs (issue 25): module sizes, import cycles, module state.

Static (ast and tokenize only): it never imports livekit_ext, so it needs no livekit and
judges the code as written, lazy imports included. It prints its figures and exits 1 when
a rule is broken:

1. no production module (livekit_ext/ without testing/ and demo/) over ``MAX_LINES`` lines;
2. no import cycle among the package's own modules;
3. every module-level mutable state and ContextVar of a production module outside
   ``livekit_ext/_state.py`` carries its reason: a ``# module state: why`` comment on its
   line or right above it.

Usage: ``python scripts/check_structure.py [--root PATH] [--max-lines N]``.
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import sys
import tokenize
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

MAX_LINES = 400
PACKAGE = "livekit_ext"
NOT_PRODUCTION = ("testing", "demo")  # subpackages: test support and the demo app
STATE_MODULE = f"{PACKAGE}/_state.py"  # the sanctioned place for per-object state
SHOWN_LARGEST = 5

# Calls that build a mutable container (by the called name, bare or dotted).
MUTABLE_CALLS = frozenset(
    {
        "dict",
        "list",
        "set",
        "bytearray",
        "OrderedDict",
        "defaultdict",
        "deque",
        "Counter",
        "WeakKeyDictionary",
        "WeakValueDictionary",
        "WeakSet",
    }
)
MUTABLE_DISPLAYS = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)
DISPLAY_NAMES: Mapping[type[ast.expr], str] = {
    ast.Dict: "dict display",
    ast.List: "list display",
    ast.Set: "set display",
}
# Annotations that declare a table read-only: such a display is a constant, not state.
READ_ONLY_ANNOTATIONS = frozenset(
    {"Final", "Mapping", "Sequence", "frozenset", "AbstractSet", "Collection"}
)
TRY_NODES = tuple(getattr(ast, name) for name in ("Try", "TryStar") if hasattr(ast, name))
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
REASON = re.compile(r"#\s*module state:\s*(.*)", re.IGNORECASE)


@dataclass(frozen=True)
class Module:
    """One source file of the package, parsed once."""

    name: str  # dotted: livekit_ext.a.b (a package is named after its directory)
    path: str  # relative to the root, with forward slashes
    is_package: bool
    lines: int
    tree: ast.Module
    source: str

    @property
    def production(self) -> bool:
        parts = self.path.split("/")
        return not (len(parts) > 2 and parts[1] in NOT_PRODUCTION)


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``line``; ``lazy`` when inside a function."""

    source: str
    target: str
    line: int
    lazy: bool


@dataclass
class State:
    """A module-level name holding process state, with every place that makes it one."""

    path: str
    name: str
    kinds: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    reason: str | None = None

    @property
    def is_context_var(self) -> bool:
        return "ContextVar" in self.kinds


# -- reading the package ---------------------------------------------------------------


def load_modules(root: Path) -> dict[str, Module]:
    """Every ``.py`` file under ``<root>/livekit_ext``, keyed by dotted module name."""
    modules: dict[str, Module] = {}
    for file in sorted((root / PACKAGE).rglob("*.py")):
        if "__pycache__" in file.parts:
            continue
        rel = file.relative_to(root).as_posix()
        parts = rel[: -len(".py")].split("/")
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        source = file.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=rel)
        name = ".".join(parts)
        modules[name] = Module(name, rel, is_package, len(source.splitlines()), tree, source)
    return modules


def is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``: the body never runs."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def called_name(node: ast.expr) -> str | None:
    """``f`` for ``f(...)`` and ``m.f(...)``; None for anything else."""
    if not isinstance(node, ast.Call):
        return None
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def walk_runtime(node: ast.AST, lazy: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node that can run, with whether it sits in a function (skips TYPE_CHECKING)."""
    for child in ast.iter_child_nodes(node):
        runs: list[ast.AST] = [child]
        if isinstance(child, ast.If) and is_type_checking(child.test):
            runs = list(child.orelse)
        for run in runs:
            yield run, lazy
            yield from walk_runtime(run, lazy or isinstance(run, FUNCTIONS))


def global_statements(
    node: ast.AST, function: str | None = None
) -> Iterator[tuple[ast.Global, str]]:
    """Each ``global`` statement with the name of the function it sits in."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Global) and function:
            yield child, function
        inner = (
            child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
        )
        yield from global_statements(child, inner)


# -- rule 2: import cycles -------------------------------------------------------------


def ancestors(name: str) -> list[str]:
    """``a.b.c`` -> ``[a.b, a]``: the packages Python initialises before ``a.b.c``."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def resolve_base(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module ``from <base> import ...`` names, relative levels resolved."""
    if node.level == 0:
        return node.module or ""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    parts = package.split(".")
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    base = ".".join(parts)
    return f"{base}.{node.module}" if node.module else base


def targets_of(module: Module, node: ast.AST, known: dict[str, Module]) -> list[tuple[str, bool]]:
    """The package modules one import statement loads: (name, explicit) pairs.

    Explicit: the named module, or the package whose names ``from pkg import name`` takes.
    Implicit: the parent packages Python initialises on the way.
    """
    explicit: list[str] = []
    if isinstance(node, ast.Import):
        explicit = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = resolve_base(module, node)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in known:
                explicit.append(submodule)
            elif not any(name.startswith(submodule + ".") for name in known):
                explicit.append(base)  # a name the package defines: its __init__ runs
            # else a directory without __init__.py (a namespace package): no code to run
    elif isinstance(node, ast.Call) and called_name(node) in ("import_module", "__import__"):
        first = node.args[0] if node.args else None  # a lazy import by a literal name
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            explicit = [first.value]
    found: list[tuple[str, bool]] = []
    for target in explicit:
        if target == PACKAGE or target.startswith(PACKAGE + "."):
            found.append((target, True))
            found.extend((parent, False) for parent in ancestors(target))
    return [(target, is_explicit) for target, is_explicit in found if target in known]


def import_edges(modules: dict[str, Module]) -> list[Edge]:
    """Each module's imports of package modules, lazy ones included.

    An implicit edge to one of the importer's own parent packages is dropped: that package
    is initialised before the importer runs, so it cannot close a cycle (a package
    ``__init__`` importing its submodules, which import their siblings, is the normal
    pattern). An explicit import of names from the own package is kept.
    """
    edges: list[Edge] = []
    for module in modules.values():
        own = {module.name, *ancestors(module.name)}
        for node, lazy in walk_runtime(module.tree):
            line = getattr(node, "lineno", 0)
            for target, explicit in targets_of(module, node, modules):
                if not explicit and target in own:
                    continue
                edges.append(Edge(module.name, target, line, lazy))
    return list(dict.fromkeys(edges))  # `from m import a, b` is one edge


def strongly_connected(nodes: list[str], edges: list[Edge]) -> list[list[str]]:
    """Tarjan's components, iteratively (no recursion limit for a deep chain)."""
    graph: dict[str, list[str]] = {node: [] for node in nodes}
    for edge in edges:
        graph[edge.source].append(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(graph[succ])))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def find_cycles(modules: dict[str, Module], edges: list[Edge]) -> list[list[str]]:
    """Components of more than one module, and modules that import themselves."""
    self_importing = {edge.source for edge in edges if edge.source == edge.target}
    return [
        component
        for component in strongly_connected(sorted(modules), edges)
        if len(component) > 1 or component[0] in self_importing
    ]


def shortest_loop(component: list[str], edges: list[Edge]) -> list[str]:
    """A shortest path from the component's first module back to itself, for the report."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for edge in edges:
                if edge.source != node or edge.target not in members:
                    continue
                if edge.target == start:
                    path = [start, node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1]
                if edge.target not in previous:
                    previous[edge.target] = node
                    following.append(edge.target)
        frontier = following
    return [start, start]


# -- rule 3: module-level mutable state and ContextVars --------------------------------


def comments_by_line(source: str) -> dict[int, str]:
    """Each line's comment (tokenize, so a ``#`` inside a string is no comment)."""
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string
    return comments


def reason_at(line: int, lines: list[str], comments: dict[int, str]) -> str | None:
    """The ``# module state:`` reason on ``line`` or in the comment block right above it.

    The comment lines after the one that opens the reason continue it.
    """
    trailing = REASON.search(comments.get(line, ""))
    if trailing:
        return trailing.group(1).strip() or None
    block: list[str] = []
    above = line - 1
    while above >= 1 and lines[above - 1].lstrip().startswith("#"):
        block.insert(0, comments.get(above, lines[above - 1].strip()))
        above -= 1
    for i, comment in enumerate(block):
        opened = REASON.match(comment)
        if opened:
            rest = [c.lstrip("#").strip() for c in block[i + 1 :]]
            return " ".join([opened.group(1).strip(), *rest]).strip() or None
    return None


def annotation_is_read_only(annotation: ast.expr | None) -> bool:
    """``Final``, ``Mapping[...]``, ``Sequence[...]``, ``frozenset`` (bare or dotted)."""
    if annotation is None:
        return False
    if isinstance(annotation, ast.Subscript):
        annotation = annotation.value
    if isinstance(annotation, ast.Name):
        return annotation.id in READ_ONLY_ANNOTATIONS
    if isinstance(annotation, ast.Attribute):
        return annotation.attr in READ_ONLY_ANNOTATIONS
    return False


def state_kind(value: ast.expr | None, annotation: ast.expr | None) -> str | None:
    """What makes a module-level value state: "ContextVar", a container's name, or None."""
    if value is None:
        return None
    name = called_name(value)
    if name == "ContextVar":
        return "ContextVar"
    if annotation_is_read_only(annotation):
        return None
    if isinstance(value, MUTABLE_DISPLAYS):
        return DISPLAY_NAMES.get(type(value), "comprehension")
    if name in MUTABLE_CALLS:
        return f"{name}()"
    return None


def module_level_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements run at import: into if/try/with/for blocks, not into defs or classes."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.If) and is_type_checking(stmt.test):
            yield from module_level_statements(stmt.orelse)
        elif isinstance(stmt, ast.If | ast.For | ast.AsyncFor | ast.While):
            yield from module_level_statements(stmt.body)
            yield from module_level_statements(stmt.orelse)
        elif isinstance(stmt, ast.With | ast.AsyncWith):
            yield from module_level_statements(stmt.body)
        elif isinstance(stmt, TRY_NODES):
            tried = cast(ast.Try, stmt)  # ast.TryStar (3.11's except*) has the same fields
            for block in (tried.body, tried.orelse, tried.finalbody):
                yield from module_level_statements(block)
            for handler in tried.handlers:
                yield from module_level_statements(handler.body)


def module_states(module: Module) -> list[State]:
    """The module's mutable globals, ContextVars and globals functions rebind."""
    lines = module.source.splitlines()
    comments = comments_by_line(module.source)
    states: dict[str, State] = {}

    def note(name: str, kind: str, line: int) -> None:
        if name.startswith("__") and name.endswith("__"):  # __all__ and kin: declarations
            return
        state = states.setdefault(name, State(module.path, name))
        state.kinds.append(kind)
        state.lines.append(line)
        state.reason = state.reason or reason_at(line, lines, comments)

    assigned: dict[str, int] = {}
    for stmt in module_level_statements(module.tree.body):
        if isinstance(stmt, ast.Assign):
            kind = state_kind(stmt.value, None)
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, stmt.lineno)
                    if kind:
                        note(target.id, kind, stmt.lineno)
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            assigned.setdefault(stmt.target.id, stmt.lineno)
            kind = state_kind(stmt.value, stmt.annotation)
            if kind:
                note(stmt.target.id, kind, stmt.lineno)

    for statement, function in global_statements(module.tree):
        for name in statement.names:
            note(name, f"rebound by {function}()", statement.lineno)
            if name in assigned and not states[name].reason:
                states[name].reason = reason_at(assigned[name], lines, comments)
    return sorted(states.values(), key=lambda state: state.lines[0])


# -- the report ------------------------------------------------------------------------


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help=f"the directory holding {PACKAGE}/ (default: this repository)",
    )
    parser.add_argument("--max-lines", type=int, default=MAX_LINES)
    args = parser.parse_args(argv)
    root: Path = args.root
    max_lines: int = args.max_lines

    if not (root / PACKAGE).is_dir():
        print(f"no {PACKAGE}/ under {root}", file=sys.stderr)
        return 2
    try:
        modules = load_modules(root)
    except SyntaxError as error:
        print(f"cannot parse {error.filename}:{error.lineno}: {error.msg}", file=sys.stderr)
        return 2
    failures: list[str] = []

    # 1. module sizes
    production = sorted(
        (m for m in modules.values() if m.production), key=lambda m: (-m.lines, m.path)
    )
    over = [m for m in production if m.lines > max_lines]
    print(f"module sizes (lines; production modules: {PACKAGE}/ without testing/ and demo/):")
    for m in production[: max(SHOWN_LARGEST, len(over))]:
        flag = f"  OVER {max_lines}" if m.lines > max_lines else ""
        print(f"  {m.lines:5d}  {m.path}{flag}")
    for sub in NOT_PRODUCTION:
        inside = [m for m in modules.values() if m.path.startswith(f"{PACKAGE}/{sub}/")]
        if inside:
            top = max(inside, key=lambda m: m.lines)
            print(f"  largest of {PACKAGE}/{sub}/ (not gated): {top.lines} lines ({top.path})")
    if over:
        failures.append(f"{plural(len(over), 'production module')} over {max_lines} lines")

    # 2. import cycles
    edges = import_edges(modules)
    cycles = find_cycles(modules, edges)
    print(f"import cycles: {len(cycles)}")
    for number, component in enumerate(cycles, 1):
        loop = " -> ".join(shortest_loop(component, edges))
        size = f" (a component of {len(component)} modules)" if len(component) > 2 else ""
        print(f"  cycle {number}: {loop}{size}")
        members = set(component)
        for edge in edges:
            if edge.source in members and edge.target in members:
                where = " (in a function)" if edge.lazy else ""
                print(f"    {modules[edge.source].path}:{edge.line} imports {edge.target}{where}")
    if cycles:
        failures.append(plural(len(cycles), "import cycle"))

    # 3. module-level mutable state and ContextVars
    states = [
        state
        for module in modules.values()
        if module.production and module.path != STATE_MODULE
        for state in module_states(module)
    ]
    mutable = [s for s in states if not s.is_context_var]
    context_vars = [s for s in states if s.is_context_var]
    for title, group in (
        ("module-level mutable state", mutable),
        ("ContextVars outside the state module", context_vars),
    ):
        named = sum(1 for s in group if s.reason)
        print(f"{title}: {len(group)} ({named} named with a reason)")
        for s in group:
            kinds = ", ".join(dict.fromkeys(s.kinds))
            print(f"  {s.path}:{s.lines[0]} {s.name} ({kinds}) — {s.reason or 'NO REASON'}")
    unexplained = sum(1 for s in states if not s.reason)
    if unexplained:
        failures.append(f"{unexplained} module-level state/ContextVar without a reason")

    # the summary
    largest = production[0] if production else None
    size = f"{largest.lines} lines ({largest.path})" if largest else "none"
    reasons = (
        "each named with its reason"
        if not unexplained
        else f"{unexplained} without a `# module state:` reason"
    )
    verdict = "ok" if not failures else f"FAILED ({'; '.join(failures)})"
    print(
        f"structure: largest production module {size}, {plural(len(cycles), 'import cycle')}, "
        f"{plural(len(mutable), 'module-level state')} and "
        f"{plural(len(context_vars), 'ContextVar')}, {reasons}: {verdict}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
