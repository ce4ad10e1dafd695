"""Pure logic: the audio timeline, bounded maps, Utterances' dedup and memory bound, and
the malformed-frames probe's recognition of the patched parser."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import types
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from livekit import rtc
from livekit.agents.voice.events import UserInputTranscribedEvent

import livekit_ext
from livekit_ext import _funnel
from livekit_ext import _touchpoints as tp
from livekit_ext._state import Attached, BoundedMap
from livekit_ext._timeline import AudioTimeline, parse_duration
from livekit_ext._wrapping import Patcher, Wrapper
from livekit_ext.malformed_frames import _parses_frames_natively
from livekit_ext.transcript_identity.realtime_speech import REALTIME, RealtimeSpeech

pytestmark = pytest.mark.unit


def test_an_offset_maps_to_when_its_sample_was_captured() -> None:
    timeline = AudioTimeline()
    for i in range(50):  # 1 s of 20 ms frames pushed in real time from t=100.02
        timeline.pushed(0.02, now=100.02 + i * 0.02)
    assert timeline.wall_time_at(0.0) == pytest.approx(100.0)
    assert timeline.wall_time_at(0.5) == pytest.approx(100.5)
    # a 2 s gap with no audio, then more: offsets after the gap map past it
    for i in range(10):
        timeline.pushed(0.02, now=103.02 + i * 0.02)
    assert timeline.wall_time_at(1.1) == pytest.approx(103.1)
    timeline.reset()
    assert timeline.wall_time_at(0.1) is None


def test_audio_fed_faster_than_real_time_stays_one_run() -> None:
    timeline = AudioTimeline()
    for _ in range(100):
        timeline.pushed(0.02, now=50.0)
    assert timeline.wall_time_at(1.0) == pytest.approx(50.98)


def test_a_provider_start_is_clamped_to_its_arrival() -> None:
    track = RealtimeSpeech()
    track.timeline.pushed(1.0, now=10.0)  # audio captured over [9, 10)
    track.provider_speech("started", "item_A", arrival=9.2, audio_offset=0.5)  # maps to 9.5
    assert track.starts["item_A"] == 9.2
    track.provider_speech("started", "item_B", arrival=12.0, audio_offset=0.5)
    assert track.starts["item_B"] == 9.5


def test_durations_parse_like_protobuf_json() -> None:
    assert parse_duration("1.500s") == 1.5
    assert parse_duration(2) == 2.0
    assert parse_duration("soon") is None
    assert parse_duration(None) is None


def test_bounded_map_forgets_the_oldest() -> None:
    m: BoundedMap[float] = BoundedMap(limit=3)
    for i in range(10):
        m[f"k{i}"] = float(i)
    assert list(m) == ["k7", "k8", "k9"]


class _Owner:
    pass


def test_attached_state_is_one_per_owner_and_dies_with_it() -> None:
    states = Attached("test_state", RealtimeSpeech)
    first, second = _Owner(), _Owner()
    state = states.of(first)
    assert states.of(first) is state and states.get(first) is state
    assert states.get(second) is None
    states.of(second)
    assert len(states) == 2
    del first
    gc.collect()
    assert len(states) == 1 and states.get(second) is not None
    # the package's own, as every feature reads them
    owner = _Owner()
    assert REALTIME.of(owner) is REALTIME.of(owner)
    assert _funnel.FUNNEL.of(owner) is _funnel.FUNNEL.of(owner)
    before = len(_funnel.FUNNEL)
    del owner
    gc.collect()
    assert len(_funnel.FUNNEL) == before - 1


def test_state_holding_its_owner_does_not_keep_it_alive() -> None:
    """A subscriber such as Utterances holds its session, and the session's state holds it."""
    owner = _Owner()
    state = _funnel.FUNNEL.of(owner)
    state.observers = (lambda ev, held=owner: None,)
    ref = weakref.ref(owner)
    del owner, state
    gc.collect()
    assert ref() is None


class _FakeSession(rtc.EventEmitter[str]):
    pass


def _event(item: str, text: str, final: bool) -> Any:
    ev = UserInputTranscribedEvent(transcript=text, is_final=final)
    ev.item_id = item
    ev.source = "realtime"  # type: ignore[attr-defined]
    ev.speech_started_at = 1.0  # type: ignore[attr-defined]
    return ev


def test_utterances_fire_once_per_item_despite_repeats_and_stragglers() -> None:
    session = _FakeSession()
    calls: list[tuple[str, str, str]] = []
    utterances = livekit_ext.Utterances(session)
    for name in ("utterance_started", "utterance_updated", "utterance_final"):
        utterances.on(name, lambda u, name=name: calls.append((name, u.item_id, u.transcript)))
    for ev in [
        _event("a", "", False),
        _event("a", "hel", False),
        _event("a", "hel", False),
        _event("a", "hello", True),
        _event("a", "hello", True),
        _event("a", "hello again", False),
        _event("b", "bye", True),
    ]:
        session.emit("user_input_transcribed", ev)
    assert calls == [
        ("utterance_started", "a", ""),
        ("utterance_updated", "a", "hel"),
        ("utterance_final", "a", "hello"),
        ("utterance_started", "b", ""),
        ("utterance_final", "b", "bye"),
    ]


