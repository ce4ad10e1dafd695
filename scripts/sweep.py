#!/usr/bin/env python3
"""Check every declared upstream touchpoint against the source of every supported release.

    python3 scripts/sweep.py                          # every livekit-agents release in range
    python3 scripts/sweep.py --releases 1.4.6 1.8.9   # some releases
    python3 scripts/sweep.py --cache DIR --jobs 2 --verbose --where

Lists the livekit-agents releases from the lower bound of the supported range on (the
range in ``livekit_ext/_compat.py``, else 1.4.6; no upper bound) with ``pip index
versions``, downloads the wheels of livekit-agents, livekit-plugins-openai and
livekit-plugins-google of each release into the cache (``.sweep-cache/``; sdist when there
is no wheel; the newest plugin release not newer than the release when the plugin has none
of that version), and resolves every touchpoint the features declare (``Feature.touchpoints``) in the
source read straight from the archives with ``ast``: nothing is installed or imported, so
a release we never installed is checked as well as the tested ones.

Prints a release x feature table, the required touchpoints each incomplete release misses,
and last ``touchpoints: N/M releases complete``. Exit status 0 when every release is
complete, 1 otherwise (2 when a download or the index fails).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import zipfile
from collections import defaultdict
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AGENTS = "livekit-agents"
PLUGINS = ("livekit-plugins-openai", "livekit-plugins-google")
DISTS = (AGENTS, *PLUGINS)
DEFAULT_LOWER_BOUND = "1.4.6"
ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".zip")
OBJECT_MEMBERS = frozenset(dir(object))
TRIVIAL_BASES = frozenset({"object", "ABC", "Generic", "Protocol", "NamedTuple", "TypedDict"})

Version = tuple[int, ...]


# -- the touchpoint table and the range ------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One touchpoint as plain data (picklable for the worker processes)."""

    feature: str
    paths: tuple[str, ...]
    kind: str
    optional: bool


def load_touchpoints(root: Path = ROOT) -> list[Check]:
    """Every feature's declared touchpoints (``Feature.touchpoints``), read from the package
    at ``root``: importing livekit_ext imports no livekit module, so no release is needed."""
    env = {**os.environ, "LIVEKIT_EXT_DISABLE": "1", "PYTHONPATH": str(root)}
    program = (
        "import json, livekit_ext\n"
        "from livekit_ext._engine import ENGINE\n"
        "print(json.dumps([[f.name, list(t.paths), t.kind, t.optional]\n"
        "    for f in ENGINE.features() for t in f.touchpoints]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", program], env=env, check=True, capture_output=True, text=True
    ).stdout
    return [Check(f, tuple(paths), kind, bool(opt)) for f, paths, kind, opt in json.loads(out)]


def lower_bound(compat: Path) -> str:
    """The oldest supported release as ``_compat.py`` declares it, else 1.4.6.

    A module constant ``MIN_RELEASE`` (or ``MIN_...``) holding a version, else the ``>=``
    of a ``livekit-agents>=...`` specifier string. Read with ``ast``, not imported:
    ``_compat`` lives in the package, whose ``__init__`` may import livekit.
    """
    if not compat.exists():
        return DEFAULT_LOWER_BOUND
    tree = ast.parse(compat.read_text())
    specifiers = []
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        value = getattr(node, "value", None)
        if not (isinstance(target, ast.Name) and isinstance(value, ast.Constant)):
            continue
        text = str(value.value)
        if target.id.startswith("MIN") and parse_version(text):
            return text
        match = re.search(r"livekit-agents\s*>=\s*([0-9][0-9.]*[0-9])", text)
        if match:
            specifiers.append(match.group(1))
    return specifiers[0] if specifiers else DEFAULT_LOWER_BOUND


def parse_version(text: str) -> Version | None:
    """A final release as a tuple of ints; None for pre-releases and anything else."""
    if not re.fullmatch(r"\d+(\.\d+)*", text.strip()):
        return None
    return tuple(int(part) for part in text.strip().split("."))


def pip_command() -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check"]


