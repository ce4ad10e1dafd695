"""Touchpoints: how a feature declares each upstream object it reads, wraps, replaces or calls.

A touchpoint names one upstream object by ``"module:Qual.name"``. Several paths mean the
object moved between releases (or several engines have it); it holds when any one resolves.
Kinds:

- ``wrap``: a function or method we replace with a wrapper that calls the original;
- ``replace``: a module attribute we swap (and put back on revert);
- ``call``: a function or method we call;
- ``read``: a class or module attribute we read;
- ``attr``: an attribute upstream sets on its instances (``self.x = ...``) that we read.

Each feature module declares its touchpoints once, as constants its ``install()`` hands to
the patcher (``patcher.wrap(SESSION_START, wrapper)``): the declaration is what is wrapped.
The engine checks them before a feature's probe (``missing()``); ``scripts/sweep.py`` reads
the same declarations (``Feature.touchpoints``) against every release of the range.

The upstream locations more than one feature touches are named here, once.
Pure data: importing this module imports nothing of livekit.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["wrap", "replace", "call", "read", "attr"]

SESSION = "livekit.agents.voice.agent_session:AgentSession"
ACTIVITY = "livekit.agents.voice.agent_activity:AgentActivity"
RECOGNITION = "livekit.agents.voice.audio_recognition"
ROOM_IO = "livekit.agents.voice.room_io.room_io:RoomIO"
GEMINI = "livekit.plugins.google.realtime.realtime_api"
OPENAI_PLUGIN = "livekit.plugins.openai.realtime.realtime_model"
OPENAI_BETA = "livekit.plugins.openai.realtime.realtime_model_beta"
OPENAI_ENGINES = (
    "livekit.agents.llm._realtime.openai",  # 1.8+: the engine lives in livekit-agents
    OPENAI_PLUGIN,
)
"""The modules of the OpenAI-protocol engine (``RealtimeSession``, ``RealtimeModel``)."""
OPENAI_SUBCLASSES = (
    "livekit.plugins.xai.realtime.realtime_model",
    "livekit.agents.inference.realtime.openai",  # 1.8+: LiveKit inference, xAI models too
)
"""Modules of engine subclasses that override the speech handlers (``RealtimeSession``)."""


def engine(qualname: str) -> tuple[str, ...]:
    """``qualname`` in every OpenAI engine module."""
    return tuple(f"{module}:{qualname}" for module in OPENAI_ENGINES)


@dataclass(frozen=True)
class Touchpoint:
    paths: tuple[str, ...]
    kind: Kind
    why: str
    optional: bool = False
    """The feature works without it (a plugin's part is skipped, a fallback is used)."""

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(path.partition(":")[0] for path in self.paths)

    @property
    def name(self) -> str:
        """The attribute name the touchpoint ends in (the same in every path)."""
        return self.paths[0].rpartition(".")[2].rpartition(":")[2]

    def owners(self, *, importing: bool = False) -> Iterator[Any]:
        """Each distinct imported object that has the attribute, in path order; with
        ``importing``, their modules are imported first (those that exist)."""
        seen: list[Any] = []
        for path in self.paths:
            module, _, qualname = path.partition(":")
            if importing and module not in sys.modules:
                with contextlib.suppress(ImportError):
                    importlib.import_module(module)
            owner_qualname, _, name = qualname.rpartition(".")
            owner = resolve(f"{module}:{owner_qualname}")
            if owner is not None and hasattr(owner, name) and not any(owner is s for s in seen):
                seen.append(owner)
                yield owner

    def resolvable(self, *, importing: bool = False) -> bool:
        """Whether some path names an object that exists (see ``owners``)."""
        return any(True for _ in self.owners(importing=importing))

    def owner(self, *, importing: bool = False) -> Any:
        """The first object that has the attribute (see ``owners``); ``LookupError`` if none."""
        for owner in self.owners(importing=importing):
            return owner
        raise LookupError(f"no upstream object at {self}")

    def get(self, *, importing: bool = False) -> Any:
        """The upstream object itself, from the first path that has it."""
        return getattr(self.owner(importing=importing), self.name)

    def __str__(self) -> str:
        return " | ".join(self.paths)


def wrap(why: str, *paths: str, optional: bool = False) -> Touchpoint:
    return Touchpoint(paths=paths, kind="wrap", why=why, optional=optional)


def replace(why: str, *paths: str, optional: bool = False) -> Touchpoint:
    return Touchpoint(paths=paths, kind="replace", why=why, optional=optional)


def call(why: str, *paths: str, optional: bool = False) -> Touchpoint:
    return Touchpoint(paths=paths, kind="call", why=why, optional=optional)


def read(why: str, *paths: str, optional: bool = False) -> Touchpoint:
    return Touchpoint(paths=paths, kind="read", why=why, optional=optional)


def attr(why: str, *paths: str, optional: bool = False) -> Touchpoint:
    return Touchpoint(paths=paths, kind="attr", why=why, optional=optional)


def declared(namespace: dict[str, Any]) -> tuple[Touchpoint, ...]:
    """The touchpoints a module declares as constants, alone or in tuples
    (``declared(globals())``)."""
    found: list[Touchpoint] = []
    for value in namespace.values():
        if isinstance(value, Touchpoint):
            found.append(value)
        elif isinstance(value, tuple) and value and all(isinstance(v, Touchpoint) for v in value):
            found.extend(value)
    return tuple(found)


def resolve(path: str) -> object | None:
    """The object at ``path`` if its module is already imported (never imports), else None."""
    module_name, _, qualname = path.partition(":")
    obj: object | None = sys.modules.get(module_name)
    for part in qualname.split(".") if qualname else ():
        if obj is None:
            return None
        obj = getattr(obj, part, None)
    return obj


def missing(
    touchpoints: Iterable[Touchpoint], imported: Callable[[str], bool] | None = None
) -> list[Touchpoint]:
    """The required touchpoints that do not resolve in the imported modules.

    ``attr`` touchpoints (instance attributes) cannot be seen on a class; the sweep checks
    them in the source. With ``imported``, only touchpoints in a module it accepts are
    checked: one not imported yet, or still being imported, is judged when it completes.
    """
    result = []
    for tp in touchpoints:
        if tp.optional or tp.kind == "attr":
            continue
        if imported is not None and not any(imported(m) for m in tp.modules):
            continue
        if all(resolve(path) is None for path in tp.paths):
            result.append(tp)
    return result
