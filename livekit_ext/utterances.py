"""``Utterances(session)``: one started / updated / stopped / final per user utterance, for
dedup handlers.

Providers repeat themselves (a second ``...transcription.completed``), send deltas after the
final, and emit an empty interim when speech stops; a handler that must act once per
utterance listens here instead of to ``user_input_transcribed``.

``utterance_started`` fires at the provider's speech-start signal where there is one (OpenAI /
Azure / xAI ``input_audio_buffer.speech_started``, Gemini ``voiceActivity`` ACTIVITY_START, an
STT pipeline's START_OF_SPEECH or local VAD), with the item id the transcripts will carry and
an empty transcript; else with the first transcript. ``utterance_stopped`` fires once when
speech stops: at the provider's or the STT's signal where there is one, else at the best
evidence (Gemini without ``voiceActivity``: the model's first output, or ``turnComplete``), and
at the latest just before ``utterance_final``; ``Utterance.speech_stopped_by`` says which.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args, overload

from livekit import rtc

from ._speech import SpeechSignal, StopEvidence, follow, stop_evidence
from .typed_identity import Source

logger = logging.getLogger("livekit_ext")

UtteranceEventName = Literal[
    "utterance_started", "utterance_updated", "utterance_stopped", "utterance_final"
]
EVENT_NAMES: tuple[str, ...] = get_args(UtteranceEventName)
"""The events ``Utterances`` emits: the one list ``on`` / ``once`` check names against."""
_Callback = TypeVar("_Callback", bound=Callable[..., Any])


@dataclass(frozen=True)
class Utterance:
    """The state of one user utterance when an ``utterance_*`` event fires."""

    item_id: str
    speech_started_at: float | None
    transcript: str
    source: Source | None
    final: bool
    event: Any
    """The ``UserInputTranscribedEvent`` that caused this callback; None when a speech start
    or stop signal caused it (the transcript is then what was known at that time)."""
    speech_stopped_at: float | None = None
    """Wall-clock time at which the user stopped speaking, once known."""
    speech_stopped_by: StopEvidence | None = None
    """What ``speech_stopped_at`` comes from, once known: ``"provider"`` (the provider's speech
    stop: OpenAI-protocol ``speech_stopped``, Gemini ``voiceActivity`` ACTIVITY_END),
    ``"framework"`` (another realtime plugin's ``input_speech_stopped``), ``"stt"`` (the STT's
    END_OF_SPEECH or the local VAD), ``"generation"`` (Gemini without ``voiceActivity``: the
    model began answering), ``"turn_complete"`` (Gemini's ``turnComplete``) or ``"final"``
    (nothing said so before the final transcript: its arrival)."""


class _Item:
    """What one utterance has said so far."""

    __slots__ = (
        "final",
        "speech_started_at",
        "speech_stopped_at",
        "speech_stopped_by",
        "stopped",
        "transcript",
    )

    def __init__(self, speech_started_at: float | None) -> None:
        self.transcript = ""
        self.final = False
        self.stopped = False
        self.speech_started_at = speech_started_at
        self.speech_stopped_at: float | None = None
        self.speech_stopped_by: StopEvidence | None = None


class Utterances(rtc.EventEmitter[UtteranceEventName]):
    """Per-utterance view of one ``AgentSession``'s ``user_input_transcribed`` events.

    ``source`` restricts the view to one engine (with a parallel STT both engines report the
    same utterance). At most ``max_items`` utterances are remembered; older ones are forgotten,
    so a repeat of a long-gone utterance could fire again, never a recent one.

    Callbacks may be plain functions or ``async def``: an async one runs as a task this object
    keeps until it is done (an RPC to the frontend is async), in the order the events fire; an
    exception it raises is logged with the utterance's ``item_id``. ``await aclose()`` at the
    end of the session waits for the tasks still running; ``close()`` only stops observing.
    """

    def __init__(
        self, session: Any, *, source: Source | None = None, max_items: int = 1000
    ) -> None:
        super().__init__()
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self._session = session
        self._source = source
        self._max_items = max_items
        self._items: OrderedDict[str, _Item] = OrderedDict()
        self._missing_id_logged = False
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._async_listeners: dict[tuple[str, Callable[..., Any]], Callable[..., None]] = {}
        self._pending_stop: tuple[float, StopEvidence] | None = None
        """A stop no source could name, held for the utterance to come (see below)."""
        self._unnamed_start = False
        """A start no source could name came after the newest utterance began."""
        self._wanted: set[str] = set()
        """Events a callback was ever registered for: the others build no ``Utterance``."""
        self._detach = follow(session, self._on_transcribed, self._on_speech_signal)

    # -- listeners ------------------------------------------------------------------------

    @overload
    def on(self, event: UtteranceEventName) -> Callable[[_Callback], _Callback]: ...
    @overload
    def on(self, event: UtteranceEventName, callback: _Callback) -> _Callback: ...
    @overload
    def on(
        self, event: UtteranceEventName, callback: Callable[..., Any] | None = None
    ) -> Callable[..., Any]: ...
    def on(self, event: UtteranceEventName, callback: Callable[..., Any] | None = None) -> Any:
        """Call ``callback`` (plain or ``async``) on every ``event``; usable as a decorator.

        A misspelt name would otherwise be accepted and never fire, so it is a ``ValueError``.
        """
        return self._register(event, callback, once=False)

    @overload
    def once(self, event: UtteranceEventName) -> Callable[[_Callback], _Callback]: ...
    @overload
    def once(self, event: UtteranceEventName, callback: _Callback) -> _Callback: ...
    @overload
    def once(
        self, event: UtteranceEventName, callback: Callable[..., Any] | None = None
    ) -> Callable[..., Any]: ...
    def once(self, event: UtteranceEventName, callback: Callable[..., Any] | None = None) -> Any:
        """Like ``on``, for the next ``event`` only."""
        return self._register(event, callback, once=True)

    def _register(
        self, event: UtteranceEventName, callback: Callable[..., Any] | None, *, once: bool
    ) -> Any:
        _check_event_name(event)
        if callback is None:  # used as a decorator
            return lambda callback: self._register(event, callback, once=once)
        listener = self._listener(event, callback)
        self._wanted.add(event)
        if once:
            call = listener

            def listener(*args: Any) -> None:
                super(Utterances, self).off(event, listener)
                call(*args)

            listener.__signature__ = inspect.signature(call)  # type: ignore[attr-defined]
        super().on(event, listener)
        return callback

    def off(self, event: UtteranceEventName, callback: Callable[..., Any]) -> None:
        super().off(event, self._async_listeners.pop((event, callback), callback))

    def _listener(self, event: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        """``callback`` itself, or for a coroutine function a plain function that starts it as
        a task: upstream's emitter refuses coroutine functions and would drop their result."""
        if not inspect.iscoroutinefunction(callback):
            return callback
        key = (event, callback)
        if key not in self._async_listeners:

            def start(*args: Any) -> None:
                self._start_task(event, callback, callback(*args), args)

            # the emitter passes as many arguments as the callback takes
            start.__signature__ = inspect.signature(callback)  # type: ignore[attr-defined]
            self._async_listeners[key] = start
        return self._async_listeners[key]

    def _start_task(
        self,
        event: str,
        callback: Callable[..., Any],
        coro: Coroutine[Any, Any, Any],
        args: tuple[Any, ...],
    ) -> None:
        item_id = getattr(args[0], "item_id", None) if args else None
        name = getattr(callback, "__qualname__", repr(callback))
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            logger.error(
                "livekit_ext.Utterances: async %s callback %s for utterance %s not run: "
                "no running event loop",
                event,
                name,
                item_id,
            )
            return
        self._tasks.add(task)

        def done(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            if not task.cancelled() and (exc := task.exception()) is not None:
                logger.error(
                    "livekit_ext.Utterances: async %s callback %s failed for utterance %s",
                    event,
                    name,
                    item_id,
                    exc_info=exc,
                )

        task.add_done_callback(done)

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop observing the session. Async callbacks already running go on to the end."""
        self._closed = True
        self._detach()

    async def aclose(self) -> None:
        """Stop observing the session and wait for the async callbacks still running.

        Their exceptions are logged, not raised. If ``aclose()`` itself is cancelled, the
        callbacks it was waiting for are cancelled too.
        """
        self.close()
        while self._tasks:
            pending = list(self._tasks)
            try:
                await asyncio.gather(*pending, return_exceptions=True)
            except asyncio.CancelledError:
                for task in pending:
                    task.cancel()
                raise

    def _on_transcribed(self, ev: Any) -> None:
        """One transcript, before the session's listeners (what calls it logs an error)."""
        if self._closed:
            return
        # the identity fields read directly, not through identity(): this runs per transcript
        source = getattr(ev, "source", None)
        if self._source is not None and source != self._source:
            return
        item_id: str | None = getattr(ev, "item_id", None)
        if item_id is None:
            if not ev.transcript and not ev.is_final:
                # a speech-stop interim with no id (e.g. AWS Nova Sonic): nothing to dedup
                logger.debug("livekit_ext.Utterances: an empty interim without item_id skipped")
                return
            if not self._missing_id_logged:
                self._missing_id_logged = True
                logger.warning(
                    "livekit_ext.Utterances: user_input_transcribed without item_id ignored "
                    "(is livekit_ext applied? see livekit_ext.status())"
                )
            return
        started_at: float | None = getattr(ev, "speech_started_at", None)
        wanted = self._wanted  # checked here, not in _fire: nobody listening builds nothing
        item = self._items.get(item_id)
        if item is None:
            item = self._new_item(item_id, started_at)
            if "utterance_started" in wanted:
                self._fire("utterance_started", item_id, item, started_at, source, ev)
            if self._pending_stop is not None:  # the stop no source could name was this one's
                pending, by = self._pending_stop
                self._stop(item_id, item, pending, None, by)
        if item.final:
            logger.debug(
                "livekit_ext.Utterances: %s after the final of %s ignored",
                "final" if ev.is_final else "interim",
                item_id,
            )
            return
        if ev.is_final:
            if not item.stopped:  # nothing said the speech stopped: the final says so
                later = self._pending_stop  # a later utterance's, if any: it stays
                self._stop(item_id, item, ev.created_at, source, "final")
                self._pending_stop = later
            item.transcript, item.final = ev.transcript, True
            if "utterance_final" in wanted:
                self._fire("utterance_final", item_id, item, started_at, source, ev)
        elif ev.transcript and ev.transcript != item.transcript:
            item.transcript = ev.transcript
            if "utterance_updated" in wanted:
                self._fire("utterance_updated", item_id, item, started_at, source, ev)

    def _new_item(self, item_id: str, speech_started_at: float | None) -> _Item:
        self._unnamed_start = False
        item = self._items[item_id] = _Item(speech_started_at)
        if len(self._items) > self._max_items:  # one in, at most one out
            self._items.popitem(last=False)
        return item

    def _fire(
        self,
        name: UtteranceEventName,
        item_id: str,
        item: _Item,
        speech_started_at: float | None,
        source: Source | None,
        ev: Any,
    ) -> None:
        if source not in ("realtime", "stt"):
            source = None
        self.emit(
            name,
            Utterance(
                item_id=item_id,
                speech_started_at=speech_started_at,
                transcript=item.transcript,
                source=source,
                final=item.final,
                event=ev,
                speech_stopped_at=item.speech_stopped_at,
                speech_stopped_by=item.speech_stopped_by,
            ),
        )

    # -- speech start / stop signals (transcript identity publishes them) -----------------

    def _on_speech_signal(self, signal: SpeechSignal) -> None:
        if self._closed:
            return
        # errors: the publisher logs them
        source: Source = "stt" if signal.origin == "stt" else "realtime"
        if self._source is not None and source != self._source:
            return
        if signal.kind == "started":
            self._pending_stop = None
            self._unnamed_start = signal.item_id is None
            if signal.item_id is None or signal.item_id in self._items:
                return  # unnamed: started comes with the first transcript, as without a signal
            item = self._new_item(signal.item_id, signal.at)
            if "utterance_started" in self._wanted:
                self._fire("utterance_started", signal.item_id, item, signal.at, source, None)
            return
        item_id = signal.item_id
        if item_id is None:
            # after an unnamed start: the utterance to come (its transcripts name it); else
            # the newest utterance not stopped yet (its final may have come first)
            newest = next((i for i, it in reversed(self._items.items()) if not it.stopped), None)
            if self._unnamed_start or newest is None:
                self._pending_stop = (signal.at, stop_evidence(signal))
                return
            item_id = newest
        known = self._items.get(item_id)
        if known is None:  # the start was missed (Utterances made mid-speech): both, in order
            known = self._new_item(item_id, None)
            if "utterance_started" in self._wanted:
                self._fire("utterance_started", item_id, known, None, source, None)
        self._stop(item_id, known, signal.at, source, stop_evidence(signal))

    def _stop(
        self,
        item_id: str,
        item: _Item,
        at: float,
        source: Source | None,
        by: StopEvidence,
    ) -> None:
        self._pending_stop = None
        if item.stopped:
            return
        item.stopped, item.speech_stopped_at, item.speech_stopped_by = True, at, by
        if "utterance_stopped" in self._wanted:
            self._fire("utterance_stopped", item_id, item, item.speech_started_at, source, None)


def _check_event_name(event: str) -> None:
    if event not in EVENT_NAMES:
        raise ValueError(
            f"Utterances has no event {event!r}; valid events: {', '.join(EVENT_NAMES)}"
        )