def index_versions(dist: str) -> list[str]:
    """Every final release of ``dist`` the index has (pip is the only client we use)."""
    proc = subprocess.run(
        [*pip_command(), "index", "versions", dist], capture_output=True, text=True
    )
    match = re.search(r"^Available versions:\s*(.+)$", proc.stdout, re.MULTILINE)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"pip index versions {dist} failed:\n{proc.stderr.strip()}")
    return [v.strip() for v in match.group(1).split(",") if parse_version(v.strip())]


def version_key(text: str) -> Version:
    return parse_version(text) or ()


def newest_not_after(versions: list[str], release: str) -> str | None:
    bound = parse_version(release)
    assert bound is not None
    candidates = [v for v in versions if parse_version(v) and version_key(v) <= bound]
    return max(candidates, key=version_key) if candidates else None


# -- downloads -------------------------------------------------------------------------------


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def archive_key(filename: str) -> str | None:
    """``name-version`` of a wheel or sdist file name, the name normalized; None otherwise."""
    if filename.endswith(".whl"):
        name, version = filename.split("-")[:2]
    else:
        suffix = next((s for s in ARCHIVE_SUFFIXES if filename.endswith(s)), None)
        if suffix is None:
            return None
        name, _, version = filename[: -len(suffix)].rpartition("-")
    return f"{_normalized(name)}-{version}"


def cached_archive(cache: Path, dist: str, version: str) -> Path | None:
    """The wheel (preferred) or sdist of ``dist==version`` already in the cache."""
    key = f"{_normalized(dist)}-{version}"
    found = sorted(p for p in cache.glob("*") if archive_key(p.name) == key)
    wheels = [p for p in found if p.name.endswith(".whl")]
    return (wheels or found)[0] if found else None


def _pip_download(requirements: list[str], dest: Path, binary: str) -> tuple[bool, str]:
    proc = subprocess.run(
        [*pip_command(), "download", "-q", "--no-deps", binary, *requirements, "-d", str(dest)],
        capture_output=True,
        text=True,
    )
    errors = [line for line in proc.stderr.splitlines() if "is ignored" not in line]
    return proc.returncode == 0, "\n".join(errors)


def download_version(dists: list[str], version: str, cache: Path) -> list[str]:
    """Fetch ``dists`` at ``version``: one pip call for all, then one per dist if that fails.

    Returns what went wrong (empty when all are in the cache now).
    """
    ok, _ = _pip_download([f"{d}=={version}" for d in dists], cache, "--only-binary=:all:")
    if ok:
        return []
    problems = []
    for dist in dists:
        ok, error = _pip_download([f"{dist}=={version}"], cache, "--only-binary=:all:")
        if not ok:
            ok, error = _pip_download([f"{dist}=={version}"], cache, f"--no-binary={dist}")
            if ok:
                print(f"note: {dist} {version} has no wheel; using its sdist", flush=True)
        if not ok:
            problems.append(f"{dist}=={version}: {error or 'pip download failed'}")
    return problems


# -- reading source out of an archive --------------------------------------------------------


class ArchiveFiles(Mapping[str, str]):
    """The ``.py`` files of wheels/sdists by path inside the package tree, read lazily."""

    def __init__(self, archives: list[Path]) -> None:
        self._zipped: dict[str, tuple[zipfile.ZipFile, str]] = {}
        self._read: dict[str, bytes] = {}  # sdists (rare): read whole, they are small
        for archive in archives:
            if archive.name.endswith(".tar.gz"):
                with tarfile.open(archive) as tar:
                    for member in tar.getmembers():
                        extracted = tar.extractfile(member) if member.isfile() else None
                        if extracted and member.name.endswith(".py"):
                            self._read.setdefault(_in_tree(member.name, True), extracted.read())
                continue
            try:
                zipped = zipfile.ZipFile(archive)  # stays open: members are read on demand
            except zipfile.BadZipFile as error:
                raise RuntimeError(f"{archive}: {error}; delete it and run again") from error
            sdist = not archive.name.endswith(".whl")
            for name in zipped.namelist():
                if name.endswith(".py"):
                    self._zipped.setdefault(_in_tree(name, sdist), (zipped, name))

    def __getitem__(self, path: str) -> str:
        if path in self._read:
            data = self._read[path]
        else:
            zipped, member = self._zipped[path]
            data = zipped.read(member)
        return data.decode("utf-8", errors="replace")

    def __iter__(self) -> Iterator[str]:
        return iter({**self._zipped, **self._read})

    def __len__(self) -> int:
        return len({**self._zipped, **self._read})


