"""The patch engine: features, the patcher that records what they replace, apply/revert.

Each feature is atomic: it probes the installed livekit, installs its wrappers through a
:class:`Patcher`, and if anything fails half-way the patcher undoes what was done, so a
feature is either fully applied or not at all.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any, ClassVar, Literal

from . import _compat, _touchpoints
from ._imports import is_imported, when_imported

logger = logging.getLogger("livekit_ext")

State = Literal["native", "patched", "unsupported", "disabled"]
Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
Build = Callable[[Callable[..., Any]], Callable[..., Any]]
_ABSENT = object()
NOT_INSTALLED = " is not installed"
"""How the reason of a feature whose distribution is absent ends (``doctor``: not needed)."""


class FeatureStatus(str):
    """``"native" | "patched" | "unsupported" | "disabled"``, with the human reason in ``.reason``."""

    state: State
    reason: str

    def __new__(cls, state: State, reason: str) -> FeatureStatus:
        self = super().__new__(cls, state)
        self.state = state
        self.reason = reason
        return self

    def __repr__(self) -> str:
        return f"FeatureStatus({self.state!r}, {self.reason!r})"


@dataclass(frozen=True)
class Probe:
    """What a feature found in the installed livekit: already there, patchable, or not."""

    state: Literal["native", "patchable", "unsupported"]
    reason: str


class Patcher:
    """Replaces class attributes and remembers the exact originals, so undo() restores them."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []
        self._wrapped: set[tuple[type, str]] = set()

    def has_wrapped(self, owner: type, name: str) -> bool:
        """Whether this patcher wrapped ``owner.name`` already (a class reachable from two
        modules is wrapped once)."""
        return (owner, name) in self._wrapped

    def wrap(self, owner: type, name: str, wrapper: Wrapper) -> None:
        """Wrap ``owner.name`` (own or inherited) with a ``(wrapped, instance, args, kwargs)`` wrapper.

        The replacement is a plain function carrying ``__wrapped__`` (wrapt's calling
        convention, not its proxy objects): livekit's EventEmitter calls ``inspect.signature``
        on every listener at every emit, and that is ~100x slower on a wrapt proxy.
        """
        self.replace(owner, name, make_wrapper(inspect.getattr_static(owner, name), wrapper))
        self._wrapped.add((owner, name))

    def wrap_inline(self, owner: type, name: str, build: Build) -> None:
        """Like ``wrap``, for the methods upstream calls on every event: ``build(original)``
        returns the method itself, a closure that calls ``original(self, ...)``; one call per
        event where ``wrap`` costs two. While its feature is off (``ENGINE.active``) it must
        fall through to ``original``: bound methods upstream captured outlive revert().
        """
        target = inspect.getattr_static(owner, name)
        if not inspect.isfunction(target):
            raise TypeError(f"cannot wrap {owner.__name__}.{name} inline: not a function")
        method = functools.update_wrapper(build(target), target)
        _with_signature_of(target, method)
        self.replace(owner, name, _marked(method, _OriginalCell(method)))
        self._wrapped.add((owner, name))

    def replace(self, owner: Any, name: str, value: Any) -> None:
        # read the owner's own __dict__, never getattr: a class attribute read through getattr
        # is a bound/unbound function and would not be the object to restore (wrapt pitfall)
        own = vars(owner).get(name, _ABSENT) if hasattr(owner, "__dict__") else _ABSENT
        setattr(owner, name, value)

        def restore() -> None:
            current = vars(owner).get(name, _ABSENT) if hasattr(owner, "__dict__") else _ABSENT
            if current is not value and _splice_out(current, value):
                return  # another feature's wrapper sits on top of ours and stays
            if own is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, _what_it_wraps_now(value, own))

        self._undo.append(restore)

    def on_undo(self, callback: Callable[[], None]) -> None:
        self._undo.append(callback)

    def undo(self) -> None:
        while self._undo:
            restore = self._undo.pop()
            try:
                restore()
            except Exception:
                logger.exception("livekit_ext: failed to restore an original while reverting")


