"""Hypothesis over the server event streams, through the real plugins over loopback sockets.

Each example sends a random stream to one long-lived session -- valid events in random
interleavings, duplicates, deltas after completed, unknown item ids, events missing fields,
bad frames, server-side disconnects -- then one valid utterance, and checks the invariants:
nothing fatal reaches the session; that last utterance is transcribed; all events of one item
share ``item_id`` and ``speech_started_at``; ``speech_started_at <= created_at``; ``Utterances``
fires started/final at most once per item, and final exactly once for every item that got a
final. The example budget is fixed (``FUZZ_EXAMPLES``, default 60 a provider) so CI stays
within its limit; the count that ran is printed at the end. Run with ``-m fuzz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livekit_ext import Utterances, identity
from livekit_ext.testing import GeminiLiveServer, OpenAIRealtimeServer
from livekit_ext.testing import gemini_server as gem
from livekit_ext.testing import openai_server as oai
from livekit_ext.testing.bad_frames import GEMINI_BAD_FRAMES, OPENAI_BAD_TEXT_FRAMES
from livekit_ext.testing.sessions import gemini_realtime_session, openai_realtime_session

pytestmark = [pytest.mark.fuzz, pytest.mark.wire]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
_FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples every run: CI never flakes on a new draw
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
_example_ids = itertools.count()


@dataclass
class Live:
    """One session kept across examples, with what it emitted."""

    loop: asyncio.AbstractEventLoop
    server: Any
    session: Any
    rec: Any
    fired: list[tuple[str, str]] = field(default_factory=list)
    examples: int = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 30))


@contextlib.contextmanager
def _live(provider: str, request: pytest.FixtureRequest) -> Iterator[Live]:
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()

    async def start() -> Live:
        if provider == "openai":
            server: Any = await stack.enter_async_context(OpenAIRealtimeServer())
            session, rec = await stack.enter_async_context(openai_realtime_session(server))
        else:
            server = await stack.enter_async_context(GeminiLiveServer())
            session, rec = await stack.enter_async_context(gemini_realtime_session(server))
        return Live(loop, server, session, rec)

    live = loop.run_until_complete(start())
    utterances = Utterances(live.session)
    for name in ("utterance_started", "utterance_final"):
        utterances.on(name, lambda u, name=name: live.fired.append((name, u.item_id)))
    try:
        yield live
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()
        plugins = request.config.pluginmanager
        reporter, capture = (
            plugins.get_plugin("terminalreporter"),
            plugins.get_plugin("capturemanager"),
        )
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():  # past pytest's output capture
                reporter.ensure_newline()
                reporter.write_line(
                    f"fuzz {provider}: {live.examples} examples held every invariant"
                )


@pytest.fixture(scope="module")
def openai_live(request: pytest.FixtureRequest) -> Iterator[Live]:
    with _live("openai", request) as live:
        yield live


@pytest.fixture(scope="module")
def gemini_live(request: pytest.FixtureRequest) -> Iterator[Live]:
    with _live("gemini", request) as live:
        yield live


# -- the invariants ------------------------------------------------------------------------


def check_invariants(live: Live, transcripts: list[Any], fired: list[tuple[str, str]]) -> None:
    fatal = [e for e in live.rec.errors if not getattr(e.error, "recoverable", True)]
    assert not fatal, fatal
    starts: dict[str, set[float | None]] = {}
    for ev in transcripts:
        key = identity(ev)
        if key.item_id is None:
            continue
        starts.setdefault(key.item_id, set()).add(key.speech_started_at)
        if key.speech_started_at is not None:
            assert key.speech_started_at <= ev.created_at, ev
    assert all(len(s) == 1 for s in starts.values()), starts
    counts = Counter(fired)
    assert all(n == 1 for n in counts.values()), counts
    finals = {identity(ev).item_id for ev in transcripts if ev.is_final} - {None}
    assert {item for kind, item in fired if kind == "utterance_final"} >= finals


async def _final_for(live: Live, item_text: str, before: int) -> None:
    await live.rec.wait_for(
        lambda: any(
            e.is_final and e.transcript.strip() == item_text for e in live.rec.transcripts[before:]
        ),
        timeout=10.0,
        what=f"the final {item_text!r}",
    )


# -- OpenAI --------------------------------------------------------------------------------


def _without(event: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != key}


@st.composite
def openai_steps(draw: st.DrawFn) -> list[tuple[str, Any]]:
    items = draw(st.lists(st.sampled_from("ABC"), min_size=1, max_size=3, unique=True))
    words = st.text("abc xyz", min_size=1, max_size=8)
    valid = st.one_of(
        st.builds(oai.speech_started, st.sampled_from(items), st.integers(0, 5000)),
        st.builds(oai.speech_stopped, st.sampled_from(items), st.integers(0, 5000)),
        st.builds(oai.transcription_delta, st.sampled_from([*items, "unknown"]), words),
        st.builds(oai.transcription_completed, st.sampled_from([*items, "unknown"]), words),
        st.builds(oai.committed, st.sampled_from(items)),
    )
    event_step = valid.map(lambda e: ("send", e))
    missing = st.tuples(
        valid, st.sampled_from(["item_id", "delta", "transcript", "audio_start_ms"])
    )
    steps = st.one_of(
        event_step,
        event_step,
        event_step,
        missing.map(lambda p: ("malformed", _without(*p))),
        st.sampled_from(OPENAI_BAD_TEXT_FRAMES).map(lambda f: ("raw", f)),
        st.just(("drop", None)),
    )
    drawn = draw(st.lists(steps, max_size=14))
    # duplicates: repeat some steps later in the stream
    if drawn and draw(st.booleans()):
        drawn.insert(draw(st.integers(0, len(drawn))), draw(st.sampled_from(drawn)))
    return drawn


def _openai_item(prefix: str, event: dict[str, Any]) -> dict[str, Any]:
    item = event.get("item_id")
    return {**event, "item_id": f"{prefix}_{item}"} if isinstance(item, str) else event


async def _run_openai(live: Live, steps: list[tuple[str, Any]], prefix: str, text: str) -> None:
    server = live.server
    for kind, payload in steps:
        if kind == "send":
            await server.send(_openai_item(prefix, payload))
        elif kind == "malformed":
            await server.send(_openai_item(prefix, payload), validate=False)
        elif kind == "raw":
            await server.send_raw(payload)
        else:
            connections = len(server.connections)
            await server.drop()
            conn = await server.wait_for_connection(connections + 1)
            await server.wait_until(
                lambda conn=conn: any(e.get("type") == "session.update" for e in conn.client_events)
            )
    last = f"{prefix}_last"
    await server.send(oai.speech_started(last), oai.transcription_completed(last, text))


def _example(live: Live, run: Any, steps: list[tuple[str, Any]]) -> None:
    """Send one example's stream, then a valid utterance; wait for it; check the invariants."""
    n = next(_example_ids)
    prefix, text = f"x{n}", f"x{n} done"
    before, fired_before = len(live.rec.transcripts), len(live.fired)
    live.run(run(live, steps, prefix, text))
    live.run(_final_for(live, text, before))
    check_invariants(live, live.rec.transcripts[before:], live.fired[fired_before:])
    live.examples += 1