def test_utterance_started_reaches_handlers_before_the_first_transcript_does() -> None:
    session = _FakeSession()
    order: list[str] = []
    session.on("user_input_transcribed", lambda ev: order.append("transcribed"))
    livekit_ext.Utterances(session).on("utterance_started", lambda u: order.append("started"))
    session.emit("user_input_transcribed", _event("a", "x", False))
    assert order == ["started", "transcribed"]


def test_utterances_memory_is_bounded() -> None:
    session = _FakeSession()
    utterances = livekit_ext.Utterances(session, max_items=16)
    for i in range(10_000):
        session.emit("user_input_transcribed", _event(f"item_{i}", "x", True))
    assert len(utterances._items) == 16


async def test_async_callbacks_run_in_order_and_aclose_waits_for_them() -> None:
    session = _FakeSession()
    utterances = livekit_ext.Utterances(session)
    release = asyncio.Event()
    done: list[tuple[str, str]] = []

    @utterances.on("utterance_started")
    async def show_placeholder(u: livekit_ext.Utterance) -> None:
        await release.wait()  # an RPC in flight
        done.append(("placeholder", u.item_id))

    async def fill(u: livekit_ext.Utterance) -> None:
        done.append(("transcript", u.transcript))

    utterances.on("utterance_final", fill)
    utterances.on("utterance_final", lambda u: done.append(("sync", u.transcript)))
    session.emit("user_input_transcribed", _event("a", "hello", True))
    assert done == [("sync", "hello")]  # plain callbacks run inline, async ones as tasks
    assert len(utterances._tasks) == 2
    closing = asyncio.ensure_future(utterances.aclose())
    await asyncio.sleep(0.01)
    assert not closing.done()  # aclose() waits for the placeholder RPC
    release.set()
    await closing
    assert done == [("sync", "hello"), ("transcript", "hello"), ("placeholder", "a")]
    assert not utterances._tasks
    session.emit("user_input_transcribed", _event("b", "more", True))  # closed: nothing runs
    await asyncio.sleep(0)
    assert len(done) == 3


async def test_an_async_callbacks_exception_is_logged_with_the_utterance(
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = _FakeSession()
    utterances = livekit_ext.Utterances(session)

    async def rpc_fails(u: livekit_ext.Utterance) -> None:
        raise ConnectionError("frontend gone")

    utterances.on("utterance_final", rpc_fails)
    session.emit("user_input_transcribed", _event("item_X", "hi", True))
    await utterances.aclose()
    [record] = [r for r in caplog.records if r.name == "livekit_ext"]
    assert "item_X" in record.getMessage() and "rpc_fails" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], ConnectionError)


async def test_off_and_once_accept_async_callbacks() -> None:
    session = _FakeSession()
    utterances = livekit_ext.Utterances(session)
    seen: list[str] = []

    async def record(u: livekit_ext.Utterance) -> None:
        seen.append(u.item_id)

    utterances.on("utterance_started", record)
    utterances.off("utterance_started", record)
    utterances.once("utterance_final", record)
    for item in ("a", "b"):
        session.emit("user_input_transcribed", _event(item, "x", True))
    await utterances.aclose()
    assert seen == ["a"]


@pytest.mark.parametrize("register", ["on", "once", "decorator"])
def test_an_unknown_event_name_is_an_error_naming_the_valid_ones(register: str) -> None:
    utterances = livekit_ext.Utterances(_FakeSession())
    with pytest.raises(ValueError) as raised:
        if register == "decorator":
            utterances.on("utterance_start")  # type: ignore[arg-type]
        else:
            getattr(utterances, register)("utterance_start", lambda u: None)
    assert "'utterance_start'" in str(raised.value)
    for name in ("utterance_started", "utterance_updated", "utterance_final"):
        assert name in str(raised.value)


def test_a_reserved_item_is_taken_once_and_not_when_stale() -> None:
    import time

    track = RealtimeSpeech()
    track.provider_speech("started", "GI_reserved", arrival=time.time(), audio_offset=None)
    track.reserved_item = "GI_reserved"
    assert track.take_reserved_item() == "GI_reserved"
    assert track.take_reserved_item() is None
    track.provider_speech("started", "GI_old", arrival=time.time() - 60, audio_offset=None)
    track.reserved_item = "GI_old"
    assert track.take_reserved_item() is None


def test_wrapped_listeners_answer_inspect_with_the_originals_signature() -> None:
    """livekit's emitter inspects every listener per event: a wrapper must not make that
    costlier (it answers from ``__signature__``) nor different (the same parameters)."""
    import inspect

    from livekit_ext._wrapping import is_wrapper, make_wrapper

    emitter: rtc.EventEmitter[str] = rtc.EventEmitter()
    seen: list[Any] = []

    class Listener:
        def handle(self, ev: Any) -> None:
            seen.append(ev)

    original = Listener.handle
    handle = make_wrapper(
        original, lambda wrapped, instance, args, kwargs: wrapped(*args, **kwargs)
    )
    assert is_wrapper(handle)
    assert handle.__signature__ == inspect.signature(original)
    assert "__signature__" not in vars(original)  # the original is left as it was
    Listener.handle = handle  # type: ignore[method-assign]
    emitter.on("ev", Listener().handle)
    emitter.emit("ev", 1, "extra argument the listener does not take")
    assert seen == [1]


