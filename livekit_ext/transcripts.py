"""``transcripts(session)``: what the user said, per utterance and per engine, for tools.

A function tool that wants the words (the realtime model's, or a parallel STT's) reads the
session's log whenever it likes: the log records every session from its start, so a first
call late in the conversation still sees what came before (bounded: ``window`` finals).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from typing import Any, get_args

from . import _funnel
from ._state import Attached
from .typed_identity import Source, identity

logger = logging.getLogger("livekit_ext")

SOURCES: tuple[Source, ...] = get_args(Source)
"""The engines a transcript comes from; any other ``source`` is a typo, not an empty answer."""


class TranscriptLog:
    """What the user said, per utterance and per engine, for a function tool to read.

    Records every non-empty ``user_input_transcribed`` of one session from its start (where the
    transcript_identity feature is in effect; elsewhere from the first ``transcripts()`` call,
    with a warning). At most ``window`` final events are kept (oldest dropped first), plus the latest
    event of each source, so memory stays bounded however long the session runs.
    """

    def __init__(self, window: int = 256) -> None:
        _check_window(window)
        self._finals: deque[Any] = deque(maxlen=window)
        self._latest: dict[tuple[Source | None, bool], Any] = {}
        self._warned_not_started = False
        self._recording = False

    @property
    def window(self) -> int:
        return self._finals.maxlen or 0

    def resize(self, window: int) -> None:
        """Keep at most ``window`` finals from now on (the newest ones survive a shrink)."""
        _check_window(window)
        if window != self.window:
            self._finals = deque(self._finals, maxlen=window)

    def latest(self, source: Source | None = None, final_only: bool = True) -> Any | None:
        """The newest ``UserInputTranscribedEvent`` of ``source`` (any source when None).

        An unknown ``source`` (``"sst"``) raises ``ValueError``: a None for a typo would read
        as "nothing heard yet"."""
        if source is not None and source not in SOURCES:
            raise _unknown_source(source)
        return self._latest.get((source, final_only))

    def for_item(self, item_id: str) -> list[Any]:
        """The final events of one utterance, from both engines, in arrival order."""
        return [ev for ev in self._finals if identity(ev).item_id == item_id]

    def __len__(self) -> int:
        return len(self._finals)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._finals))

    def record(self, ev: Any, source: Source | None = None) -> None:
        """Log one ``user_input_transcribed`` (its ``source`` when already known); empty
        transcripts (the speech-stop marker) are skipped."""
        if not getattr(ev, "transcript", ""):
            return
        if source is None:
            source = getattr(ev, "source", None)
        elif source not in SOURCES:
            raise _unknown_source(source)
        self._latest[(source, False)] = self._latest[(None, False)] = ev
        if ev.is_final:
            self._latest[(source, True)] = self._latest[(None, True)] = ev
            self._finals.append(ev)


def _unknown_source(source: object) -> ValueError:
    valid = ", ".join(repr(s) for s in SOURCES)
    return ValueError(f"source must be one of {valid} or None, got {source!r}")


def _check_window(window: int) -> None:
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")


LOGS: Attached[TranscriptLog] = Attached("transcript_log", TranscriptLog)


def record_from_start(session: Any) -> None:
    """The session starts (or its first transcript reaches the funnel): its log records from
    now on, before any other observer (a callback reading the log sees the event in it)."""
    _start_recording(session, LOGS.of(session))


def _start_recording(session: Any, log: TranscriptLog) -> None:
    if not log._recording:
        log._recording = True
        _funnel.observe(session, log.record, first=True)


def transcripts(session: Any, *, window: int | None = None) -> TranscriptLog:
    """The session's transcript log (window 256 unless given), recording since its start.

    Where the transcript_identity feature is not in effect (``LIVEKIT_EXT_DISABLE``, an
    upstream that does it natively) the log can only record from this first call on, and says
    so in a warning rather than being silently short. On a session that is not started (and
    has logged nothing) it warns once per session: its empty log is not the user's silence.
    """
    log = session_log(session, window=window)
    _warn_if_not_started(session, log)
    return log


def session_log(session: Any, *, window: int | None = None) -> TranscriptLog:
    """``transcripts(session)`` for the package's own features, which may set a session up
    before it starts (``enable_parallel_stt``) without that being a user's mistake."""
    if window is not None:
        _check_window(window)
    log = LOGS.of(session)
    if window is not None:
        log.resize(window)
    if not log._recording:
        _start_recording(session, log)
        if not _funnel.carries(session) and getattr(session, "_started", False):
            logger.warning(
                "livekit_ext: transcripts(): livekit_ext's transcript identity is not in effect "
                "here, so this session's log records from now on; earlier transcripts are not "
                "in it"
            )
    return log


def _warn_if_not_started(session: Any, log: TranscriptLog) -> None:
    """A tool handed the wrong session (or reading before ``start()``) would see an empty log
    that looks like silence from the user; say so once per session instead."""
    funnel = _funnel.FUNNEL.get(session)
    if log._warned_not_started or log._latest or (funnel is not None and funnel.started_patched):
        return
    if getattr(session, "_started", True):  # running (or not an AgentSession we can judge)
        return
    log._warned_not_started = True
    logger.warning(
        "livekit_ext: transcripts(): AgentSession %#x is not started: its log is empty, and "
        "records from session.start() on",
        id(session),
    )
