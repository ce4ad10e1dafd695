"""The funnel: ``AgentSession._user_input_transcribed``, which every user transcript passes once.

``transcript_identity`` installs it. Each upstream handler that emits user transcripts tells
the session where they were born (``run_born``: the realtime model, an STT, which item); the
funnel enriches each event from that, then hands it to the session's listeners.

Other features plug in here, for one session only, instead of wrapping the funnel again or
the session's ``emit`` (which every session event would pay): a *stamper* sees the event
before it is enriched (parallel STT names an STT transcript upstream emits itself), an
*observer* sees it once enriched, before the session's listeners (``Utterances``, the
transcript log). Sessions with none pay nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple, Protocol

from ._state import Attached
from ._wrapping import ACTIVE, hook_failed, is_wrapper, observe_before_listeners, set_field

logger = logging.getLogger("livekit_ext")

IDENTITY = "transcript_identity"
"""The feature that installs the funnel."""
Source = Literal["realtime", "stt"]
Stamper = Callable[[Any], None]
Observer = Callable[[Any], None]


class SpeechStarts(Protocol):
    """What knows the speech starts of a source's utterances, and settles a new one."""

    @property
    def starts(self) -> Mapping[str, float]: ...

    def start_of(self, item_id: str, first_seen: float) -> float: ...


class Origin(NamedTuple):
    """Where the transcripts now passing through the funnel were born."""

    source: Source
    speech: SpeechStarts
    item_id: str | None = None
    resolve_item: Callable[[], str | None] | None = None
    """Names the item when ``item_id`` is None (an STT turn's id, made at its first words)."""


class FunnelState:
    """One session at the funnel: its hooks, and where its current transcripts were born."""

    __slots__ = (
        "observers",
        "origin",
        "set_up",
        "stampers",
        "started_patched",
        "warned_unpatched",
    )

    def __init__(self) -> None:
        self.stampers: tuple[Stamper, ...] = ()
        self.observers: tuple[Observer, ...] = ()
        self.origin: Origin | None = None
        """Set around the upstream handler that emits them (``run_born``): upstream calls the
        funnel synchronously from it, in every release. Kept per session, not in a
        ContextVar: the tasks and timers the handler starts copy the context, and would keep
        an origin alive and hand it to whatever they emit later."""
        self.started_patched = False
        """``session.start()`` ran while transcript identity was in effect."""
        self.set_up = False
        """The funnel's ``set_up`` ran for the session (at its first transcript, at the latest)."""
        self.warned_unpatched = False


FUNNEL: Attached[FunnelState] = Attached("funnel", FunnelState)
_STATE = FUNNEL.attr  # read inline where the funnel's state is looked up per transcript


def carries(session: Any) -> bool:
    """Whether ``session``'s transcripts pass our funnel (else: observe its ``emit``)."""
    return IDENTITY in ACTIVE and is_wrapper(
        getattr(type(session), "_user_input_transcribed", None)
    )


def add_stamper(session: Any, stamper: Stamper) -> Callable[[], None]:
    state = FUNNEL.of(session)
    state.stampers = (*state.stampers, stamper)
    return lambda: _remove(state, stamper)


def add_observer(session: Any, observer: Observer, *, first: bool = False) -> Callable[[], None]:
    """``observer`` sees each transcript once enriched (``first``: before the others)."""
    state = FUNNEL.of(session)
    state.observers = (observer, *state.observers) if first else (*state.observers, observer)
    return lambda: _remove(state, observer)


def observe(session: Any, observer: Observer, *, first: bool = False) -> Callable[[], None]:
    """See each of the session's transcripts, enriched, before its listeners: at the funnel
    where they pass it (one call per transcript), else at the session's ``emit`` (one call
    per session event, which cannot be taken back: returns a detach that does nothing)."""
    if carries(session):
        return add_observer(session, observer, first=first)
    observe_before_listeners(session, "user_input_transcribed", observer)
    return _nothing


def _nothing() -> None:
    return None


