"""Azure realtime: ``input_audio_transcription=None`` / ``turn_detection=None`` mean *off*.

Users who run their own STT or turn detection turn the model's off. Upstream gets this
wrong on Azure in several release-specific ways, each fixed here by wrapping the upstream
function where the ``None`` is lost:

- 1.4.x: ``with_azure`` always builds the preview (Beta) model, which rejects ``None``; GA
  api-versions (and no api-version at all) are routed to the GA model, and preview
  api-versions accept ``None``. Without an api-version the GA model connects to
  ``/openai/v1/realtime?model=<deployment>``, as later releases do.
- 1.4.x: the GA session re-sends every audio-input setting on each ``update_options``, so
  settings the user did not touch go out again (as ``null`` when unset); only what the
  caller gave is forwarded.
- 1.5.x and later, with an ``api_version`` (the legacy flat wire shape): the conversion to
  the flat shape drops ``None``, so Azure keeps its defaults; a user-requested ``None``
  becomes an explicit ``null`` again.
- 1.5.1 and 1.5.2: every Azure ``session.update`` is flattened, also without an api-version,
  where the endpoint (``/openai/v1/realtime``) speaks GA; there upstream builds the GA shape,
  as it does from 1.5.3 on.
- up to 1.7.x: ``update_options(input_audio_transcription=...)`` leaves
  ``capabilities.user_transcription`` stale; it follows the option (as 1.8 does natively).
- 1.5.1 to 1.5.6: a session keeps no options of its own and diffs ``update_options`` against
  its model's, which the model has already updated when it forwards the call: a mid-session
  ``model.update_options(input_audio_transcription=None)`` sends no ``session.update`` at all.
  For the call, the session sees the settings the caller gave as they were before it.

The GA shape without an api-version already sends explicit nulls; it is left alone.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

from ._registry import (
    Feature,
    FeatureStatus,
    Patcher,
    Probe,
    Wrapper,
    hook_errors_logged,
    when_active,
)

logger = logging.getLogger("livekit_ext")

FEATURE = "azure_explicit_nulls"

FIRST_GA_API_VERSION = "2025-08-28"
"""The first Azure api-version of the GA realtime protocol; later dated versions are GA too."""

_PROBE_ENDPOINT = "https://probe.invalid"
_PROBE_DEPLOYMENT = "livekit-ext-probe"

# GA field of ``session.audio.input`` -> its name in the legacy flat ``session``
_FLAT_NAMES = {
    "transcription": "input_audio_transcription",
    "turn_detection": "turn_detection",
}
# what with_azure's arguments are called, and which the caller can switch off with None
_NULLABLE = ("input_audio_transcription", "turn_detection")
# with_azure arguments that only locate and authenticate the deployment
_LOCATION_ARGS = (
    "azure_deployment",
    "azure_endpoint",
    "api_version",
    "api_key",
    "entra_token",
    "base_url",
)
# audio-input settings a 1.4 model forwards to its sessions on every update_options
_FORWARDED_EVERY_TIME = (
    "turn_detection",
    "input_audio_transcription",
    "input_audio_noise_reduction",
)

_GIVEN_BY_CALLER: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar(
    "livekit_ext_azure_given", default=None
)
# while a model forwards update_options to its sessions: its options object, and the value
# each nullable setting the caller gave had before the call
_BEFORE_UPDATE: contextvars.ContextVar[tuple[Any, dict[str, Any]] | None] = contextvars.ContextVar(
    "livekit_ext_azure_before_update", default=None
)


def is_ga_api_version(api_version: str) -> bool:
    """Whether an Azure api-version speaks the GA realtime protocol (dated, not a preview)."""
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(.*)", api_version.strip())
    if match is None or "preview" in match.group(2).lower():
        return False
    return match.group(1) >= FIRST_GA_API_VERSION


# -- what the installed plugin has ------------------------------------------------------------


@dataclass(frozen=True)
class _Plugin:
    """The installed OpenAI realtime classes and the module the GA engine lives in."""

    model: Any  # typed loosely: the classes differ per release, probes read private attributes
    session: Any
    beta_model: Any
    engine: ModuleType

    @classmethod
    def load(cls) -> _Plugin:
        from livekit.plugins.openai import realtime

        session = realtime.RealtimeSession
        return cls(
            model=realtime.RealtimeModel,
            session=session,
            beta_model=getattr(realtime, "RealtimeModelBeta", None),
            engine=sys.modules[session.__module__],
        )


@dataclass
class _Findings:
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


def _with_azure_handles_none(plugin: _Plugin) -> bool:
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


def _azure_v1_url_native(plugin: _Plugin) -> bool:
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


def _flat_shape_drops_none(plugin: _Plugin) -> bool:
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
    return any(body.get(name, "absent") is not None for name in _FLAT_NAMES.values())


def _session_resends_untouched(plugin: _Plugin) -> bool:
    """Does the GA session send again settings the caller did not touch?

    The model forwards every audio-input setting to its sessions on each ``update_options``;
    a session that does not diff them against its options re-sends them all (1.4.x, 1.5.0).
    The diff arrived together with upstream's flat-shape converter (1.5.1, checked on every
    release by ``scripts/sweep.py``'s table): detected by what the engine module has, the way
    sentry detects an API by import, since a session cannot be probed without connecting.
    """
    return not hasattr(plugin.engine, "_oai_session_to_azure")


def _sessions_diff_against_model_options(plugin: _Plugin) -> bool:
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


def _flattens_without_api_version(plugin: _Plugin) -> bool:
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


_PROBING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "livekit_ext_azure_probing", default=False
)
_gaps_found: _Findings | Exception | None = None


def gaps() -> _Findings:
    """What the installed release gets wrong, probed once on first use (not at import).

    Probing builds the openai realtime session types (~40 ms of pydantic schema building the
    first realtime session would otherwise pay); it runs the first time it matters: the first
    ``with_azure``/``update_options``/``session.update``, or ``status()``. A probe that fails
    fails for good: the wrappers then leave everything to upstream and ``status()`` says
    "unsupported (probe failed: ...)".
    """
    global _gaps_found
    if _gaps_found is None:
        token = _PROBING.set(True)  # our own wrappers pass probe calls straight through
        try:
            _gaps_found = find_gaps()
        except Exception as e:
            logger.error("livekit_ext: probing the Azure realtime plugin failed: %r", e)
            _gaps_found = e
        finally:
            _PROBING.reset(token)
    if isinstance(_gaps_found, Exception):
        raise _gaps_found
    return _gaps_found


def _needed(gap: str) -> bool:
    """Whether a wrapper must act: not while probing, and only for a gap the release has."""
    if _PROBING.get():
        return False
    try:
        return bool(getattr(gaps(), gap))
    except Exception:
        return False  # logged once, when the probe failed


def find_gaps() -> _Findings:
    """Probe the installed plugin (no network, no event loop): by behaviour where a real object
    shows it, else by the names upstream's session code reads (a session must connect)."""
    plugin = _Plugin.load()
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
    found = _Findings()
    for gap, present, reason in probed:
        if present:
            setattr(found, gap, True)
            found.reasons.append(reason)
    return found