def make_wrapper(target: Any, wrapper: Wrapper) -> Any:
    """A function (or classmethod/staticmethod) that hands every call to ``wrapper``.

    The wrapped object is held in a one-item list (``__livekit_ext_inner__``), so that
    reverting a feature whose wrapper lies under another feature's can splice it out of the
    chain, leaving the other one in place.
    """
    if isinstance(target, classmethod):
        func_cell = [target.__func__]

        @functools.wraps(target.__func__)
        def patched_classmethod(cls: Any, *args: Any, **kwargs: Any) -> Any:
            return wrapper(func_cell[0].__get__(cls, cls), cls, args, kwargs)

        return classmethod(_marked(patched_classmethod, func_cell))
    if isinstance(target, staticmethod):
        static_cell = [target.__func__]

        @functools.wraps(target.__func__)
        def patched_static(*args: Any, **kwargs: Any) -> Any:
            return wrapper(static_cell[0], None, args, kwargs)

        return staticmethod(_marked(patched_static, static_cell))
    if not callable(target) or not hasattr(target, "__get__"):
        raise TypeError(f"cannot wrap {target!r}: not a function")

    inner = [target]
    feature: str | None = getattr(wrapper, "__livekit_ext_feature__", None)
    if feature is None:

        @functools.wraps(target)
        def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
            return wrapper(inner[0].__get__(self, type(self)), self, args, kwargs)

    else:
        # when_active's guard, inlined: these run on every upstream event, one frame less
        active = ENGINE._patchers
        hook: Wrapper = wrapper.__wrapped__  # type: ignore[attr-defined]

        @functools.wraps(target)
        def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
            if feature not in active:
                return inner[0](self, *args, **kwargs)
            return hook(inner[0].__get__(self, type(self)), self, args, kwargs)

    _with_signature_of(target, patched)
    return _marked(patched, inner)


class _OriginalCell:
    """``__livekit_ext_inner__`` of an inline wrapper: the ``original`` its closure calls,
    read and rebound like the one-item list of the other wrappers (to splice one out)."""

    __slots__ = ("_cell",)

    def __init__(self, method: Any) -> None:
        code = method.__code__
        if "original" not in code.co_freevars:
            raise TypeError(f"{code.co_name} must be a closure calling `original`")
        self._cell = method.__closure__[code.co_freevars.index("original")]

    def __getitem__(self, index: int) -> Any:
        return self._cell.cell_contents

    def __setitem__(self, index: int, value: Any) -> None:
        self._cell.cell_contents = value


def _marked(func: Any, inner: list[Any] | _OriginalCell) -> Any:
    func.__livekit_ext_wrapper__ = True
    func.__livekit_ext_inner__ = inner
    return func


def _what_it_wraps_now(value: Any, own: Any) -> Any:
    """What taking ``value`` away puts back: ``own``, unless a wrapper under ``value`` was
    spliced out since (then ``own`` is that stale wrapper, and ``value`` knows what it wraps)."""
    func = getattr(value, "__func__", value)
    inner: list[Any] | _OriginalCell | None = getattr(func, "__livekit_ext_inner__", None)
    if inner is None or inner[0] is getattr(own, "__func__", own):
        return own
    if isinstance(value, classmethod):
        return classmethod(inner[0])
    if isinstance(value, staticmethod):
        return staticmethod(inner[0])
    return inner[0]


def _splice_out(top: Any, ours: Any) -> bool:
    """Take ``ours`` out of the chain of our wrappers that starts at ``top``: the wrapper
    just above it calls what ``ours`` wrapped from now on. False if it is not in the chain."""
    ours_func = getattr(ours, "__func__", ours)
    ours_inner = getattr(ours_func, "__livekit_ext_inner__", None)
    if ours_inner is None:
        return False
    outer = getattr(top, "__func__", top)
    while is_wrapper(outer):
        cell: list[Any] | _OriginalCell = outer.__livekit_ext_inner__
        if cell[0] is ours_func:
            cell[0] = ours_inner[0]
            outer.__wrapped__ = ours_inner[0]
            return True
        outer = cell[0]
    return False


