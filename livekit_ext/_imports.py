"""Post-import hooks: run a callback when a module has been imported, never import it ourselves.

``import livekit_ext`` must cost an agent nothing for the plugins it does not use, so each
feature is installed when the module it patches is imported by the application (or at once,
if it already is). The same idea as wrapt's ``when_imported``, in ~100 lines and without its
import cost: a meta-path finder that, for a watched module name only, wraps the real loader so
that the hooks run right after the module's code has executed.

A module can also be *half* imported: ``from livekit.plugins import openai`` imports
``livekit.agents`` from inside the plugin's realtime module, so when livekit.agents' hooks run,
that module is in ``sys.modules`` without its classes yet. Such a module is waited for, never
judged: ``is_imported`` says no, and its hooks run when its import completes (see
``_notice_when_finished``).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

logger = logging.getLogger("livekit_ext")

Hook = Callable[[ModuleType], None]

# module state: the import system is process-wide, so are the hooks waiting on it
_lock = threading.RLock()
# module state: module name -> the hooks to run when its import completes
_hooks: dict[str, list[Hook]] = {}
_finding = threading.local()


def when_imported(name: str, hook: Hook) -> None:
    """Call ``hook(module)`` once ``name`` is imported: now if it already is, else right after
    its import completes (also when it is being imported right now, by a caller further up
    the stack). A hook that raises is logged; the import itself always succeeds."""
    with _lock:
        module = sys.modules.get(name)
        if module is None or _initializing(module):
            _hooks.setdefault(name, []).append(hook)
            if module is None:
                _install_finder()
            else:
                _notice_when_finished(module)
            return
    _run(hook, module)


def is_imported(name: str) -> bool:
    """Whether ``name`` has been imported completely (a half-imported module is not)."""
    module = sys.modules.get(name)
    return module is not None and not _initializing(module)


def _initializing(module: ModuleType) -> bool:
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _run(hook: Hook, module: ModuleType) -> None:
    try:
        hook(module)
    except Exception:
        logger.exception("livekit_ext: a post-import hook for %s failed", module.__name__)


def _notify(name: str) -> None:
    with _lock:
        module = sys.modules.get(name)
        if module is None:  # the import failed: wait for the next attempt
            if name in _hooks:
                _install_finder()
            return
        hooks = _hooks.pop(name, [])
    for hook in hooks:
        _run(hook, module)


def _notice_when_finished(module: ModuleType) -> None:
    """Run ``module``'s hooks when its running import completes.

    The import system marks a module's spec ``_initializing`` while its code runs and sets it
    to False when done, success or not (``importlib._bootstrap._load_unlocked``); no other
    public signal exists for an import already under way. The spec's class is swapped, for
    that moment only, for a subclass that notices the write.
    """
    spec = module.__spec__
    if spec is not None and not isinstance(spec, _FinishedNotice):
        spec.__class__ = _noticing(type(spec))


class _FinishedNotice:
    """Marks a spec class made by ``_noticing``."""


# module state: one noticing subclass per spec class, made once (specs are process-wide)
_NOTICING: dict[type, type] = {}


def _noticing(base: type) -> type:
    """``base`` with an ``_initializing`` attribute whose clearing runs the module's hooks
    and puts the spec's own class back."""
    cls = _NOTICING.get(base)
    if cls is not None:
        return cls

    def get(spec: Any) -> bool:
        return bool(vars(spec).get("_initializing", False))

    def set_(spec: Any, value: bool) -> None:
        vars(spec)["_initializing"] = value
        if not value:
            spec.__class__ = base
            _notify(spec.name)

    cls = type(
        f"_Noticing{base.__name__}",
        (base, _FinishedNotice),
        {
            "_initializing": property(get, set_),
        },
    )
    _NOTICING[base] = cls
    return cls


class _NotifyingLoader:
    """The real loader, plus the hooks once the module has executed. (Duck-typed, as the
    import system allows: ``importlib.abc`` would cost ``import livekit_ext`` ~15 ms.)"""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        # tools that ask the module for its loader (inspect, importlib.resources) see the real one
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _notify(module.__name__)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _Finder:
    """Finds nothing itself: for a watched name, asks the other finders and wraps their loader."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _hooks or getattr(_finding, "name", None) == fullname:
            return None
        _finding.name = fullname  # importlib.util.find_spec walks sys.meta_path, us included
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            _finding.name = None
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _NotifyingLoader(spec.loader)  # type: ignore[assignment]
        return spec


# module state: the one finder this process's import system asks (it is in sys.meta_path)
_FINDER = _Finder()


def _install_finder() -> None:
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
