"""The sweep's resolver on tiny in-memory source trees: what it calls present must be there."""

from __future__ import annotations

import importlib.util
import io
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit


def _load_sweep() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "scripts" / "sweep.py"
    spec = importlib.util.spec_from_file_location("_sweep_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


sweep = _load_sweep()


AGENTS = {
    "lk/agents/__init__.py": "from .llm import realtime\nfrom .llm.realtime import RealtimeSession\n",
    "lk/agents/llm/__init__.py": "from .realtime import *\n",
    "lk/agents/llm/realtime.py": textwrap.dedent(
        """
        from typing import TYPE_CHECKING, Generic, TypeVar
        from pydantic import BaseModel

        if TYPE_CHECKING:
            from .hidden import OnlyForTypes

        T = TypeVar("T")

        class RealtimeSession(Generic[T]):
            _label = "rt"

            def __init__(self, model):
                self._model = model
                self._opts, self._tasks = {}, []

            async def _main_task(self):
                self._late: int = 1

            @property
            def label(self):
                return self._label

        class Message(BaseModel):
            id: str
        """
    ),
    "lk/plugins/openai/realtime.py": textwrap.dedent(
        """
        from lk.agents import llm
        from lk.agents.llm import RealtimeSession as _Base
        from lk.agents.utils import shortuuid as make_id

        class RealtimeSession(llm.RealtimeSession):
            def _recv_task(self):
                pass

        class Beta(_Base):
            conn: object

        Alias = RealtimeSession
        """
    ),
    "lk/agents/utils/__init__.py": "from .misc import shortuuid\n",
    "lk/agents/utils/misc.py": "def shortuuid(prefix=''):\n    return prefix\n",
}


def find(path: str, kind: str = "wrap", files: dict[str, str] = AGENTS) -> str | None:
    resolver = sweep.Resolver(files)
    symbol = resolver.find(path, kind)
    return symbol.where(resolver) if symbol else None


def test_a_re_export_resolves_to_the_defining_module() -> None:
    assert find("lk.agents:RealtimeSession") == "lk/agents/llm/realtime.py:10"
    assert find("lk.agents.utils:shortuuid", "call") == "lk/agents/utils/misc.py:1"
    # through a star import, an "import as" module alias and a renamed name
    assert find("lk.agents.llm:RealtimeSession.__init__") == "lk/agents/llm/realtime.py:13"
    assert find("lk.plugins.openai.realtime:make_id", "call") == "lk/agents/utils/misc.py:1"
    assert find("lk.agents:realtime.RealtimeSession") == "lk/agents/llm/realtime.py:10"


def test_members_are_inherited_through_resolvable_bases() -> None:
    # llm.RealtimeSession (an attribute of an imported module) and a renamed import as bases
    assert find("lk.plugins.openai.realtime:RealtimeSession._main_task") == (
        "lk/agents/llm/realtime.py:17"
    )
    assert find("lk.plugins.openai.realtime:Beta.label", "read") == "lk/agents/llm/realtime.py:21"
    assert find("lk.plugins.openai.realtime:Alias._recv_task") == (
        "lk/plugins/openai/realtime.py:7"
    )
    # every class has object's members, e.g. a pydantic model's __init__
    assert find("lk.agents.llm.realtime:Message.__init__") == (
        "lk/agents/llm/realtime.py:24 (from object)"
    )


def test_an_instance_attribute_is_found_in_any_method_of_the_class_or_a_base() -> None:
    assert find("lk.agents.llm.realtime:RealtimeSession._model", "attr") == (
        "lk/agents/llm/realtime.py:14"
    )
    assert find("lk.plugins.openai.realtime:RealtimeSession._tasks", "attr") == (
        "lk/agents/llm/realtime.py:15"
    )
    assert find("lk.plugins.openai.realtime:RealtimeSession._late", "attr") == (
        "lk/agents/llm/realtime.py:18"
    )
    # a class-level annotation is a field of the instances, not a class attribute
    assert (
        find("lk.plugins.openai.realtime:Beta.conn", "attr") == "lk/plugins/openai/realtime.py:11"
    )
    assert find("lk.plugins.openai.realtime:Beta.conn", "read") is None
    # an instance attribute is not a class attribute
    assert find("lk.agents.llm.realtime:RealtimeSession._model", "read") is None


def test_a_missing_name_is_missing() -> None:
    assert find("lk.agents.llm.realtime:RealtimeSession._gone") is None
    assert find("lk.agents.llm.realtime:RealtimeSession._gone", "attr") is None
    assert find("lk.agents.llm.realtime:Nowhere") is None
    assert find("lk.agents.nomodule:RealtimeSession") is None
    # imported only under TYPE_CHECKING: not there at run time
    assert find("lk.agents.llm.realtime:OnlyForTypes", "read") is None
    # a miss says which step failed, and which bases it could not look into
    resolver = sweep.Resolver(AGENTS)
    assert resolver.locate("lk.agents.nomodule:X", "read")[1] == "no module lk.agents.nomodule"
    assert resolver.locate("lk.agents.llm.realtime:Message.id.x", "read")[1] == (
        "class lk.agents.llm.realtime:Message has no id (bases outside the wheels: BaseModel)"
    )
    assert resolver.locate("lk.agents:RealtimeSession._gone", "attr")[1] == (
        "class lk.agents.llm.realtime:RealtimeSession has no instance attribute _gone"
    )


def test_a_touchpoint_holds_when_any_of_its_paths_resolves() -> None:
    checks = [
        sweep.Check("f", ("lk.new:X", "lk.agents:RealtimeSession"), "read", False),
        sweep.Check("f", ("lk.agents:Gone",), "read", True),
        sweep.Check("g", ("lk.agents:Gone", "lk.new:Gone"), "wrap", False),
    ]
    resolver = sweep.Resolver(AGENTS)
    results = [
        sweep.Outcome(tuple(resolver.find(p, c.kind) and "x" for p in c.paths), ()) for c in checks
    ]
    assert sweep.cell(checks, results, "f") == "ok (1 opt)"
    assert sweep.cell(checks, results, "g") == "missing 1"


def test_sources_are_read_from_a_wheel(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        for path, text in AGENTS.items():
            wheel.writestr(path, text)
        wheel.writestr("lk_agents-1.0.dist-info/METADATA", "Name: lk-agents\n")
    archive = tmp_path / "lk_agents-1.0-py3-none-any.whl"
    archive.write_bytes(buffer.getvalue())
    assert sweep.archive_key(archive.name) == "lk_agents-1.0"
    assert sweep.cached_archive(tmp_path, "lk-agents", "1.0") == archive
    checks = [sweep.Check("f", ("lk.agents:RealtimeSession._opts",), "attr", False)]
    assert [o.locations for o in sweep.check_release([archive], checks)] == [
        ("lk/agents/llm/realtime.py:15",)
    ]


def test_an_sdist_is_read_too_and_a_missing_plugin_release_falls_back(tmp_path: Path) -> None:
    archive = tmp_path / "lk_agents-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as sdist:
        for path, text in AGENTS.items():
            data = text.encode()
            info = tarfile.TarInfo(f"lk_agents-1.0/{path}")
            info.size = len(data)
            sdist.addfile(info, io.BytesIO(data))
    assert sweep.cached_archive(tmp_path, "lk_agents", "1.0") == archive
    checks = [sweep.Check("f", ("lk.agents:realtime.RealtimeSession.label",), "read", False)]
    assert [o.locations for o in sweep.check_release([archive], checks)] == [
        ("lk/agents/llm/realtime.py:21",)
    ]
    assert sweep.newest_not_after(["1.5.18", "1.5.16", "1.4.6", "1.6.0rc1"], "1.5.17") == "1.5.16"
    assert sweep.newest_not_after(["1.5.0"], "1.4.6") is None


def test_the_lower_bound_comes_from_compat(tmp_path: Path) -> None:
    compat = tmp_path / "_compat.py"
    compat.write_text('MIN_RELEASE = "1.5.2"\n"""The oldest."""\n')
    assert sweep.lower_bound(compat) == "1.5.2"
    compat.write_text('SUPPORTED = "livekit-agents>=1.4.7,<1.9"\n')
    assert sweep.lower_bound(compat) == "1.4.7"
    assert sweep.lower_bound(tmp_path / "absent.py") == "1.4.6"


def test_missing_releases_read_as_runs() -> None:
    releases = ["1.4.6", "1.5.0", "1.5.1", "1.5.2", "1.6.5", "1.6.6"]
    assert sweep.spans({"1.4.6", "1.5.0", "1.5.1", "1.6.5"}, releases) == "1.4.6..1.5.1, 1.6.5"