def _remove(state: FunnelState, hook: Any) -> None:
    state.stampers = tuple(h for h in state.stampers if h is not hook)
    state.observers = tuple(h for h in state.observers if h is not hook)


def observers_to_emit() -> None:
    """The funnel is upstream's again (reverted): each session's observers go on seeing its
    transcripts, at its ``emit``."""
    for session in FUNNEL.owners():
        state = FUNNEL.get(session)
        if state is None or not state.observers:
            continue
        for observer in state.observers:
            if callable(getattr(session, "emit", None)):
                observe_before_listeners(session, "user_input_transcribed", observer)
        state.observers = ()


def run_born(
    session: Any, origin: Origin | None, handler: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """Run upstream's ``handler``; the transcripts it emits were born at ``origin`` (an
    AgentSession that cannot be found: upstream's handler runs as it is)."""
    if session is None:
        return handler(*args, **kwargs)
    state = getattr(session, _STATE, None) or FUNNEL.of(session)
    outer, state.origin = state.origin, origin
    try:
        return handler(*args, **kwargs)
    finally:
        state.origin = outer


def funnel(
    added: list[str], set_up: Callable[[Any], None]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The funnel wrapper (``Patcher.wrap_inline``): stamp, enrich from where the event was
    born, observe; then upstream's, which emits it. ``added`` names the identity fields this
    release lacks (said in the warning for a session started unpatched); ``set_up`` runs once
    per session, at its first transcript if nothing ran it before (a session started before
    the extension was applied)."""

    def build(original: Callable[..., Any]) -> Callable[..., Any]:
        def _user_input_transcribed(self: Any, *args: Any, **kwargs: Any) -> Any:
            if args and IDENTITY in ACTIVE:
                ev = args[0]
                state: FunnelState | None = None
                try:
                    state = getattr(self, _STATE, None) or FUNNEL.of(self)
                    if not state.set_up:
                        state.set_up = True
                        set_up(self)
                    for stamp in state.stampers:
                        stamp(ev)
                    if state.origin is not None:
                        _enrich(ev, state.origin)
                    elif not state.started_patched and ev.source is None:
                        _warn_started_unpatched(self, state, added)
                except Exception:
                    hook_failed("enriching user_input_transcribed")
                for observe_ in state.observers if state is not None else ():
                    try:
                        observe_(ev)
                    except Exception:
                        hook_failed("observing user_input_transcribed")
            return original(self, *args, **kwargs)

        return _user_input_transcribed

    return build


def _enrich(ev: Any, origin: Origin) -> None:
    """The identity fields from where the event was born; upstream's own values win."""
    item_id = ev.item_id
    if item_id is None:
        item_id = origin.item_id
        if item_id is None and origin.resolve_item is not None:
            item_id = origin.resolve_item()
        if item_id is None:
            logger.debug("livekit_ext: a transcript has no item id to attach")
        set_field(ev, "item_id", item_id)
    if ev.source is None:
        set_field(ev, "source", origin.source)
    if ev.speech_started_at is None and item_id is not None:
        created = ev.created_at
        started = origin.speech.starts.get(item_id)
        if started is None:
            started = origin.speech.start_of(item_id, created)
        set_field(ev, "speech_started_at", started if started < created else created)


def _warn_started_unpatched(session: Any, state: FunnelState, added: list[str]) -> None:
    """A session started before the extension was applied: its realtime handlers were bound
    to upstream's originals at start, so its transcripts cannot be enriched. Say so, once,
    naming the fields this release lacks (a native ``item_id`` is still filled by upstream)."""
    if state.warned_unpatched or not added:
        return
    state.warned_unpatched = True
    logger.warning(
        "livekit_ext: AgentSession %#x was started before livekit_ext was applied; its "
        "realtime transcripts carry no %s (this livekit-agents release lacks them). Import "
        "livekit_ext (or call livekit_ext.apply()) before session.start()",
        id(session),
        "/".join(added),
    )