@_FUZZ
@given(steps=openai_steps())
def test_openai_streams_keep_the_invariants(
    openai_live: Live, steps: list[tuple[str, Any]]
) -> None:
    _example(openai_live, _run_openai, steps)


# -- Gemini --------------------------------------------------------------------------------


@st.composite
def gemini_steps(draw: st.DrawFn) -> list[tuple[str, Any]]:
    words = st.text("abc xyz", min_size=1, max_size=8)
    valid = st.one_of(
        st.builds(gem.input_transcription, words),
        st.builds(gem.input_transcription, words),
        st.just(gem.turn_complete()),
        st.just(gem.generation_complete()),
        st.just(gem.interrupted()),
        st.builds(gem.voice_activity_start, st.sampled_from([None, "0.5s", "2s"])),
        st.builds(gem.voice_activity_end, st.sampled_from([None, "1s"])),
        st.builds(gem.output_transcription, words),
    )
    steps = st.one_of(
        valid.map(lambda m: ("send", m)),
        valid.map(lambda m: ("send", m)),
        valid.map(lambda m: ("send", m)),
        st.sampled_from(GEMINI_BAD_FRAMES).map(lambda f: ("raw", f)),
        st.just(("drop", None)),
    )
    return draw(st.lists(steps, max_size=12))


async def _run_gemini(live: Live, steps: list[tuple[str, Any]], prefix: str, text: str) -> None:
    server = live.server
    for kind, payload in steps:
        if kind == "send":
            await server.send(payload)
        elif kind == "raw":
            await server.send()  # after the newest connection's setup
            if isinstance(payload, bytes):
                await server.send_bytes(payload)
            else:
                await server.send_raw(payload)
        else:
            setups = server.setups_completed
            await server.send()
            await server.drop()
            await server.wait_for_setup(setups + 1)
    # end whatever turn the stream left open, then one clean utterance
    await server.send(gem.turn_complete(), gem.input_transcription(text), gem.turn_complete())


@_FUZZ
@given(steps=gemini_steps())
def test_gemini_streams_keep_the_invariants(
    gemini_live: Live, steps: list[tuple[str, Any]]
) -> None:
    _example(gemini_live, _run_gemini, steps)


def test_the_bad_frames_are_json_text_or_bytes() -> None:
    """The fuzzed frame lists stay what the wire can carry."""
    assert all(isinstance(f, str) for f in OPENAI_BAD_TEXT_FRAMES)
    assert any(isinstance(f, bytes) for f in GEMINI_BAD_FRAMES)
    assert json.loads(OPENAI_BAD_TEXT_FRAMES[-1])["type"]
