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

import inspect
import logging
import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

from . import _touchpoints as tp
from ._azure_gaps import FLAT_NAMES, Plugin, gaps, needed
from ._engine import Feature, FeatureStatus, Probe
from ._state import Attached
from ._wrapping import Patcher, hook_errors_logged, when_active

logger = logging.getLogger("livekit_ext")

FEATURE = "azure_explicit_nulls"

FIRST_GA_API_VERSION = "2025-08-28"
"""The first Azure api-version of the GA realtime protocol; later dated versions are GA too."""

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

WITH_AZURE = tp.wrap(
    "route GA/no api-version to the GA model, keep None",
    f"{tp.OPENAI_PLUGIN}:RealtimeModel.with_azure",
)
PROCESS_BASE_URL = tp.replace(
    "Azure without api-version: /openai/v1/realtime?model=",
    *(f"{module}:process_base_url" for module in tp.OPENAI_ENGINES),
)
SESSION_UPDATE_EVENT = tp.wrap(
    "the legacy flat session.update keeps explicit nulls; 1.5.1-1.5.2 (the probe reads "
    "whether it looks at api_version) flatten without an api-version too: GA shape there",
    *tp.engine("RealtimeSession._wrap_session_update"),
    optional=True,
)
MODEL_UPDATE_OPTIONS = tp.wrap(
    "remember what the caller gave; capabilities follow",
    f"{tp.OPENAI_PLUGIN}:RealtimeModel.update_options",
)
BETA_MODEL_UPDATE_OPTIONS = tp.wrap(
    "1.4 preview model: capabilities follow update_options",
    f"{tp.OPENAI_BETA}:RealtimeModelBeta.update_options",
    optional=True,
)
SESSION_UPDATE_OPTIONS = tp.wrap(
    "1.4: send only the settings the caller gave", *tp.engine("RealtimeSession.update_options")
)
SESSION_OPTIONS = tp.attr(
    "the options a session diffs update_options against, its own from 1.5.7; without them "
    "(1.5.1-1.5.6) it diffs against its model's, which the wrapper rewinds for the call",
    *tp.engine("RealtimeSession._opts"),
    optional=True,
)
SESSION_INIT = tp.read(
    "probe: does the session's constructor give it options of its own (self._opts)",
    *tp.engine("RealtimeSession.__init__"),
)
SESSION_MODEL = tp.attr(
    "the model whose options a session without its own reads (1.5.1-1.5.6)",
    *tp.engine("RealtimeSession._realtime_model"),
)
MODEL_OPTIONS = tp.attr("the model's options (None means off)", *tp.engine("RealtimeModel._opts"))
CAPABILITIES = tp.attr(
    "the model's capabilities (user_transcription, turn_detection)",
    *tp.engine("RealtimeModel._capabilities"),
)
FLAT_CONVERTER = tp.call(
    "probe: does upstream's flat conversion keep an explicit None",
    *(f"{module}:_oai_session_to_azure" for module in tp.OPENAI_ENGINES),
    optional=True,
)


class _Update:
    """While a model forwards ``update_options`` to its sessions (a synchronous loop): the
    settings the caller gave, and the model's options with the value each nullable one had
    before the call. Kept on the model; its sessions read it through ``_realtime_model``."""

    __slots__ = ("before", "given")

    def __init__(self) -> None:
        self.given: frozenset[str] | None = None
        self.before: tuple[Any, dict[str, Any]] | None = None


UPDATES: Attached[_Update] = Attached("azure_update", _Update)


def is_ga_api_version(api_version: str) -> bool:
    """Whether an Azure api-version speaks the GA realtime protocol (dated, not a preview)."""
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(.*)", api_version.strip())
    if match is None or "preview" in match.group(2).lower():
        return False
    return match.group(1) >= FIRST_GA_API_VERSION


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
    if not needed("route_with_azure"):
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
    if not needed("v1_url"):
        return url
    with hook_errors_logged("choosing the Azure GA realtime path"):
        call = inspect.signature(wrapped).bind(*args, **kwargs)
        call.apply_defaults()
        given = call.arguments
        if given.get("is_azure") and not given.get("api_version"):
            url = _to_v1(url, str(given["url"]), given.get("azure_deployment"))
    return url


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
    if isinstance(event, dict) and needed("ga_shape_without_api_version"):
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
    if not needed("flat_nulls"):
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
    for ga_name, flat_name in FLAT_NAMES.items():
        if ga_name in audio_input.model_fields_set and getattr(audio_input, ga_name) is None:
            body[flat_name] = None


@when_active(FEATURE)
def _model_update_options(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Remember what the caller gave and what it replaces (for the sessions), and keep
    capabilities in step."""
    if not (
        needed("only_given_updates")
        or needed("sync_user_transcription")
        or needed("rewind_model_options")
    ):
        return wrapped(*args, **kwargs)
    given: frozenset[str] = frozenset()
    update = UPDATES.of(instance)
    outer = update.given, update.before
    with hook_errors_logged("reading update_options arguments"):
        from livekit.agents.utils import is_given

        given = frozenset(name for name, value in kwargs.items() if is_given(value))
        update.given = given
        if needed("rewind_model_options"):
            opts = instance._opts
            update.before = (
                opts,
                {name: getattr(opts, name) for name in _NULLABLE if name in given},
            )
    try:
        result = wrapped(*args, **kwargs)
    finally:
        update.given, update.before = outer
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
    update = UPDATES.get(getattr(instance, "_realtime_model", None))
    given = update.given if update is not None else None
    if given is not None and needed("only_given_updates"):
        with hook_errors_logged("dropping untouched settings from update_options"):
            from livekit.agents.types import NOT_GIVEN

            kwargs = {
                name: NOT_GIVEN if name in _FORWARDED_EVERY_TIME and name not in given else value
                for name, value in kwargs.items()
            }
    before = update.before if update is not None else None
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
    touchpoints = tp.declared(globals())

    def probe(self) -> Probe:
        try:
            Plugin.load()
        except ImportError as e:
            return Probe("unsupported", f"livekit-plugins-openai realtime is not importable: {e}")
        return Probe("patchable", "wrappers act only where the installed release loses a None")

    def install(self, patcher: Patcher) -> None:
        """Wrap every place a ``None`` can be lost; each wrapper acts only for a real gap."""
        plugin = Plugin.load()  # the classes the plugin exports, wherever they are defined
        patcher.wrap(WITH_AZURE, _with_azure, on=plugin.model)
        patcher.wrap_function(PROCESS_BASE_URL, _azure_v1_url, on=plugin.engine)
        if hasattr(plugin.session, SESSION_UPDATE_EVENT.name):
            patcher.wrap(SESSION_UPDATE_EVENT, _flat_session_update, on=plugin.session)
        patcher.wrap(MODEL_UPDATE_OPTIONS, _model_update_options, on=plugin.model)
        if plugin.beta_model is not None:
            patcher.wrap(BETA_MODEL_UPDATE_OPTIONS, _model_update_options, on=plugin.beta_model)
        patcher.wrap(SESSION_UPDATE_OPTIONS, _session_update_options, on=plugin.session)

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