def _with_signature_of(original: Any, func: Any) -> None:
    """Give ``func`` the signature of ``original`` up front, as ``__signature__``.

    livekit's EventEmitter calls ``inspect.signature`` on every listener at every emit, and
    upstream registers bound methods we wrap. Without this, ``inspect`` re-derives the
    signature from the code (through ``__wrapped__``) each time.
    """
    # no signature to know: inspect will say so at emit time, as it does for the original
    with contextlib.suppress(TypeError, ValueError):
        func.__signature__ = inspect.signature(original)


def is_wrapper(obj: Any) -> bool:
    """Whether ``obj`` (a class attribute as stored) is one of our wrappers."""
    func = getattr(obj, "__func__", obj)
    return bool(getattr(func, "__livekit_ext_wrapper__", False))


class Feature(ABC):
    """One feature, one module: probe what the installed livekit has, then install.

    A feature is decided when its ``trigger`` module is imported by the application (at once
    if it already is): its touchpoints are checked, then ``probe()``, then ``install()``.
    ``parts`` name later modules (a plugin) whose share of the feature is installed by the
    named method when they are imported. ``requires`` names features that must be in effect
    (patched or native) first; the engine orders, applies and reverts them together.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    trigger: ClassVar[str] = "livekit.agents"
    distribution: ClassVar[str] = "livekit-agents"
    parts: ClassVar[dict[str, str]] = {}

    @abstractmethod
    def probe(self) -> Probe: ...

    @abstractmethod
    def install(self, patcher: Patcher) -> None:
        """Install every wrapper of the feature; raise if something expected is missing."""

    def settle(self, applied: FeatureStatus) -> FeatureStatus:
        """The final word for ``status()``, for features that probe on first use (what a probe
        costs is then paid when it matters, not at import).

        Called with ``"patched"`` once applied, and with the ``"disabled"`` status while the
        extension is off (``LIVEKIT_EXT_DISABLE``, ``revert()``), so that a release found to
        have the feature itself reports ``"native"`` either way; while not applied, any other
        answer is ignored.
        """
        return applied


class _Engine:
    """Applies features when their modules are imported; reverts them; says what is true."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._features: dict[str, Feature] = {}
        # mutated in place, never rebound: wrappers hold this very dict to check activity
        self._patchers: dict[str, Patcher] = {}
        self.active: Mapping[str, Patcher] = self._patchers
        """The features in effect: ``name in ENGINE.active`` is ``is_active(name)`` without a
        call, for the code that runs on every upstream event."""
        self._decided: dict[str, FeatureStatus] = {}
        self._wanted: set[str] = set()
        self._off_reason = "not applied; call livekit_ext.apply()"
        self._verdict: _compat.Verdict | None = None

    def register(self, feature: Feature) -> None:
        unknown = [dep for dep in feature.requires if dep not in self._features]
        if unknown:
            raise ValueError(f"{feature.name} requires unregistered feature(s) {unknown}")
        self._features[feature.name] = feature

    def is_active(self, name: str) -> bool:
        return name in self._patchers

    def _with_requirements(self, names: Iterable[str] | None) -> list[str]:
        """``names`` and what they require, in registration order (requirements first)."""
        if names is None:
            return list(self._features)
        wanted: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            if name not in self._features:
                raise ValueError(f"no feature {name!r}; known: {', '.join(self._features)}")
            if name not in wanted:
                wanted.add(name)
                todo.extend(self._features[name].requires)
        return [name for name in self._features if name in wanted]

    def _with_dependents(self, names: Iterable[str] | None) -> list[str]:
        """``names`` and every feature that requires them, dependents first."""
        if names is None:
            return list(reversed(self._features))
        selected: set[str] = set()
        for name in names:
            if name not in self._features:
                raise ValueError(f"no feature {name!r}; known: {', '.join(self._features)}")
            selected.add(name)
        changed = True
        while changed:
            changed = False
            for feature in self._features.values():
                if feature.name not in selected and selected.intersection(feature.requires):
                    selected.add(feature.name)
                    changed = True
        return [name for name in reversed(self._features) if name in selected]

    def apply(self, names: Iterable[str] | None = None) -> None:
        with self._lock:
            selected = self._with_requirements(names)
            for name in selected:
                if name in self._wanted:
                    continue
                self._wanted.add(name)
                self._decided.pop(name, None)
                feature = self._features[name]
                when_imported(feature.trigger, functools.partial(self._activate, name))

    def _range_verdict(self) -> _compat.Verdict:
        if self._verdict is None:
            self._verdict = _compat.verdict()
            if self._verdict.warning is not None:
                logger.warning("livekit_ext: %s", self._verdict.warning)
        return self._verdict

    def _activate(self, name: str, module: ModuleType | None = None) -> None:
        """The feature's trigger module is imported: decide it, and install it if it fits."""
        with self._lock:
            if name not in self._wanted or name in self._decided:
                return
            feature = self._features[name]
            status = self._decide(feature)
            self._decided[name] = status
            if status.state != "patched":
                return
            patcher = self._patchers[name]
            for part_module, method in feature.parts.items():
                hook = functools.partial(self._install_part, name, method, patcher)
                when_imported(part_module, hook)

    def _decide(self, feature: Feature) -> FeatureStatus:
        verdict = self._range_verdict()
        if not verdict.apply:
            return FeatureStatus("unsupported", verdict.warning or "outside the supported range")
        for dep in feature.requires:
            dep_status = self._decided.get(dep)
            if dep_status is None or dep_status.state not in ("patched", "native"):
                why = f"{dep_status.state}: {dep_status.reason}" if dep_status else "not decided"
                return FeatureStatus("unsupported", f"needs {dep} ({why})")
        missing = _touchpoints.missing(feature.name, is_imported)
        if missing:
            named = "; ".join(f"{tp} ({tp.why})" for tp in missing)
            logger.warning("livekit_ext: %s not applied: missing %s", feature.name, named)
            return FeatureStatus("unsupported", f"missing upstream touchpoint: {named}")
        try:
            probe = feature.probe()
        except Exception as e:  # a probe must never break the user's import
            logger.warning("livekit_ext: probing %s failed: %r", feature.name, e)
            return FeatureStatus("unsupported", f"probe failed: {e!r}")
        if probe.state != "patchable":
            return FeatureStatus(probe.state, probe.reason)
        patcher = Patcher()
        try:
            feature.install(patcher)
        except Exception as e:
            patcher.undo()
            logger.warning("livekit_ext: %s not applied: %r", feature.name, e)
            return FeatureStatus("unsupported", f"could not be applied: {e!r}")
        self._patchers[feature.name] = patcher
        return FeatureStatus("patched", probe.reason)

    def _install_part(self, name: str, method: str, patcher: Patcher, module: ModuleType) -> None:
        """A plugin the feature also covers was imported: install its share (unless the
        feature was reverted since: ``patcher`` is the activation the hook belongs to)."""
        with self._lock:
            if self._patchers.get(name) is not patcher:
                return
            try:
                getattr(self._features[name], method)(patcher)
            except Exception as e:
                logger.warning("livekit_ext: %s not applied to %s: %r", name, module.__name__, e)
                status = self._decided[name]
                self._decided[name] = FeatureStatus(
                    status.state, f"{status.reason}; not for {module.__name__}: {e!r}"
                )

    def wrap_inline_when_needed(self, feature: str, owner: type, name: str, build: Build) -> None:
        """Install ``feature``'s inline wrapper of ``owner.name`` now, unless it is there.

        For a hook only one kind of session needs (an STT pipeline's turn, a parallel STT's),
        called just before the first moment it matters: every other session then pays no
        call per event for it. It goes through the feature's patcher, so revert() takes it
        out with the rest, and after the next apply() the next need installs it again.
        """
        patcher = self._patchers.get(feature)
        if patcher is None or patcher.has_wrapped(owner, name):
            return
        with self._lock:
            if self._patchers.get(feature) is patcher and not patcher.has_wrapped(owner, name):
                patcher.wrap_inline(owner, name, build)

    def revert(self, names: Iterable[str] | None = None, *, reason: str | None = None) -> None:
        with self._lock:
            for name in self._with_dependents(names):
                if name not in self._wanted:
                    continue
                self._wanted.discard(name)
                self._decided.pop(name, None)
                patcher = self._patchers.pop(name, None)
                if patcher is not None:
                    patcher.undo()
            self._off_reason = reason or "reverted; call livekit_ext.apply() to apply again"
            if not self._wanted:
                self._verdict = None  # the next apply() looks at the installed release again

    def disable(self, reason: str) -> None:
        """Apply nothing at import, and say why in ``status()``."""
        self._off_reason = reason

    def _settled(self, feature: Feature, status: FeatureStatus) -> FeatureStatus:
        """``feature.settle(status)``. Settling runs a deferred probe: if it raises, the
        feature's wrappers cannot know what to fix, so it is not in effect: unsupported."""
        try:
            return feature.settle(status)
        except Exception as e:
            logger.warning("livekit_ext: probing %s failed: %r", feature.name, e)
            return FeatureStatus("unsupported", f"probe failed: {e!r}")

    def status(self, *, import_core: bool = True) -> dict[str, FeatureStatus]:
        core = [f for f in self._features.values() if f.trigger == "livekit.agents"]
        wanted_core = any(f.name in self._wanted for f in core)
        if import_core and wanted_core and not is_imported("livekit.agents"):
            # every agent imports livekit.agents: deciding the core features now is what
            # "in effect for the sessions that follow" means (plugins are never imported here)
            with contextlib.suppress(ImportError):
                importlib.import_module("livekit.agents")
        with self._lock:
            return {name: self._status_of(feature) for name, feature in self._features.items()}

    def _status_of(self, feature: Feature) -> FeatureStatus:
        decided = self._decided.get(feature.name)
        if decided is not None:
            return self._settled(feature, decided) if decided.state == "patched" else decided
        if _compat.installed_version(feature.distribution) is None:
            return FeatureStatus("unsupported", f"{feature.distribution}{NOT_INSTALLED}")
        imported = is_imported(feature.trigger)
        if feature.name in self._wanted:
            return FeatureStatus(
                "unsupported",
                f"not in effect: {feature.trigger} is not imported in this process "
                "(the feature is applied when it is)",
            )
        off = FeatureStatus("disabled", self._off_reason)
        if not imported:
            return off
        try:  # off, but upstream may do it natively
            probe = feature.probe()
        except Exception as e:
            return FeatureStatus("unsupported", f"probe failed: {e!r}")
        if probe.state == "native":
            return FeatureStatus("native", probe.reason)
        settled = self._settled(feature, off)
        return settled if settled.state == "native" else off