def _in_tree(name: str, sdist: bool) -> str:
    """A member's path in the package tree: an sdist's ``name-version/`` and ``src/`` go."""
    return (name.split("/", 1)[-1] if sdist else name).removeprefix("src/")


# -- the resolver ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Symbol:
    """What a name resolves to: a module, a class, or a leaf (def, value, external name)."""

    kind: str  # "module" | "class" | "leaf" | "external"
    module: str
    node: ast.AST | None = field(default=None, compare=False, hash=False)
    lineno: int = 0
    name: str = ""
    note: str = ""

    def where(self, resolver: Resolver) -> str:
        if self.kind == "external":
            return f"{self.module}.{self.name} (outside the wheels)"
        place = f"{resolver.module_file(self.module) or self.module}:{self.lineno}"
        return f"{place} ({self.note})" if self.note else place


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _target_names(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _target_names(element)
    elif isinstance(target, ast.Starred):
        yield from _target_names(target.value)


Bindings = dict[str, list[ast.stmt]]


def collect_bindings(body: list[ast.stmt], bare_annotations: bool) -> Bindings:
    """Every name a module or class body binds at run time, with the statements binding it.

    Follows ``if``/``try``/``with`` blocks; skips ``if TYPE_CHECKING:`` bodies (not run).
    ``bare_annotations``: count ``x: T`` without a value (a dataclass field on instances).
    """
    out: Bindings = defaultdict(list)

    def visit(statements: list[ast.stmt]) -> None:
        for stmt in statements:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out[stmt.name].append(stmt)
            elif isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    for name in _target_names(target):
                        out[name].append(stmt)
            elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
                has_value = not isinstance(stmt, ast.AnnAssign) or stmt.value is not None
                if isinstance(stmt.target, ast.Name) and (has_value or bare_annotations):
                    out[stmt.target.id].append(stmt)
            elif isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    out[alias.asname or alias.name.split(".")[0]].append(stmt)
            elif isinstance(stmt, ast.ImportFrom):
                for alias in stmt.names:
                    out[alias.asname or alias.name].append(stmt)
            elif isinstance(stmt, ast.If):
                if not _is_type_checking(stmt.test):
                    visit(stmt.body)
                visit(stmt.orelse)
            elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
                visit(stmt.body)  # type: ignore[attr-defined]
                for handler in stmt.handlers:  # type: ignore[attr-defined]
                    visit(handler.body)
                visit(stmt.orelse)  # type: ignore[attr-defined]
                visit(stmt.finalbody)  # type: ignore[attr-defined]
            elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                visit(stmt.body)

    visit(body)
    return out


class Resolver:
    """Resolves ``module:Qual.name`` in a tree of source files, never importing them.

    ``files`` maps paths inside the package tree (``livekit/agents/__init__.py``) to source.
    Names are followed through imports and re-exports to their definition and through the
    base classes that are defined in the same tree; a name imported from outside the tree
    exists but cannot be looked into.
    """

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = files
        self._dirs = {
            "/".join(parts[:n])
            for parts in (path.split("/") for path in files)
            for n in range(1, len(parts))
        }
        self._asts: dict[str, ast.Module | None] = {}
        self._bindings: dict[str, Bindings] = {}
        self._class_bindings: dict[tuple[str, int], Bindings] = {}
        self._instance_attrs: dict[tuple[str, int], dict[str, int]] = {}

    # modules

    def module_file(self, module: str) -> str | None:
        base = module.replace(".", "/")
        for candidate in (f"{base}/__init__.py", f"{base}.py"):
            if candidate in self.files:
                return candidate
        return None

    def module_exists(self, module: str) -> bool:
        """A module file, or a namespace package directory (``livekit``)."""
        return self.module_file(module) is not None or module.replace(".", "/") in self._dirs

    def is_package(self, module: str) -> bool:
        file = self.module_file(module)
        return file is None or file.endswith("/__init__.py")

    def module_ast(self, module: str) -> ast.Module | None:
        if module not in self._asts:
            file = self.module_file(module)
            self._asts[module] = ast.parse(self.files[file], file) if file else None
        return self._asts[module]

    def module_bindings(self, module: str) -> Bindings:
        if module not in self._bindings:
            tree = self.module_ast(module)
            self._bindings[module] = collect_bindings(tree.body, False) if tree else {}
        return self._bindings[module]

    def absolute(self, module: str, level: int, target: str | None) -> str:
        """The absolute module of ``from <level dots><target> import ...`` in ``module``."""
        if level == 0:
            return target or ""
        package = module if self.is_package(module) else module.rpartition(".")[0]
        for _ in range(level - 1):
            package = package.rpartition(".")[0]
        return f"{package}.{target}" if target else package

    # names

    def lookup(self, module: str, name: str, seen: frozenset[tuple[str, str]]) -> list[Symbol]:
        """What ``module.name`` is: its bindings, star imports, else a submodule."""
        key = (module, name)
        if key in seen:
            return []
        seen = seen | {key}
        found: list[Symbol] = []
        for stmt in self.module_bindings(module).get(name, []):
            found += self._binding(module, name, stmt, seen)
        if not found:
            tree = self.module_ast(module)
            for stmt in tree.body if tree else []:
                if isinstance(stmt, ast.ImportFrom) and any(a.name == "*" for a in stmt.names):
                    source = self.absolute(module, stmt.level, stmt.module)
                    if self.module_exists(source):
                        found += self.lookup(source, name, seen)
        if not found and self.module_exists(f"{module}.{name}"):
            found.append(Symbol("module", f"{module}.{name}", name=name))
        return found

    def _binding(
        self, module: str, name: str, stmt: ast.stmt, seen: frozenset[tuple[str, str]]
    ) -> list[Symbol]:
        if isinstance(stmt, ast.ClassDef):
            return [Symbol("class", module, stmt, stmt.lineno, name)]
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname == name:
                    return [Symbol("module", alias.name, stmt, stmt.lineno, name)]
                if alias.asname is None and alias.name.split(".")[0] == name:
                    return [Symbol("module", name, stmt, stmt.lineno, name)]
            return []
        if isinstance(stmt, ast.ImportFrom):
            source = self.absolute(module, stmt.level, stmt.module)
            original = next(a.name for a in stmt.names if (a.asname or a.name) == name)
            if not self.module_exists(source):
                return [Symbol("external", source, stmt, stmt.lineno, original)]
            return self.lookup(source, original, seen)
        value = getattr(stmt, "value", None)
        if isinstance(stmt, ast.Assign) and isinstance(value, (ast.Name, ast.Attribute)):
            aliased = self.expression(module, value, seen)  # X = Y: an alias, look through it
            if aliased:
                return aliased
        return [Symbol("leaf", module, stmt, stmt.lineno, name)]

    def expression(
        self, module: str, expr: ast.expr, seen: frozenset[tuple[str, str]]
    ) -> list[Symbol]:
        """What a name or dotted expression (a base class, an alias) in ``module`` is."""
        if isinstance(expr, ast.Name):
            return self.lookup(module, expr.id, seen)
        if isinstance(expr, ast.Attribute):
            return [
                member
                for owner in self.expression(module, expr.value, seen)
                for member in self.member(owner, expr.attr, seen)
            ]
        if isinstance(expr, ast.Subscript):  # Generic[T], Base[T]
            return self.expression(module, expr.value, seen)
        return []

    def member(
        self, owner: Symbol, name: str, seen: frozenset[tuple[str, str]] = frozenset()
    ) -> list[Symbol]:
        if owner.kind == "module":
            return self.lookup(owner.module, name, seen)
        if owner.kind == "class":
            return self.class_member(owner, name, seen)
        return []

    # classes

    def _class_key(self, cls: Symbol) -> tuple[str, int]:
        return (cls.module, cls.lineno)

    def class_bindings(self, cls: Symbol) -> Bindings:
        key = self._class_key(cls)
        if key not in self._class_bindings:
            assert isinstance(cls.node, ast.ClassDef)
            self._class_bindings[key] = collect_bindings(cls.node.body, True)
        return self._class_bindings[key]

    def bases(self, cls: Symbol, seen: frozenset[tuple[str, str]]) -> list[Symbol]:
        """The base classes of ``cls`` that are defined in the tree, in MRO-ish order."""
        assert isinstance(cls.node, ast.ClassDef)
        return [
            base
            for expr in cls.node.bases
            for base in self.expression(cls.module, expr, seen)
            if base.kind == "class"
        ]

    def mro(self, cls: Symbol) -> list[Symbol]:
        """``cls`` and every base resolvable in the tree (depth-first, each once)."""
        order: list[Symbol] = []
        stack = [cls]
        while stack:
            current = stack.pop(0)
            if any(self._class_key(c) == self._class_key(current) for c in order):
                continue
            order.append(current)
            stack.extend(self.bases(current, frozenset()))
        return order

    def class_member(
        self, cls: Symbol, name: str, seen: frozenset[tuple[str, str]] = frozenset()
    ) -> list[Symbol]:
        """A class attribute (def, property, assignment, nested class), inherited or own.

        Bare annotations (``x: int``) are not class attributes; see ``instance_attr``.
        """
        for klass in self.mro(cls):
            found: list[Symbol] = []
            for stmt in self.class_bindings(klass).get(name, []):
                if isinstance(stmt, ast.AnnAssign) and stmt.value is None:
                    continue
                if isinstance(stmt, ast.ClassDef):
                    found.append(Symbol("class", klass.module, stmt, stmt.lineno, name))
                else:
                    found += self._binding(klass.module, name, stmt, seen)
            if found:
                return found
        if name in OBJECT_MEMBERS:  # every class has object's, e.g. a pydantic model's __init__
            return [Symbol("leaf", cls.module, None, cls.lineno, name, note="from object")]
        return []

    def instance_attrs(self, cls: Symbol) -> dict[str, int]:
        """Names the class's own methods assign on ``self`` (``self.x = ...``), with a line."""
        key = self._class_key(cls)
        if key not in self._instance_attrs:
            assert isinstance(cls.node, ast.ClassDef)
            attrs: dict[str, int] = {}
            for stmts in self.class_bindings(cls).values():
                for stmt in stmts:
                    if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        continue
                    args = stmt.args.posonlyargs + stmt.args.args
                    if not args:
                        continue
                    this = args[0].arg
                    for node in ast.walk(stmt):
                        if (
                            isinstance(node, ast.Attribute)
                            and isinstance(node.ctx, ast.Store)
                            and isinstance(node.value, ast.Name)
                            and node.value.id == this
                        ):
                            attrs.setdefault(node.attr, node.lineno)
            self._instance_attrs[key] = attrs
        return self._instance_attrs[key]

    def instance_attr(self, cls: Symbol, name: str) -> Symbol | None:
        """Where instances of ``cls`` get attribute ``name``: ``self.name = ...`` in a method
        of the class or a base, or a class-level binding or annotation (a field)."""
        for klass in self.mro(cls):
            if name in self.instance_attrs(klass):
                return Symbol("leaf", klass.module, None, self.instance_attrs(klass)[name], name)
            bound = self.class_bindings(klass).get(name)
            if bound:
                return Symbol("leaf", klass.module, bound[0], bound[0].lineno, name)
        return None

    # touchpoints

    def find(self, path: str, kind: str) -> Symbol | None:
        """Where ``module:Qual.name`` is defined in the tree, or None if it is not."""
        return self.locate(path, kind)[0]

    def locate(self, path: str, kind: str) -> tuple[Symbol | None, str]:
        """``find``, and when nothing is found, the first step that failed and why."""
        module, _, qualname = path.partition(":")
        if not self.module_exists(module):
            return None, f"no module {module}"
        parts = qualname.split(".") if qualname else []
        attr = parts.pop() if kind == "attr" and len(parts) > 1 else None
        symbols = [Symbol("module", module, name=module)]
        for part in parts:
            found = [member for owner in symbols for member in self.member(owner, part)]
            if not found:
                return None, self._no_member(symbols, part, "")
            symbols = found
        if attr is None:
            return symbols[0], ""
        for owner in symbols:
            if owner.kind == "class":
                instance = self.instance_attr(owner, attr)
                if instance:
                    return instance, ""
        return None, self._no_member(symbols, attr, "instance attribute ")

    def _no_member(self, owners: list[Symbol], name: str, what: str) -> str:
        owner = owners[0]
        if owner.kind not in ("module", "class"):
            return f"{owner.module}:{owner.name} is not a class or module"
        text = f"{owner.kind} {owner.module}:{owner.name} has no {what}{name}".replace(
            f"module {owner.module}:{owner.module}", f"module {owner.module}"
        )
        outside = self.bases_outside(owner) if owner.kind == "class" else []
        return text + (f" (bases outside the wheels: {', '.join(outside)})" if outside else "")

    def bases_outside(self, cls: Symbol) -> list[str]:
        """Base classes of ``cls`` and its bases not defined in the tree: an unseen member
        may come from them (typing's and abc's bases excepted)."""
        outside = []
        for klass in self.mro(cls):
            assert isinstance(klass.node, ast.ClassDef)
            for expr in klass.node.bases:
                text = ast.unparse(expr)
                if text.split("[")[0].rsplit(".", 1)[-1] in TRIVIAL_BASES:
                    continue
                if not any(
                    b.kind == "class" for b in self.expression(klass.module, expr, frozenset())
                ):
                    outside.append(text)
        return list(dict.fromkeys(outside))


# -- one release -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One touchpoint in one release: where each path is defined (None: not), or why not."""

    locations: tuple[str | None, ...]
    reasons: tuple[str, ...]

    @property
    def holds(self) -> bool:
        return any(location is not None for location in self.locations)


def check_release(archives: list[Path], checks: list[Check]) -> list[Outcome]:
    """Every check against the source in ``archives`` (run in a worker process)."""
    resolver = Resolver(ArchiveFiles(archives))
    outcomes = []
    for check in checks:
        locations: list[str | None] = []
        reasons = []
        for path in check.paths:
            try:
                symbol, reason = resolver.locate(path, check.kind)
            except SyntaxError as error:
                raise RuntimeError(f"{path}: cannot parse {error.filename}: {error}") from error
            locations.append(symbol.where(resolver) if symbol else None)
            reasons.append(reason)
        outcomes.append(Outcome(tuple(locations), tuple(reasons)))
    return outcomes


def cell(checks: list[Check], outcomes: list[Outcome], feature: str) -> str:
    """``ok``, ``missing N``, either with ``(M opt)`` for optional misses."""
    required = optional = 0
    for check, outcome in zip(checks, outcomes, strict=True):
        if check.feature == feature and not outcome.holds:
            if check.optional:
                optional += 1
            else:
                required += 1
    text = f"missing {required}" if required else "ok"
    if optional:
        text += f" ({optional} opt)"
    return text


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print(
            "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        )
        if n == 0:
            print("  ".join("-" * width for width in widths))


def spans(selected: set[str], releases: list[str]) -> str:
    """``selected`` as runs of consecutive ``releases``: ``1.4.6..1.5.1, 1.6.5``."""
    runs: list[list[int]] = []
    for i, release in enumerate(releases):
        if release in selected:
            if runs and runs[-1][1] == i - 1:
                runs[-1][1] = i
            else:
                runs.append([i, i])
    return ", ".join(releases[a] if a == b else f"{releases[a]}..{releases[b]}" for a, b in runs)


def report(
    releases: list[str],
    checks: list[Check],
    results: dict[str, list[Outcome]],
    verbose: bool,
    where: bool,
) -> int:
    """Print each release's required misses (and more on request); return how many
    releases are complete."""
    complete = 0
    for release in releases:
        pairs = list(zip(checks, results[release], strict=True))
        misses = [(c, o) for c, o in pairs if not o.holds and not c.optional]
        complete += not misses
        if misses:
            print(f"\n{release} misses:")
            for check, outcome in misses:
                print(f"  {check.feature} {check.kind}: {' | '.join(check.paths)}")
                for reason in dict.fromkeys(outcome.reasons):
                    print(f"      {reason}")
        if where:
            print(f"\n{release} resolved:")
            for check, outcome in pairs:
                for path, location in zip(check.paths, outcome.locations, strict=True):
                    print(f"  {path} -> {location or '-'}")
    if verbose:
        print("\noptional touchpoints, where they are missing:")
        for n, check in enumerate(checks):
            absent = {r for r in releases if check.optional and not results[r][n].holds}
            if absent:
                newest = results[max(absent, key=version_key)][n]
                print(f"  {check.feature} {check.kind}: {' | '.join(check.paths)}")
                print(f"      missing in {spans(absent, releases)} ({len(absent)} releases)")
                for reason in dict.fromkeys(newest.reasons):
                    print(f"      {reason}")
    return complete


# -- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--releases", nargs="+", help="only these livekit-agents releases")
    parser.add_argument("--cache", default=str(ROOT / ".sweep-cache"), help="archive cache")
    parser.add_argument("--jobs", type=int, default=4, help="parallel pip / checker processes")
    parser.add_argument(
        "--package-root", default=str(ROOT), help="the directory holding livekit_ext/ to read"
    )
    parser.add_argument("--verbose", action="store_true", help="where optional ones miss")
    parser.add_argument("--where", action="store_true", help="print where each path resolved")
    parser.add_argument(
        "--list", action="store_true", help="print every declared touchpoint, by feature, and exit"
    )
    args = parser.parse_args()
    if args.list:
        for check in load_touchpoints(Path(args.package_root)):
            optional = " (optional)" if check.optional else ""
            print(f"{check.feature:24} {check.kind:8} {' | '.join(check.paths)}{optional}")
        return 0
    started = time.perf_counter()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    checks = load_touchpoints(Path(args.package_root))
    bound = lower_bound(ROOT / "livekit_ext" / "_compat.py")

    try:
        with ThreadPoolExecutor(max_workers=len(DISTS)) as pool:
            available = dict(zip(DISTS, pool.map(index_versions, DISTS), strict=True))
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 2
    low = parse_version(bound)
    assert low is not None
    releases = sorted((v for v in available[AGENTS] if version_key(v) >= low), key=version_key)
    if args.releases:
        unknown = sorted(set(args.releases) - set(available[AGENTS]))
        if unknown:
            print(f"not on the index: livekit-agents {', '.join(unknown)}", file=sys.stderr)
            return 2
        releases = sorted(set(args.releases), key=version_key)
    print(f"livekit-agents >= {bound}: {len(releases)} releases; {len(checks)} touchpoints")

    # which archive of which dist each release is checked against
    plan: dict[str, dict[str, str]] = {}
    for release in releases:
        plan[release] = {AGENTS: release}
        for plugin in PLUGINS:
            chosen = release if release in available[plugin] else None
            chosen = chosen or newest_not_after(available[plugin], release)
            if chosen is None:
                print(f"{release}: {plugin} has no release <= {release}; checked without it")
                continue
            if chosen != release:
                print(f"{release}: {plugin} has no {release}; using {plugin} {chosen}")
            plan[release][plugin] = chosen
    wanted: dict[str, list[str]] = defaultdict(list)
    for dists in plan.values():
        for dist, version in dists.items():
            if cached_archive(cache, dist, version) is None and dist not in wanted[version]:
                wanted[version].append(dist)
    wanted = {version: dists for version, dists in wanted.items() if dists}
    if wanted:
        fetched = sum(len(d) for d in wanted.values())
        print(f"downloading {fetched} archives into {cache} ({args.jobs} pip processes)")
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            problems = [
                problem
                for found in pool.map(
                    lambda item: download_version(item[1], item[0], cache), wanted.items()
                )
                for problem in found
            ]
        if problems:
            print("downloads failed:\n" + "\n".join(problems), file=sys.stderr)
            return 2
    downloaded = time.perf_counter()

    archives = {
        release: [a for d, v in dists.items() if (a := cached_archive(cache, d, v))]
        for release, dists in plan.items()
    }
    workers = max(1, min(args.jobs, os.cpu_count() or 1, len(releases)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {r: pool.submit(check_release, archives[r], checks) for r in releases}
        results = {release: future.result() for release, future in futures.items()}

    features = list(dict.fromkeys(check.feature for check in checks))
    rows = [["release", *features]]
    rows += [[r, *(cell(checks, results[r], f) for f in features)] for r in releases]
    print()
    print_table(rows)

    complete = report(releases, checks, results, args.verbose, args.where)
    finished = time.perf_counter()
    print(
        f"\nelapsed: {finished - started:.1f} s (downloads {downloaded - started:.1f} s, "
        f"checks {finished - downloaded:.1f} s)"
    )
    print(f"touchpoints: {complete}/{len(releases)} releases complete")
    return 0 if complete == len(releases) else 1


if __name__ == "__main__":
    sys.exit(main())
