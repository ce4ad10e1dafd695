"""Utterance identity in traces: LiveKit's own OpenTelemetry spans carry each user utterance.

With a tracer provider set the way LiveKit documents it
(``livekit.agents.telemetry.set_tracer_provider``), the spans of a user turn carry what the
extension knows of the utterance:

- ``user_speaking`` (and an STT turn's ``user_turn``: the one around it in an STT pipeline, a
  parallel STT's next to a realtime model):
  ``lk.utterance.item_id``, ``lk.utterance.source``, ``lk.utterance.speech_started_at`` /
  ``lk.utterance.speech_stopped_at`` (Unix seconds, the extension's best times) and
  ``lk.utterance.speech_stopped_by`` (what the stop comes from, as ``Utterance.speech_stopped_by``);
  a realtime session's ``user_speaking`` also carries ``lk.pii.user_transcript`` (the final
  transcript).
- the agent turn that answers it (``agent_turn``; 1.8+ also ``realtime_inference``):
  ``lk.utterance.item_id`` of the item it answers, a span link to that utterance's span (the
  one holding its transcript: a realtime ``user_speaking``, an STT ``user_turn``), and for a
  realtime answer ``gen_ai.response.id``.

The attributes go on ``user_speaking`` in one ``set_attributes``, just before it really ends
(the extension stands in for the span's ``end``). A realtime transcript usually arrives after
its ``user_speaking`` ended (OpenAI sends it after
the speech stopped, often after the next one began). Such a span is held open: upstream's
``end(end_time=...)`` is recorded and performed, with the same end time, when the
utterance's final transcript is on it, at most ``HOLD_SECONDS`` later (at most ``MAX_HELD``
spans a session; all at session close). Every attribute is thus set before the span ends,
so LiveKit's own PII filter (1.8+: ``lk.pii.*`` dropped unless PII is allowed) treats ours
exactly as its own. A transcript later than the hold goes on a ``user_transcript`` child of
its utterance's span. A transcript is matched to its span by ``item_id``, never by which span
is open when it arrives.

Nothing of this runs per event until a recording tracer provider is set: the feature wraps
only ``_DynamicTracer.set_provider`` and ``AgentSession.start``, and installs its per-event
hooks (``AgentSession._update_user_state``, ``AgentActivity.on_end_of_turn``, the realtime and
pipeline reply tasks) when a provider is set, or a global OpenTelemetry provider is found at
session start. A provider set back to a NoOp turns them off (they return at once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import _touchpoints as tp
from .._engine import Feature, FeatureStatus, Probe
from .._funnel import IDENTITY
from .._wrapping import ACTIVE, Patcher, hook_errors_logged, install_when_needed, when_active
from . import hooks as _hooks_module
from .hooks import HOOKS
from .spans import ATTR_ITEM_ID, TRACING, book_of, release_everywhere

FEATURE = "utterance_traces"
_TRACES = "livekit.agents.telemetry.traces"

SET_PROVIDER = tp.wrap(
    "a tracer provider is set (set_tracer_provider): the per-event hooks go in",
    f"{_TRACES}:_DynamicTracer.set_provider",
)
TRACER_PROVIDER = tp.attr(
    "the provider LiveKit's spans go to", f"{_TRACES}:_DynamicTracer._tracer_provider"
)
TRACER = tp.call(
    "LiveKit's tracer: a transcript later than the hold gets its own span",
    "livekit.agents.telemetry:tracer",
)
TRACE_TYPES = tp.read(
    "probe: native once upstream names the utterance's id itself",
    "livekit.agents.telemetry:trace_types",
)
SESSION_START = tp.wrap("a session starts: its utterances are followed", f"{tp.SESSION}.start")


def hooks_installed() -> list[str]:
    """The per-event hooks of the feature now in place (none until a provider records)."""
    patcher = ACTIVE.get(FEATURE)
    if patcher is None:
        return []
    return [
        f"{where.owner().__name__}.{where.name}"
        for where, _ in HOOKS
        if patcher.has_wrapped(where.owner(), where.name)
    ]


def _records(provider: Any) -> bool:
    """Whether spans of ``provider`` record (a NoOp or a proxy with no real provider behind it
    does not)."""
    from opentelemetry import trace

    if isinstance(provider, trace.ProxyTracerProvider):
        return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return not isinstance(provider, trace.NoOpTracerProvider)


def _enable() -> None:
    """A recording provider is set: the per-event hooks go in (once) and do their work."""
    for where, build in HOOKS:
        install_when_needed(FEATURE, where, build)
    TRACING.enabled = True


@when_active(FEATURE)
def _on_set_provider(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    result = wrapped(*args, **kwargs)
    with hook_errors_logged("following the tracer provider"):
        from livekit.agents import telemetry

        if instance is telemetry.tracer:
            if _records(instance._tracer_provider):
                _enable()
            else:
                TRACING.enabled = False  # the hooks stay, and return at once
    return result


@when_active(FEATURE)
async def _on_session_start(
    wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
) -> Any:
    with hook_errors_logged("attaching utterance traces to a session"):
        from livekit.agents import telemetry

        if not TRACING.enabled and _records(telemetry.tracer._tracer_provider):
            _enable()  # a global OpenTelemetry provider, set after livekit was imported
        if TRACING.enabled:
            book_of(instance)  # before start: the first speech start is seen
    return await wrapped(*args, **kwargs)


class UtteranceTraces(Feature):
    name = FEATURE
    description = (
        "LiveKit's user_speaking / user_turn / agent_turn spans carry the utterance: item id, "
        "speech start and stop, source, the realtime transcript (lk.pii.), answer links"
    )
    requires = (IDENTITY,)
    touchpoints = (*tp.declared(globals()), *tp.declared(vars(_hooks_module)))

    def probe(self) -> Probe:
        from livekit.agents.telemetry import trace_types

        if any(value == ATTR_ITEM_ID for value in vars(trace_types).values()):
            return Probe("native", f"livekit-agents' spans already carry {ATTR_ITEM_ID}")
        return Probe("patchable", "puts each utterance's identity on LiveKit's spans")

    def install(self, patcher: Patcher) -> None:
        from livekit.agents import telemetry

        for where, _ in HOOKS:  # every hook's target checked now, installed when one records
            where.owner(importing=True)
        patcher.wrap(SET_PROVIDER, _on_set_provider)
        patcher.wrap(SESSION_START, _on_session_start)
        patcher.on_undo(release_everywhere)
        if _records(telemetry.tracer._tracer_provider):
            for where, build in HOOKS:
                patcher.wrap_inline(where, build)
            TRACING.enabled = True

    def settle(self, applied: FeatureStatus) -> FeatureStatus:
        if applied.state != "patched":
            return applied
        if TRACING.enabled:
            return FeatureStatus("patched", f"{applied.reason}; a tracer provider records")
        return FeatureStatus(
            "patched",
            f"{applied.reason}, once a tracer provider is set "
            "(livekit.agents.telemetry.set_tracer_provider); until then nothing runs",
        )
