"""scripts/check_structure.py on small synthetic packages (the real one is being reshaped).

Each test writes a ``livekit_ext/`` to a temporary root and runs the script on it as CI
does, so a rule that stops catching what it should fails here.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_structure.py"


def check(root: Path, files: dict[str, str], *options: str) -> tuple[int, str]:
    """Write ``files`` (paths under livekit_ext/) below ``root``; run the check on it."""
    package = root / "livekit_ext"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").touch()
    for path, source in files.items():
        file = package / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert not done.stderr, done.stderr
    return done.returncode, done.stdout


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


# -- import cycles ---------------------------------------------------------------------


def test_a_two_module_cycle_is_found(tmp_path: Path) -> None:
    status, output = check(
        tmp_path,
        {
            "a.py": "from livekit_ext import b\n",
            "b.py": "from .a import something, other\n",
        },
    )
    assert status == 1, output
    assert "import cycles: 1" in output
    assert "livekit_ext.a -> livekit_ext.b -> livekit_ext.a" in output
    assert "livekit_ext/b.py:1 imports livekit_ext.a" in output
    assert output.count("imports livekit_ext.") == 2  # one line an edge
    assert "FAILED (1 import cycle)" in last_line(output)


def test_a_lazy_import_inside_a_function_still_closes_a_cycle(tmp_path: Path) -> None:
    status, output = check(
        tmp_path,
        {
            "log.py": "from ._track import Track\n",
            "_track.py": """
                class Track:
                    def flush(self) -> None:
                        from livekit_ext.log import record

                        record(self)
            """,
        },
    )
    assert status == 1, output
    assert "import cycles: 1" in output
    assert "livekit_ext/_track.py:3 imports livekit_ext.log (in a function)" in output


def test_a_self_import_is_a_cycle(tmp_path: Path) -> None:
    status, output = check(tmp_path, {"a.py": "def f() -> None:\n    import livekit_ext.a\n"})
    assert status == 1, output
    assert "import cycles: 1" in output


def test_an_import_under_type_checking_is_no_cycle(tmp_path: Path) -> None:
    status, output = check(
        tmp_path,
        {
            "a.py": "from .b import B\n",
            "b.py": """
                from typing import TYPE_CHECKING
                import typing

                if TYPE_CHECKING:
                    from .a import A
                if typing.TYPE_CHECKING:
                    import livekit_ext.a
                class B: ...
            """,
        },
    )
    assert status == 0, output
    assert "import cycles: 0" in output
    assert last_line(output).endswith(": ok")


def test_the_else_of_type_checking_runs_and_can_close_a_cycle(tmp_path: Path) -> None:
    status, output = check(
        tmp_path,
        {
            "a.py": "from .b import B\n",
            "b.py": """
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    pass
                else:
                    from .a import A
            """,
        },
    )
    assert status == 1, output
    assert "import cycles: 1" in output


def test_a_package_importing_its_submodules_is_no_cycle(tmp_path: Path) -> None:
    """The __init__ imports its submodules; they import siblings, relatively or not."""
    status, output = check(
        tmp_path,
        {
            "__init__.py": "from .funnel import publish\nfrom . import funnel\n",
            "funnel/__init__.py": "from .core import publish\nfrom .observers import Observer\n",
            "funnel/core.py": "from livekit_ext.funnel.observers import Observer\n",
            "funnel/observers.py": "from . import _types\nimport livekit_ext.funnel._types\n",
            "funnel/_types.py": "from .. import _leaf\n",
            "_leaf.py": "X = 1\n",
        },
    )
    assert status == 0, output
    assert "import cycles: 0" in output


def test_a_submodule_taking_names_from_its_own_package_is_a_cycle(tmp_path: Path) -> None:
    """``from . import name`` runs the package __init__, which imports this submodule."""
    status, output = check(
        tmp_path,
        {
            "__init__.py": "from .core import run\nDEFAULT = 1\n",
            "core.py": "from . import DEFAULT\n\ndef run() -> int:\n    return DEFAULT\n",
        },
    )
    assert status == 1, output
    assert "livekit_ext -> livekit_ext.core -> livekit_ext" in output


def test_importing_a_directory_without_init_is_no_import_of_the_package(
    tmp_path: Path,
) -> None:
    """``from . import ns`` where ns/ has no __init__.py loads a namespace package."""
    status, output = check(
        tmp_path,
        {
            "__init__.py": "from .feature import run\n",
            "feature.py": "from . import ns\nfrom .ns import fields\n\ndef run() -> None: ...\n",
            "ns/fields.py": "X = 1\n",
        },
    )
    assert status == 0, output
    assert "import cycles: 0" in output


# -- module sizes ----------------------------------------------------------------------


def test_an_oversized_production_module_fails(tmp_path: Path) -> None:
    files = {
        "big.py": "x = 1\n" * 401,
        "fits.py": "x = 1\n" * 400,
        "testing/huge.py": "x = 1\n" * 900,  # reported, not gated
        "demo/huge.py": "x = 1\n" * 800,
    }
    status, output = check(tmp_path, files)
    assert status == 1, output
    assert "401  livekit_ext/big.py  OVER 400" in output
    assert "400  livekit_ext/fits.py\n" in output
    assert "largest of livekit_ext/testing/ (not gated): 900 lines" in output
    assert "largest of livekit_ext/demo/ (not gated): 800 lines" in output
    assert "largest production module 401 lines (livekit_ext/big.py)" in last_line(output)
    assert "FAILED (1 production module over 400 lines)" in last_line(output)

    status, output = check(tmp_path, {}, "--max-lines", "401")
    assert status == 0, output


def test_the_five_largest_production_modules_are_listed(tmp_path: Path) -> None:
    files = {f"m{n}.py": "x = 1\n" * (10 * n) for n in range(1, 8)}
    status, output = check(tmp_path, files)
    assert status == 0, output
    listed = [line.split()[-1] for line in output.splitlines() if line.startswith("    ")]
    assert listed[:5] == [f"livekit_ext/m{n}.py" for n in (7, 6, 5, 4, 3)]
    assert "livekit_ext/m2.py" not in output


# -- module-level state ----------------------------------------------------------------

UNEXPLAINED = """
    import contextvars
    import weakref
    from contextvars import ContextVar

    _by_room = dict()
    _seen = {}
    _sessions: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
    _turn: ContextVar[int | None] = ContextVar("turn", default=None)
    _hook = contextvars.ContextVar("hook")