# -- wrappers ---------------------------------------------------------------------------------


def _placeholders() -> dict[str, Any]:
    """Preview-typed stand-ins that pass 1.4's with_azure checks; replaced right after."""
    from openai.types.beta.realtime.session import InputAudioTranscription, TurnDetection

    return {
        "input_audio_transcription": InputAudioTranscription(model="whisper-1"),
        "turn_detection": TurnDetection(type="server_vad"),
    }


@when_active(FEATURE)
def _with_azure(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """1.4: GA (or no) api-version -> the GA model; preview api-version -> Beta that keeps None."""
    if not _needed("route_with_azure"):
        return wrapped(*args, **kwargs)
    plan: tuple[bool, dict[str, Any]] | None = None
    with hook_errors_logged("routing RealtimeModel.with_azure"):
        plan = _plan_with_azure(kwargs)
    if plan is None:
        return wrapped(*args, **kwargs)
    ga, checked_kwargs = plan
    if not ga and checked_kwargs is kwargs:
        return wrapped(*args, **kwargs)  # a preview call with nothing to fix: untouched
    # upstream still resolves and checks credentials, endpoint and base_url: its errors are
    # the user's to see. Only our stand-ins differ from the caller's arguments.
    resolved = wrapped(*args, **checked_kwargs)
    try:
        if ga:
            return _build_ga_model(instance, resolved, kwargs)
        _restore_nones(resolved, kwargs)
        return resolved
    except Exception:
        logger.exception("livekit_ext: with_azure's None settings not applied; upstream decides")
        return wrapped(*args, **kwargs)


def _plan_with_azure(kwargs: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """(build the GA model?, the arguments upstream's with_azure can check)."""
    api_version = kwargs.get("api_version") or os.getenv("OPENAI_API_VERSION")
    ga = api_version is None or is_ga_api_version(api_version)
    stand_ins = _placeholders()
    if ga:
        # any GA-typed config (or None) would fail the preview checks: stand in for all of them
        checked = {**kwargs, "api_version": api_version or FIRST_GA_API_VERSION}
        for name in _NULLABLE:
            if name in kwargs:
                checked[name] = stand_ins[name]
        if "input_audio_noise_reduction" in kwargs:
            checked["input_audio_noise_reduction"] = None
        return True, checked
    nones = [name for name in _NULLABLE if name in kwargs and kwargs[name] is None]
    if not nones:
        return False, kwargs
    return False, {**kwargs, **{name: stand_ins[name] for name in nones}}


def _build_ga_model(instance: Any, resolved: Any, kwargs: dict[str, Any]) -> Any:
    """The GA model, located and authenticated exactly as upstream resolved it."""
    from livekit.plugins.openai import realtime

    ga_cls = (
        instance
        if isinstance(instance, type) and issubclass(instance, realtime.RealtimeModel)
        else realtime.RealtimeModel
    )
    opts = resolved._opts
    api_version = kwargs.get("api_version") or os.getenv("OPENAI_API_VERSION")
    options = {k: v for k, v in kwargs.items() if k not in _LOCATION_ARGS}
    for name in _NULLABLE:  # not given: the Azure defaults upstream filled in
        options.setdefault(name, getattr(opts, name))
    options.setdefault("input_audio_noise_reduction", None)
    logger.debug(
        "livekit_ext: with_azure(api_version=%r) builds the GA %s", api_version, ga_cls.__name__
    )
    return ga_cls(
        azure_deployment=opts.azure_deployment,
        api_key=opts.api_key,
        entra_token=opts.entra_token,
        api_version=api_version,
        base_url=opts.base_url,
        **options,
    )


def _restore_nones(model: Any, kwargs: dict[str, Any]) -> None:
    """Undo the stand-ins on the preview model: the options and capabilities say off."""
    if kwargs.get("input_audio_transcription", ...) is None:
        model._opts.input_audio_transcription = None
        model._capabilities.user_transcription = False
    if kwargs.get("turn_detection", ...) is None:
        model._opts.turn_detection = None
        model._capabilities.turn_detection = False


@when_active(FEATURE)
def _azure_v1_url(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """1.4: Azure without api-version is the GA ``/openai/v1/realtime?model=<deployment>``."""
    url = wrapped(*args, **kwargs)
    if not _needed("v1_url"):
        return url
    with hook_errors_logged("choosing the Azure GA realtime path"):
        call = inspect.signature(wrapped).bind(*args, **kwargs)
        call.apply_defaults()
        given = call.arguments
        if given.get("is_azure") and not given.get("api_version"):
            url = _to_v1(url, str(given["url"]), given.get("azure_deployment"))
    return url


def _module_function_wrapper(original: Callable[..., Any], wrapper: Wrapper) -> Callable[..., Any]:
    """A module-level function that hands each call to ``wrapper`` with ``instance=None``.

    Module functions have no ``self``: built here rather than by ``Patcher.wrap``, whose
    wrappers are shaped for class attributes.
    """

    @functools.wraps(original)
    def patched(*args: Any, **kwargs: Any) -> Any:
        return wrapper(original, None, args, kwargs)

    return patched


def _to_v1(url: str, base_url: str, deployment: str | None) -> str:
    base_path = urlparse(base_url).path.rstrip("/")
    if base_path not in ("", "/openai", "/openai/v1"):
        return url  # the caller gave a full path: theirs
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    query.pop("deployment", None)
    if deployment and "model" not in query:
        query["model"] = [deployment]
    path = "/v1/realtime" if base_path == "" else "/openai/v1/realtime"
    return urlunparse((parsed.scheme, parsed.netloc, path, "", urlencode(query, doseq=True), ""))


@when_active(FEATURE)
def _flat_session_update(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """1.5+: the flat (api-version) shape keeps each ``None`` the GA session set explicitly.
    1.5.1, 1.5.2: without an api-version the GA shape is built, by upstream's own GA branch."""
    event = wrapped(*args, **kwargs)
    if isinstance(event, dict) and _needed("ga_shape_without_api_version"):
        opts: Any = None
        with hook_errors_logged("choosing the GA shape for Azure without api-version"):
            # the options the session reads: its own from 1.5.7, its model's before
            own = vars(instance).get("_opts")
            opts = own if own is not None else instance._realtime_model._opts
            if opts.api_version or not opts.is_azure:
                opts = None
        if opts is not None:
            opts.is_azure = False  # for this call only: the branch upstream takes for GA
            try:
                return wrapped(*args, **kwargs)
            finally:
                opts.is_azure = True
    if not _needed("flat_nulls"):
        return event
    with hook_errors_logged("adding explicit nulls to an Azure session.update"):
        if isinstance(event, dict):  # upstream returns the flat shape as a dict, GA as a model
            session = kwargs["session"] if "session" in kwargs else args[1]
            add_flat_nulls(event, session)
    return event


def add_flat_nulls(event: dict[str, Any], session: Any) -> None:
    """Set ``null`` in the flat body for every GA audio-input setting explicitly set to None."""
    audio_input = getattr(getattr(session, "audio", None), "input", None)
    if audio_input is None:
        return
    body = event.setdefault("session", {})
    for ga_name, flat_name in _FLAT_NAMES.items():
        if ga_name in audio_input.model_fields_set and getattr(audio_input, ga_name) is None:
            body[flat_name] = None


@when_active(FEATURE)
def _model_update_options(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Remember what the caller gave and what it replaces (for the sessions), and keep
    capabilities in step."""
    if not (
        _needed("only_given_updates")
        or _needed("sync_user_transcription")
        or _needed("rewind_model_options")
    ):
        return wrapped(*args, **kwargs)
    given: frozenset[str] = frozenset()
    token: contextvars.Token[frozenset[str] | None] | None = None
    before: contextvars.Token[tuple[Any, dict[str, Any]] | None] | None = None
    with hook_errors_logged("reading update_options arguments"):
        from livekit.agents.utils import is_given

        given = frozenset(name for name, value in kwargs.items() if is_given(value))
        token = _GIVEN_BY_CALLER.set(given)
        if _needed("rewind_model_options"):
            opts = instance._opts
            old = {name: getattr(opts, name) for name in _NULLABLE if name in given}
            before = _BEFORE_UPDATE.set((opts, old))
    try:
        result = wrapped(*args, **kwargs)
    finally:
        if before is not None:
            _BEFORE_UPDATE.reset(before)
        if token is not None:
            _GIVEN_BY_CALLER.reset(token)
    with hook_errors_logged("updating capabilities.user_transcription"):
        if "input_audio_transcription" in given:
            transcribing = instance._opts.input_audio_transcription is not None
            instance._capabilities.user_transcription = transcribing
    return result


@when_active(FEATURE)
def _session_update_options(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """1.4 GA: a setting the caller did not touch is not sent again (no nulls out of nowhere).
    1.5.1 to 1.5.6: the session diffs against the settings as they were before the call."""
    given = _GIVEN_BY_CALLER.get()
    if given is not None and _needed("only_given_updates"):
        with hook_errors_logged("dropping untouched settings from update_options"):
            from livekit.agents.types import NOT_GIVEN

            kwargs = {
                name: NOT_GIVEN if name in _FORWARDED_EVERY_TIME and name not in given else value
                for name, value in kwargs.items()
            }
    before = _BEFORE_UPDATE.get()
    if before is None or not before[1] or "_opts" in vars(instance):
        return wrapped(*args, **kwargs)  # the session diffs against options of its own
    opts, old = before
    current: dict[str, Any] = {}
    with hook_errors_logged("showing the session the settings before update_options"):
        current = {name: getattr(opts, name) for name in old}
        for name, value in old.items():
            setattr(opts, name, value)
    try:
        return wrapped(*args, **kwargs)
    finally:
        # the session stores what it was given; the model's own value stands either way
        with hook_errors_logged("restoring the model's settings after update_options"):
            for name, value in current.items():
                setattr(opts, name, value)


# -- the feature ------------------------------------------------------------------------------


class AzureExplicitNulls(Feature):
    name = FEATURE
    description = (
        "with_azure(..., input_audio_transcription=None / turn_detection=None) works on GA and "
        "preview api-versions and sends explicit nulls on the wire"
    )
    trigger = "livekit.plugins.openai"
    distribution = "livekit-plugins-openai"

    def probe(self) -> Probe:
        try:
            _Plugin.load()
        except ImportError as e:
            return Probe("unsupported", f"livekit-plugins-openai realtime is not importable: {e}")
        return Probe("patchable", "wrappers act only where the installed release loses a None")

    def install(self, patcher: Patcher) -> None:
        """Wrap every place a ``None`` can be lost; each wrapper acts only for a real gap."""
        plugin = _Plugin.load()
        patcher.wrap(plugin.model, "with_azure", _with_azure)
        original = vars(plugin.engine)["process_base_url"]
        patcher.replace(
            plugin.engine, "process_base_url", _module_function_wrapper(original, _azure_v1_url)
        )
        if hasattr(plugin.session, "_wrap_session_update"):
            patcher.wrap(plugin.session, "_wrap_session_update", _flat_session_update)
        patcher.wrap(plugin.model, "update_options", _model_update_options)
        if plugin.beta_model is not None:
            patcher.wrap(plugin.beta_model, "update_options", _model_update_options)
        patcher.wrap(plugin.session, "update_options", _session_update_options)

    def settle(self, applied: FeatureStatus) -> FeatureStatus:
        """Native when the installed release has none of the gaps, applied or not (the probe
        is behaviour, run on first use); else, once applied, what the wrappers fix."""
        found = gaps()
        if not found.any:
            return FeatureStatus(
                "native",
                "with_azure accepts None on GA deployments and every session.update keeps it",
            )
        if applied.state != "patched":
            return applied
        return FeatureStatus("patched", "; ".join(found.reasons))
