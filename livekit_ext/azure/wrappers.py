"""Azure realtime, the wrappers: each acts only where the installed release has the gap it
fixes (``gaps.needed``), and otherwise calls upstream's original as it is."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from typing import Any

from .._state import Attached
from .._wrapping import hook_errors_logged, when_active
from .probes import needed
from .wire import (
    FORWARDED_EVERY_TIME,
    LOCATION_ARGS,
    NULLABLE,
    add_flat_nulls,
    plan_with_azure,
    to_v1,
)

logger = logging.getLogger("livekit_ext")

FEATURE = "azure_explicit_nulls"


class _Update:
    """While a model forwards ``update_options`` to its sessions (a synchronous loop): the
    settings the caller gave, and the model's options with the value each nullable one had
    before the call. Kept on the model; its sessions read it through ``_realtime_model``."""

    __slots__ = ("before", "given")

    def __init__(self) -> None:
        self.given: frozenset[str] | None = None
        self.before: tuple[Any, dict[str, Any]] | None = None


UPDATES: Attached[_Update] = Attached("azure_update", _Update)


@when_active(FEATURE)
def with_azure(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """1.4: GA (or no) api-version -> the GA model; preview api-version -> Beta that keeps None."""
    if not needed("route_with_azure"):
        return wrapped(*args, **kwargs)
    plan: tuple[bool, dict[str, Any]] | None = None
    with hook_errors_logged("routing RealtimeModel.with_azure"):
        plan = plan_with_azure(kwargs)
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
    options = {k: v for k, v in kwargs.items() if k not in LOCATION_ARGS}
    for name in NULLABLE:  # not given: the Azure defaults upstream filled in
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
def azure_v1_url(
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
            url = to_v1(url, str(given["url"]), given.get("azure_deployment"))
    return url


@when_active(FEATURE)
def flat_session_update(
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


@when_active(FEATURE)
def model_update_options(
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
                {name: getattr(opts, name) for name in NULLABLE if name in given},
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
def session_update_options(
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
                name: NOT_GIVEN if name in FORWARDED_EVERY_TIME and name not in given else value
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