"""


def test_module_state_without_a_reason_is_reported_and_fails(tmp_path: Path) -> None:
    status, output = check(tmp_path, {"feature.py": UNEXPLAINED})
    assert status == 1, output
    assert "module-level mutable state: 3 (0 named with a reason)" in output
    assert "ContextVars outside the state module: 2 (0 named with a reason)" in output
    for line, name in ((5, "_by_room"), (6, "_seen"), (7, "_sessions"), (8, "_turn"), (9, "_hook")):
        assert f"livekit_ext/feature.py:{line} {name} (" in output
    assert output.count("— NO REASON") == 5
    assert "5 module-level state/ContextVar without a reason" in last_line(output)


def test_module_state_with_its_reason_passes_and_the_reason_is_printed(tmp_path: Path) -> None:
    source = """
        import weakref
        from contextvars import ContextVar

        # module state: the features in effect are process-wide,
        # like the patches
        ACTIVE: set[str] = set()
        _sessions = weakref.WeakKeyDictionary()  # module state: upstream sessions have no slot
        # a note first
        # module state: a wrapper hands the turn to the hook it calls
        _turn: ContextVar[int | None] = ContextVar("turn", default=None)
    """
    status, output = check(tmp_path, {"feature.py": source})
    assert status == 0, output
    assert "module-level mutable state: 2 (2 named with a reason)" in output
    assert "ContextVars outside the state module: 1 (1 named with a reason)" in output
    assert (
        "livekit_ext/feature.py:6 ACTIVE (set()) — the features in effect are process-wide,"
        " like the patches" in output
    )
    assert "_sessions (WeakKeyDictionary()) — upstream sessions have no slot" in output
    assert "_turn (ContextVar) — a wrapper hands the turn to the hook it calls" in output
    assert last_line(output) == (
        "structure: largest production module 10 lines (livekit_ext/feature.py), "
        "0 import cycles, 2 module-level states and 1 ContextVar, "
        "each named with its reason: ok"
    )


def test_a_reason_must_touch_the_assignment(tmp_path: Path) -> None:
    source = "# module state: too far away\n\n_cache = {}\n"
    status, output = check(tmp_path, {"feature.py": source})
    assert status == 1, output
    assert "_cache (dict display) — NO REASON" in output


def test_read_only_tables_are_not_state(tmp_path: Path) -> None:
    source = """
        import typing
        from collections.abc import Mapping, Sequence
        from types import MappingProxyType
        from typing import Final

        __all__ = ["NAMES"]
        NAMES: Final = {"a": 1}
        ORDER: Final[list[str]] = ["a", "b"]
        BY_KIND: Mapping[str, int] = {"a": 1}
        STEPS: Sequence[str] = ["x"]
        KINDS: frozenset[str] = {"a"}
        TYPED: typing.Mapping[str, int] = dict(a=1)
        PROXY = MappingProxyType({"a": 1})
        FROZEN = frozenset({"a"})
        ROW = tuple([1, 2])
    """
    status, output = check(tmp_path, {"tables.py": source})
    assert status == 0, output
    assert "module-level mutable state: 0 (0 named with a reason)" in output


def test_state_inside_functions_and_classes_is_not_module_level(tmp_path: Path) -> None:
    source = """
        class Registry:
            entries: dict[str, int] = {}

        def make() -> dict[str, int]:
            local = {}
            return local
    """
    status, output = check(tmp_path, {"feature.py": source})
    assert status == 0, output


def test_state_under_module_level_blocks_is_found(tmp_path: Path) -> None:
    source = """
        import sys

        if sys.version_info >= (3, 11):
            _cache = {}
        try:
            import json
        except ImportError:
            _fallback = []
    """
    status, output = check(tmp_path, {"feature.py": source})
    assert status == 1, output
    assert "_cache (dict display) — NO REASON" in output
    assert "_fallback (list display) — NO REASON" in output


def test_a_function_rebinding_a_global_is_reported(tmp_path: Path) -> None:
    source = """
        _gaps_found = None

        def gaps() -> object:
            global _gaps_found
            _gaps_found = object()
            return _gaps_found
    """
    status, output = check(tmp_path, {"azure.py": source})
    assert status == 1, output
    assert "livekit_ext/azure.py:4 _gaps_found (rebound by gaps()) — NO REASON" in output

    explained = source.replace(
        "_gaps_found = None", "_gaps_found = None  # module state: probed once a process"
    )
    status, output = check(tmp_path, {"azure.py": explained})
    assert status == 0, output
    assert "_gaps_found (rebound by gaps()) — probed once a process" in output


def test_the_state_module_test_support_and_demo_are_exempt(tmp_path: Path) -> None:
    files = {
        "_state.py": UNEXPLAINED,
        "testing/server.py": UNEXPLAINED,
        "demo/run.py": UNEXPLAINED,
    }
    status, output = check(tmp_path, files)
    assert status == 0, output
    assert "module-level mutable state: 0" in output
    assert "ContextVars outside the state module: 0" in output


def test_a_root_without_the_package_is_an_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no livekit_ext/" in done.stderr
