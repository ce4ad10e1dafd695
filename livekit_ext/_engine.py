"""The engine: features, and deciding, applying, reverting and reporting them.

Each feature is atomic: it probes the installed livekit, installs its wrappers through a
:class:`~livekit_ext._wrapping.Patcher`, and if anything fails half-way the patcher undoes
what was done, so a feature is either fully applied or not at all. How wrapping is done is
``_wrapping``'s business; this module holds no wrapping code.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import ClassVar, Literal

from . import _compat
from ._imports import is_imported, when_imported
from ._touchpoints import Touchpoint, missing
from ._wrapping import ACTIVE, Patcher

logger = logging.getLogger("livekit_ext")

State = Literal["native", "patched", "unsupported", "disabled"]
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


class Feature(ABC):
    """One feature, one module: probe what the installed livekit has, then install.

    A feature is decided when its ``trigger`` module is imported by the application (at once
    if it already is): its ``touchpoints`` are checked, then ``probe()``, then ``install()``.
    ``parts`` name later modules (a plugin) whose share of the feature is installed by the
    named method when they are imported. ``requires`` names features that must be in effect
    (patched or native) first; the engine orders, applies and reverts them together.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    touchpoints: ClassVar[tuple[Touchpoint, ...]] = ()
    """Every upstream object the feature touches (checked before ``probe()``, and by the
    sweep on every release); ``install()`` hands these very declarations to the patcher."""
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
        self._patchers = ACTIVE  # the features in effect: read by every wrapper
        self._decided: dict[str, FeatureStatus] = {}
        self._wanted: set[str] = set()
        self._off_reason = "not applied; call livekit_ext.apply()"
        self._verdict: _compat.Verdict | None = None

    def register(self, feature: Feature) -> None:
        unknown = [dep for dep in feature.requires if dep not in self._features]
        if unknown:
            raise ValueError(f"{feature.name} requires unregistered feature(s) {unknown}")
        self._features[feature.name] = feature

    def features(self) -> list[Feature]:
        """The registered features, requirements first (the sweep reads their touchpoints)."""
        return list(self._features.values())

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
        lacking = missing(feature.touchpoints, is_imported)
        if lacking:
            named = "; ".join(f"{tp} ({tp.why})" for tp in lacking)
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


# module state: the features and their patches are process-wide, like the modules they patch
ENGINE = _Engine()
