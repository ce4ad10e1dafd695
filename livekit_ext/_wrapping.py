"""Wrapping upstream: the patcher, the wrappers, and whether a feature is on.

Every replacement of an upstream object goes through a :class:`Patcher`, which records the
exact original so that ``undo()`` restores it (and splices a wrapper out from under another
feature's). ``ACTIVE`` is the one answer to "is this feature on": ``FEATURE in ACTIVE``, a
dict lookup with no call, for the code that runs on every upstream event.

The speed tricks of the package live here, each with the figure that justifies it:

- wrappers are plain functions, not wrapt proxies (``Patcher.wrap``): ~100x cheaper for the
  ``inspect.signature`` livekit's emitter runs on every listener at every emit;
- ``Patcher.wrap_inline`` for the methods upstream calls per event: one call, not two;
- wrappers carry their original's signature up front (``_with_signature_of``);
- a frame read by a guard is parsed once (``ParseHandoff``).
- a pydantic field of an event we enrich is set without pydantic's dispatch (``set_field``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import threading
import types
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ._touchpoints import Touchpoint

logger = logging.getLogger("livekit_ext")

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
Build = Callable[[Callable[..., Any]], Callable[..., Any]]
_ABSENT = object()

# module state: patches are process-wide, so which features are in effect is too
ACTIVE: dict[str, Patcher] = {}
"""Feature name -> the patcher that installed it, for the features in effect. Written by the
engine only; mutated in place, never rebound (wrappers hold this very dict)."""
# module state: one lock for installing on demand, as for the engine's installs
_INSTALL_LOCK = threading.Lock()


class Patcher:
    """Replaces class attributes and remembers the exact originals, so undo() restores them."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []
        self._wrapped: set[tuple[type, str]] = set()

    def has_wrapped(self, owner: type, name: str) -> bool:
        """Whether this patcher wrapped ``owner.name`` already (a class reachable from two
        modules is wrapped once)."""
        return (owner, name) in self._wrapped

    def wrap(self, where: Touchpoint, wrapper: Wrapper, *, on: Any = None) -> None:
        """Wrap the method ``where`` declares (on ``on``, a subclass, if given) with a
        ``(wrapped, instance, args, kwargs)`` wrapper.

        The replacement is a plain function carrying ``__wrapped__`` (wrapt's calling
        convention, not its proxy objects): livekit's EventEmitter calls ``inspect.signature``
        on every listener at every emit, and that is ~100x slower on a wrapt proxy.
        """
        owner, name = on if on is not None else where.owner(importing=True), where.name
        target = inspect.getattr_static(owner, name)
        self.replace_attribute(owner, name, make_wrapper(target, wrapper))
        self._wrapped.add((owner, name))

    def wrap_inline(self, where: Touchpoint, build: Build, *, on: Any = None) -> None:
        """Like ``wrap``, for the methods upstream calls on every event: ``build(original)``
        returns the method itself, a closure that calls ``original(self, ...)``; one call per
        event where ``wrap`` costs two and a bound method (one of the cuts that took the soak
        from 0.85x to 0.96x stock, docs/benchmark-history.md). While its feature is not in
        ``ACTIVE`` it must fall through to ``original``: bound methods upstream captured
        outlive revert().
        """
        owner, name = on if on is not None else where.owner(importing=True), where.name
        target = inspect.getattr_static(owner, name)
        if not inspect.isfunction(target):
            raise TypeError(f"cannot wrap {owner.__name__}.{name} inline: not a function")
        method = functools.update_wrapper(build(target), target)
        _with_signature_of(target, method)
        self.replace_attribute(owner, name, _marked(method, _OriginalCell(method)))
        self._wrapped.add((owner, name))

    def wrap_function(self, where: Touchpoint, wrapper: Wrapper, *, on: Any = None) -> None:
        """Wrap the module-level function ``where`` declares (in module ``on``, if given):
        ``wrapper`` gets ``instance=None`` (module functions have no ``self``)."""
        module = on if on is not None else where.owner(importing=True)
        name = where.name
        original = vars(module)[name]

        @functools.wraps(original)
        def patched(*args: Any, **kwargs: Any) -> Any:
            return wrapper(original, None, args, kwargs)

        self.replace_attribute(module, name, patched)

    def replace(self, where: Touchpoint, value: Any, *, on: Any = None) -> None:
        """Set the attribute ``where`` declares (of ``on``, if given) to ``value``."""
        owner = on if on is not None else where.owner(importing=True)
        self.replace_attribute(owner, where.name, value)

    def replace_attribute(self, owner: Any, name: str, value: Any) -> None:
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

    @functools.wraps(target)
    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        return wrapper(inner[0].__get__(self, type(self)), self, args, kwargs)

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
    signature from the code (through ``__wrapped__``) each time. Measured in the soak
    (docs/benchmark-history.md): with every hook falling through after ``revert()``, a
    session ran 4.5-5.8 % faster than stock, from this alone.
    """
    # no signature to know: inspect will say so at emit time, as it does for the original
    with contextlib.suppress(TypeError, ValueError):
        func.__signature__ = inspect.signature(original)


def is_wrapper(obj: Any) -> bool:
    """Whether ``obj`` (a class attribute as stored) is one of our wrappers."""
    func = getattr(obj, "__func__", obj)
    return bool(getattr(func, "__livekit_ext_wrapper__", False))


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
            if feature not in ACTIVE:
                return wrapped(*args, **kwargs)
            return wrapper(wrapped, instance, args, kwargs)

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


def install_when_needed(feature: str, where: Touchpoint, build: Build) -> None:
    """Install ``feature``'s inline wrapper of ``where`` now, unless it is there.

    For a hook only one kind of session needs (an STT pipeline's turn, a parallel STT's),
    called just before the first moment it matters: every other session then pays no
    call per event for it. It goes through the feature's patcher, so revert() takes it
    out with the rest, and after the next apply() the next need installs it again.
    """
    patcher = ACTIVE.get(feature)
    owner = where.owner()
    if patcher is None or patcher.has_wrapped(owner, where.name):
        return
    with _INSTALL_LOCK:
        if ACTIVE.get(feature) is patcher and not patcher.has_wrapped(owner, where.name):
            patcher.wrap_inline(where, build)


def observe_before_listeners(emitter: Any, event: str, observer: Callable[[Any], None]) -> None:
    """Call ``observer`` with the payload of ``event`` before the emitter's listeners run.

    The instance's own ``emit`` is wrapped: older livekit-rtc keeps listeners in a set (no
    order at all), and the emitter runs ``inspect.signature`` on each listener at every
    emit, so a wrapper is both ordered and cheaper than one more listener. Other sessions
    pay nothing; this session pays one call per event it emits, so where our own wrapper
    already sees the event (the funnel), that is the place instead. An exception
    ``observer`` raises is logged, and the event goes on to the listeners.
    """
    emit = emitter.emit

    def emit_observed(name: Any, *args: Any) -> None:
        if name == event and args:
            try:
                observer(args[0])
            except Exception:
                hook_failed(f"observing {event}")
        emit(name, *args)

    emitter.emit = emit_observed


class ParseHandoff:
    """A frame just read and its parse, for the module's ``json.loads`` to take instead of
    parsing the frame again (``json_taking_handoffs``).

    The reader and upstream's parse run with no await in between, so one slot per module is
    enough. The slot holds one ``(frame, parsed)`` pair, stored and read as a whole (sessions
    in other threads may overwrite it), and ``loads`` takes the parse only for that very frame
    object; anything else it parses. Parsing each frame once is what keeps the OpenAI receive
    loop at stock speed: a 6.4 kB audio delta's parse is most of the loop's own work per frame
    (``scripts/bench.py``, receive-loop frame ratio).
    """

    __slots__ = ("pair",)

    def __init__(self) -> None:
        self.pair: tuple[Any, Any] | None = None

    def loads(self, s: Any, **kwargs: Any) -> Any:
        # json.loads takes only keywords after ``s``; the receive loops pass none
        pair = self.pair
        if pair is not None and pair[0] is s and not kwargs:
            self.pair = None
            return pair[1]
        return json.loads(s, **kwargs)


def json_taking_handoffs() -> types.ModuleType:
    """``json`` for an upstream module: the real one, except ``loads`` takes a handed-over
    parse (the stand-in's ``handoff``)."""
    stand_in = types.ModuleType("json", json.__doc__)
    vars(stand_in).update({k: v for k, v in vars(json).items() if not k.startswith("__")})
    handoff = ParseHandoff()
    stand_in.loads = handoff.loads  # type: ignore[attr-defined]
    stand_in.handoff = handoff  # type: ignore[attr-defined]
    return stand_in


def set_field(model: Any, name: str, value: Any) -> None:
    """Set a field of a pydantic model as its ``__setattr__`` does for a model without
    assignment validation (``UserInputTranscribedEvent``), minus the dispatch: measured with
    timeit on pydantic 2.14, the three identity fields cost 170-320 ns this way against
    670-1,240 ns through ``setattr``, on each user transcript."""
    model.__dict__[name] = value
    model.__pydantic_fields_set__.add(name)
