"""The patch engine: features, the patcher that records what they replace, apply/revert.

Each feature is atomic: it probes the installed livekit, installs its wrappers through a
:class:`Patcher`, and if anything fails half-way the patcher undoes what was done, so a
feature is either fully applied or not at all.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Literal

from . import _compat

logger = logging.getLogger("livekit_ext")

State = Literal["native", "patched", "unsupported"]
Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
_ABSENT = object()


class FeatureStatus(str):
    """``"native" | "patched" | "unsupported"``, carrying the human reason in ``.reason``."""

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

    def wrap(self, owner: type, name: str, wrapper: Wrapper) -> None:
        """Wrap ``owner.name`` (own or inherited) with a ``(wrapped, instance, args, kwargs)`` wrapper.

        The replacement is a plain function carrying ``__wrapped__`` (wrapt's calling
        convention, not its proxy objects): livekit's EventEmitter calls ``inspect.signature``
        on every listener at every emit, and that is ~100x slower on a wrapt proxy.
        """
        self.replace(owner, name, make_wrapper(inspect.getattr_static(owner, name), wrapper))

    def replace(self, owner: Any, name: str, value: Any) -> None:
        # read the owner's own __dict__, never getattr: a class attribute read through getattr
        # is a bound/unbound function and would not be the object to restore (wrapt pitfall)
        own = vars(owner).get(name, _ABSENT) if hasattr(owner, "__dict__") else _ABSENT
        setattr(owner, name, value)

        def restore() -> None:
            if own is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, own)

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
    """A function (or classmethod/staticmethod) that hands every call to ``wrapper``."""
    if isinstance(target, classmethod):
        func = target.__func__

        @functools.wraps(func)
        def patched_classmethod(cls: Any, *args: Any, **kwargs: Any) -> Any:
            return wrapper(func.__get__(cls, cls), cls, args, kwargs)

        patched_classmethod.__livekit_ext_wrapper__ = True  # type: ignore[attr-defined]
        return classmethod(patched_classmethod)
    if isinstance(target, staticmethod):
        static = target.__func__

        @functools.wraps(static)
        def patched_static(*args: Any, **kwargs: Any) -> Any:
            return wrapper(static, None, args, kwargs)

        patched_static.__livekit_ext_wrapper__ = True  # type: ignore[attr-defined]
        return staticmethod(patched_static)
    if not callable(target) or not hasattr(target, "__get__"):
        raise TypeError(f"cannot wrap {target!r}: not a function")

    feature: str | None = getattr(wrapper, "__livekit_ext_feature__", None)
    if feature is None:

        @functools.wraps(target)
        def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
            return wrapper(target.__get__(self, type(self)), self, args, kwargs)

    else:
        # when_active's guard, inlined: these run on every upstream event, one frame less
        active = ENGINE._patchers
        hook: Wrapper = wrapper.__wrapped__  # type: ignore[attr-defined]

        @functools.wraps(target)
        def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
            if feature not in active:
                return target(self, *args, **kwargs)
            return hook(target.__get__(self, type(self)), self, args, kwargs)

    patched.__livekit_ext_wrapper__ = True  # type: ignore[attr-defined]
    _with_signature_of(target, patched)
    return patched


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
    """One feature, one module: probe what the installed livekit has, then install."""

    name: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def probe(self) -> Probe: ...

    @abstractmethod
    def install(self, patcher: Patcher) -> None:
        """Install every wrapper of the feature; raise if something expected is missing."""

    def settle(self, applied: FeatureStatus) -> FeatureStatus:
        """The final word for ``status()``, for features that probe on first use (what a probe
        costs is then paid when it matters, not at import).

        Called with ``"patched"`` once applied, and with the ``"unsupported"`` not-applied
        status while the extension is off (``LIVEKIT_EXT_DISABLE``, ``revert()``), so that a
        release found to have the feature itself reports ``"native"`` either way; while not
        applied, any other answer is ignored.
        """
        return applied


class _Engine:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._features: list[Feature] = []
        # mutated in place, never rebound: wrappers hold this very dict to check activity
        self._patchers: dict[str, Patcher] = {}
        self._status: dict[str, FeatureStatus] = {}
        self.applied = False

    def register(self, feature: Feature) -> None:
        self._features.append(feature)

    def is_active(self, name: str) -> bool:
        return name in self._patchers

    def apply(self) -> dict[str, FeatureStatus]:
        with self._lock:
            if self.applied:
                logger.debug("livekit_ext.apply(): already applied, nothing to do")
                return dict(self._status)
            self.applied = True
            problem = _compat.range_problem()
            if problem is not None:
                logger.warning("livekit_ext: %s; no feature is applied", problem)
                self._status = {
                    f.name: FeatureStatus("unsupported", problem) for f in self._features
                }
                return dict(self._status)
            for feature in self._features:
                self._status[feature.name] = self._apply_one(feature)
            return dict(self._status)

    def _apply_one(self, feature: Feature) -> FeatureStatus:
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

    def revert(self) -> None:
        with self._lock:
            if not self.applied:
                logger.debug("livekit_ext.revert(): not applied, nothing to do")
                return
            for name in reversed(list(self._patchers)):
                self._patchers.pop(name).undo()
            self.applied = False
            self._status = {}

    def _settled(self, feature: Feature, status: FeatureStatus) -> FeatureStatus:
        """``feature.settle(status)``; a failing settle leaves ``status`` as it was."""
        try:
            return feature.settle(status)
        except Exception as e:
            logger.warning("livekit_ext: settling the status of %s failed: %r", feature.name, e)
            return status

    def status(self) -> dict[str, FeatureStatus]:
        with self._lock:
            if self.applied:
                return {
                    f.name: (
                        self._settled(f, self._status[f.name])
                        if self._status[f.name].state == "patched"
                        else self._status[f.name]
                    )
                    for f in self._features
                    if f.name in self._status
                }
            result: dict[str, FeatureStatus] = {}
            for feature in self._features:
                try:
                    probe = feature.probe()
                except Exception as e:
                    result[feature.name] = FeatureStatus("unsupported", f"probe failed: {e!r}")
                    continue
                if probe.state == "patchable":
                    not_applied = FeatureStatus(
                        "unsupported", "not applied (LIVEKIT_EXT_DISABLE or revert()); call apply()"
                    )
                    # a probe deferred to first use may still find the installed release native
                    settled = self._settled(feature, not_applied)
                    result[feature.name] = settled if settled.state == "native" else not_applied
                else:
                    result[feature.name] = FeatureStatus(probe.state, probe.reason)
            return result


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


class hook_errors_logged:  # lower case: used like contextlib's context managers
    """Our enrichment code must never raise into the user's session: log and carry on.

    A class, not a ``@contextmanager`` generator: it runs several times per upstream event.
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
