"""Azure realtime, the probes: which of upstream's release-specific gaps the installed
plugin has (each one is a part of the ``azure_explicit_nulls`` patch).

Behaviour where a real object shows it (``with_azure``, ``process_base_url``, upstream's own
flat-shape converter), else the names upstream's session code reads (a session cannot be
built without connecting). Probed once, on first use, not at import.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlparse

from .._state import Attached

logger = logging.getLogger("livekit_ext")

_PROBE_ENDPOINT = "https://probe.invalid"
_PROBE_DEPLOYMENT = "livekit-ext-probe"

FLAT_NAMES: Mapping[str, str] = {
    "transcription": "input_audio_transcription",
    "turn_detection": "turn_detection",
}
"""GA field of ``session.audio.input`` -> its name in the legacy flat ``session``."""


@dataclass(frozen=True)
class Plugin:
    """The installed OpenAI realtime classes and the module the GA engine lives in."""

    model: Any  # typed loosely: the classes differ per release, probes read private attributes
    session: Any
    beta_model: Any
    engine: ModuleType

    @classmethod
    def load(cls) -> Plugin:
        from livekit.plugins.openai import realtime

        session = realtime.RealtimeSession
        return cls(
            model=realtime.RealtimeModel,
            session=session,
            beta_model=getattr(realtime, "RealtimeModelBeta", None),
            engine=sys.modules[session.__module__],
        )


@dataclass
class Findings:
    """Which upstream gaps the installed release has; each one is a part of the patch."""

    route_with_azure: bool = False
    v1_url: bool = False
    flat_nulls: bool = False
    only_given_updates: bool = False
    sync_user_transcription: bool = False
    rewind_model_options: bool = False
    ga_shape_without_api_version: bool = False
    reasons: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return (
            self.route_with_azure
            or self.v1_url
            or self.flat_nulls
            or self.only_given_updates
            or self.sync_user_transcription
            or self.rewind_model_options
            or self.ga_shape_without_api_version
        )


@contextmanager
def _quiet(module: ModuleType) -> Iterator[None]:
    """Hide the plugin's api_version deprecation warnings while we probe (not the user's call)."""
    plugin_logger = getattr(module, "logger", None)
    if not isinstance(plugin_logger, logging.Logger):
        yield
        return

    def drop(record: logging.LogRecord) -> bool:
        return "api_version" not in record.getMessage().lower()

    plugin_logger.addFilter(drop)
    try:
        yield
    finally:
        plugin_logger.removeFilter(drop)


def _with_azure_handles_none(plugin: Plugin) -> bool:
    """Does ``with_azure`` build the GA model and keep ``None`` (no api-version given)?"""
    try:
        with _quiet(plugin.engine):
            model = plugin.model.with_azure(
                azure_deployment=_PROBE_DEPLOYMENT,
                azure_endpoint=_PROBE_ENDPOINT,
                api_key="probe",
                input_audio_transcription=None,
                turn_detection=None,
            )
    except ValueError:  # 1.4: "Must provide ... api_version" or "must be an instance of ..."
        return False
    return (
        isinstance(model, plugin.model)
        and model._opts.input_audio_transcription is None
        and model._opts.turn_detection is None
        and not model.capabilities.user_transcription
    )


def _azure_v1_url_native(plugin: Plugin) -> bool:
    """Does an Azure connection without api-version go to ``/openai/v1/realtime?model=``?"""
    url = plugin.engine.process_base_url(
        f"{_PROBE_ENDPOINT}/openai",
        "gpt-realtime",
        is_azure=True,
        azure_deployment=_PROBE_DEPLOYMENT,
        api_version=None,
    )
    parsed = urlparse(url)
    return parsed.path == "/openai/v1/realtime" and parse_qs(parsed.query).get("model") == [
        _PROBE_DEPLOYMENT
    ]


def _flat_shape_drops_none(plugin: Plugin) -> bool:
    """Does the legacy flat conversion lose an explicit ``None``?

    Asked of upstream's own converter, ``_oai_session_to_azure`` (1.5+), with a real GA session
    request; a release without it does not flatten GA sessions (1.4), so loses nothing there.
    """
    convert = getattr(plugin.engine, "_oai_session_to_azure", None)
    if convert is None:
        return False
    from openai.types.realtime import (
        RealtimeAudioConfig,
        RealtimeAudioConfigInput,
        RealtimeSessionCreateRequest,
    )

    request = RealtimeSessionCreateRequest(
        type="realtime",
        audio=RealtimeAudioConfig(
            input=RealtimeAudioConfigInput(transcription=None, turn_detection=None)
        ),
    )
    flat = convert(request)
    body = (
        flat.model_dump(by_alias=True, exclude_unset=True) if hasattr(flat, "model_dump") else flat
    )
    return any(body.get(name, "absent") is not None for name in FLAT_NAMES.values())


def _session_resends_untouched(plugin: Plugin) -> bool:
    """Does the GA session send again settings the caller did not touch?

    The model forwards every audio-input setting to its sessions on each ``update_options``;
    a session that does not diff them against its options re-sends them all (1.4.x, 1.5.0).
    The diff arrived together with upstream's flat-shape converter (1.5.1, checked on every
    release by ``scripts/sweep.py``'s table): detected by what the engine module has, the way
    sentry detects an API by import, since a session cannot be probed without connecting.
    """
    return not hasattr(plugin.engine, "_oai_session_to_azure")


def _sessions_diff_against_model_options(plugin: Plugin) -> bool:
    """Does a session diff ``update_options`` against its model's options (1.5.1 to 1.5.6)?

    The model stores the new value before it forwards the call, so such a session sees no
    change and sends nothing. A session without the diff (1.4.x, 1.5.0, found by the missing
    flat-shape converter as in ``_session_resends_untouched``) sends what it is given; one
    whose constructor gives it options of its own (``self._opts``, 1.5.7+) diffs against
    those. A session cannot be built without connecting, so the constructor is read for the
    attribute it sets; the wrapper checks the real session again before it acts.
    """
    if not hasattr(plugin.engine, "_oai_session_to_azure"):
        return False
    return "_opts" not in _names_read(plugin.session.__init__, default="_opts")


def _flattens_without_api_version(plugin: Plugin) -> bool:
    """Does a session flatten Azure ``session.update``s without an api-version (1.5.1, 1.5.2)?

    Those wrap every Azure session in the legacy flat shape; from 1.5.3 on only when an
    api-version is given. Read from the method, as above: it needs a connected session.
    """
    wrap = getattr(plugin.session, "_wrap_session_update", None)
    return wrap is not None and "api_version" not in _names_read(wrap, default="api_version")


def _names_read(function: Any, default: str) -> frozenset[str]:
    """The attribute and global names upstream's ``function`` uses (under our wrappers);
    ``{default}`` when it has no code to read, so that no gap is assumed."""
    code = getattr(inspect.unwrap(function), "__code__", None)
    return frozenset(code.co_names) if code is not None else frozenset({default})


def _user_transcription_follows_updates(model_cls: Any) -> bool:
    """Does ``capabilities.user_transcription`` follow ``update_options`` (1.7+: yes)?"""
    model = model_cls(api_key="probe")
    model.update_options(input_audio_transcription=None)
    return not model.capabilities.user_transcription


class _Probe:
    """The findings of one engine module, probed once (kept on the module)."""

    __slots__ = ("found", "probing")

    def __init__(self) -> None:
        self.found: Findings | Exception | None = None
        self.probing = False
        """Probing runs our own wrappers, which then pass the probe's calls straight through."""