ENGINE = _Engine()


def when_active(feature: str) -> Callable[[Wrapper], Wrapper]:
    """Make a wrapper fall through to the original while ``feature`` is not applied.

    Upstream captures bound methods (``session.on("...", self._handler)``), so a wrapper can
    outlive revert(); it must then behave exactly like the original.
    """

    def decorate(wrapper: Wrapper) -> Wrapper:
        @functools.wraps(wrapper)
        def guarded(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            if not ENGINE.is_active(feature):
                return wrapped(*args, **kwargs)
            return wrapper(wrapped, instance, args, kwargs)

        guarded.__livekit_ext_feature__ = feature  # type: ignore[attr-defined]
        return guarded

    return decorate


def hook_failed(what: str) -> None:
    """Log the exception being handled: ``what`` failed, the event passes through unchanged.

    For ``except Exception: hook_failed(...)`` in the wrappers that run on every upstream
    event, where a ``try`` costs nothing and a context manager costs three calls.
    """
    logger.error("livekit_ext: %s failed; the event passes through unchanged", what, exc_info=True)


class hook_errors_logged:  # lower case: used like contextlib's context managers
    """Our enrichment code must never raise into the user's session: log and carry on.

    A class, not a ``@contextmanager`` generator: it runs several times per upstream event
    (the hottest wrappers use ``try``/``hook_failed`` instead).
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc_type is None or not issubclass(exc_type, Exception):
            return False
        logger.error(
            "livekit_ext: %s failed; the event passes through unchanged",
            self.what,
            exc_info=(exc_type, exc, tb),  # type: ignore[arg-type]
        )
        return True