def _session_in_module(monkeypatch: pytest.MonkeyPatch, **attrs: Any) -> type:
    module = types.ModuleType("livekit_ext_probe_fake_realtime")
    vars(module).update(attrs)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return type("RealtimeSession", (), {"__module__": module.__name__})


def _parse_server_event(data: str) -> dict[str, Any]:
    """The patch series' parser, as its tests specify it."""
    event = json.loads(data)
    if not isinstance(event, dict):
        raise ValueError("not a JSON object")
    if not isinstance(event.get("type"), str) or not event["type"]:
        raise ValueError("no string 'type'")
    if event["type"].endswith("audio.delta") and not isinstance(event.get("delta"), str):
        raise ValueError("no string 'delta'")
    return event


def _rejects_non_objects_only(data: str) -> dict[str, Any]:
    event = json.loads(data)
    if not isinstance(event, dict):
        raise ValueError("not a JSON object")
    return event


def test_malformed_frames_native_only_with_a_parser_that_rejects_every_dropped_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not _parses_frames_natively(_session_in_module(monkeypatch))
    assert _parses_frames_natively(
        _session_in_module(monkeypatch, parse_server_event=_parse_server_event)
    )
    # a parser that lets some of the frames through (or raises otherwise) is not the fix:
    # the 1.8.9 series' first version rejected only frames that are not JSON objects
    for partial in (_rejects_non_objects_only, json.loads, lambda data: dict(json.loads(data))):
        assert not _parses_frames_natively(
            _session_in_module(monkeypatch, parse_server_event=partial)
        )


RECEIVE = tp.wrap("a test's method", "tests.test_units:Session.receive")


def _tagging(tag: str) -> Wrapper:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        return f"{tag}({wrapped(*args, **kwargs)})"

    return wrapper


def _undo_in_any_order_leaves_the_others(install: Callable[[type, list[Patcher]], None]) -> None:
    """``install`` wraps ``Session.receive`` with a, b, c (one patcher each, a innermost);
    undoing them in any order keeps the others working and ends with the exact original."""

    class Session:
        def receive(self, frame: str) -> str:
            return frame

    original = vars(Session)["receive"]
    for order in ([0, 1, 2], [1, 0, 2], [2, 1, 0], [1, 2, 0]):
        patchers = [Patcher() for _ in range(3)]
        install(Session, patchers)
        assert Session().receive("f") == "c(b(a(f)))"
        left = {0: "a", 1: "b", 2: "c"}
        for index in order:
            patchers[index].undo()
            del left[index]
            expected = "f"
            for tag in sorted(left.values()):
                expected = f"{tag}({expected})"
            assert Session().receive("f") == expected, (order, index)
        assert vars(Session)["receive"] is original, order


def test_reverting_wrappers_in_any_order_restores_the_original_and_keeps_the_others() -> None:
    """Features wrap the same method in the order their modules are imported and are reverted
    in registration order: a wrapper under another one is spliced out, never left behind."""

    def install(session: type, patchers: list[Patcher]) -> None:
        for tag, patcher in zip("abc", patchers, strict=True):
            patcher.wrap(RECEIVE, _tagging(tag), on=session)

    _undo_in_any_order_leaves_the_others(install)


def test_inline_wrappers_splice_out_like_the_others() -> None:
    """``wrap_inline`` (one call per event) mixed with ``wrap``: any undo order leaves the
    others working and, at the end, the exact original."""

    def inline(tag: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def build(original: Callable[..., Any]) -> Callable[..., Any]:
            def receive(self: Any, frame: str) -> str:
                return f"{tag}({original(self, frame)})"

            return receive

        return build

    def install(session: type, patchers: list[Patcher]) -> None:
        patchers[0].wrap_inline(RECEIVE, inline("a"), on=session)
        patchers[1].wrap(RECEIVE, _tagging("b"), on=session)
        patchers[2].wrap_inline(RECEIVE, inline("c"), on=session)
        assert vars(session)["receive"].__name__ == "receive"

    _undo_in_any_order_leaves_the_others(install)


def test_an_inline_wrapper_must_call_original() -> None:
    class Session:
        def receive(self, frame: str) -> str:
            return frame

    def build(wrapped: Callable[..., Any]) -> Callable[..., Any]:
        def receive(self: Any, frame: str) -> str:
            return str(wrapped(self, frame))

        return receive

    with pytest.raises(TypeError, match="must be a closure calling `original`"):
        Patcher().wrap_inline(RECEIVE, build, on=Session)
    assert Session().receive("f") == "f"