PROBES: Attached[_Probe] = Attached("azure_gaps", _Probe)


def _probe_state() -> _Probe:
    from livekit.plugins.openai import realtime

    return PROBES.of(sys.modules[realtime.RealtimeSession.__module__])


def gaps() -> Findings:
    """What the installed release gets wrong, probed once on first use (not at import).

    Probing builds the openai realtime session types (~40 ms of pydantic schema building the
    first realtime session would otherwise pay); it runs the first time it matters: the first
    ``with_azure``/``update_options``/``session.update``, or ``status()``. A probe that fails
    fails for good: the wrappers then leave everything to upstream and ``status()`` says
    "unsupported (probe failed: ...)".
    """
    probe = _probe_state()
    if probe.found is None:
        probe.probing = True
        try:
            probe.found = find_gaps()
        except Exception as e:
            logger.error("livekit_ext: probing the Azure realtime plugin failed: %r", e)
            probe.found = e
        finally:
            probe.probing = False
    if isinstance(probe.found, Exception):
        raise probe.found
    return probe.found


def needed(gap: str) -> bool:
    """Whether a wrapper must act: not while probing, and only for a gap the release has."""
    try:
        if _probe_state().probing:
            return False
        return bool(getattr(gaps(), gap))
    except Exception:
        return False  # logged once, when the probe failed


def find_gaps() -> Findings:
    """Probe the installed plugin (no network, no event loop): by behaviour where a real object
    shows it, else by the names upstream's session code reads (a session must connect)."""
    plugin = Plugin.load()
    models = [plugin.model, *([plugin.beta_model] if plugin.beta_model else [])]
    # (gap, whether the release has it, what the patch then does)
    probed = (
        (
            "route_with_azure",
            not _with_azure_handles_none(plugin),
            "with_azure builds the GA model for GA/no api-versions and accepts None",
        ),
        (
            "v1_url",
            not _azure_v1_url_native(plugin),
            "Azure without api-version connects to /openai/v1/realtime?model=",
        ),
        (
            "flat_nulls",
            _flat_shape_drops_none(plugin),
            "the legacy flat session.update carries explicit nulls",
        ),
        (
            "only_given_updates",
            _session_resends_untouched(plugin),
            "update_options sends only the settings the caller gave",
        ),
        (
            "rewind_model_options",
            _sessions_diff_against_model_options(plugin),
            "a mid-session update_options of a setting reaches the wire",
        ),
        (
            "ga_shape_without_api_version",
            _flattens_without_api_version(plugin),
            "Azure without api-version gets the GA session.update shape",
        ),
        (
            "sync_user_transcription",
            not all(_user_transcription_follows_updates(m) for m in models),
            "capabilities.user_transcription follows update_options",
        ),
    )
    found = Findings()
    for gap, present, reason in probed:
        if present:
            setattr(found, gap, True)
            found.reasons.append(reason)
    return found
