"""Per-object state: the one way a feature keeps what it knows of an upstream object.

Each feature defines its own state type and declares where it lives::

    SEGMENTS = Attached("utterance_segments", _Opted)   # one _Opted per AgentSession
    SEGMENTS.of(session)                                # created on first use

The state is an attribute of the object it describes, not the value of a module-level map:
a lookup is one attribute read (several run per upstream event), it dies with its object,
and it may hold its object in turn (``Utterances`` holds its session) without keeping it
alive: that is a cycle the collector frees, where a weakly keyed map's value holding its key
would never be freed. Nothing else in the package keeps per-session state.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
V = TypeVar("V")

MAX_TRACKED_ITEMS = 512
"""How many utterances a per-session map remembers (the newest)."""


class Attached(Generic[T]):
    """One feature's state of one kind of upstream object, kept on each object."""

    def __init__(self, name: str, new: Callable[[], T]) -> None:
        self.attr = f"_livekit_ext_{name}"
        """The attribute holding the state; hot wrappers read it with ``getattr`` inline."""
        self._new = new
        self._owners: weakref.WeakSet[Any] = weakref.WeakSet()

    def of(self, owner: Any) -> T:
        """``owner``'s state, created on first use."""
        state: T | None = getattr(owner, self.attr, None)
        if state is None:
            state = self._new()
            setattr(owner, self.attr, state)
            self._owners.add(owner)
        return state

    def get(self, owner: Any) -> T | None:
        """``owner``'s state if it has one (never creates it)."""
        return getattr(owner, self.attr, None)

    def owners(self) -> list[Any]:
        """The live objects that have this state (revert() and the soak walk them)."""
        return list(self._owners)

    def __len__(self) -> int:
        return len(self._owners)


class BoundedMap(OrderedDict[str, V]):
    """An insertion-ordered map that forgets its oldest entries past a fixed size."""

    def __init__(self, limit: int = MAX_TRACKED_ITEMS) -> None:
        super().__init__()
        self._limit = limit

    def __setitem__(self, key: str, value: V) -> None:
        super().__setitem__(key, value)
        if len(self) > self._limit:  # one entry in, at most one out
            self.popitem(last=False)
