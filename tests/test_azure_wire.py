"""Azure: ``input_audio_transcription=None`` / ``turn_detection=None`` reach the wire as ``null``.

Drives the real ``RealtimeModel.with_azure`` against the loopback server on the Azure paths,
for no api-version (``/openai/v1/realtime?model=``), a GA api-version and a preview one
(``/openai/realtime?api-version=&deployment=``), and snapshots what each ``session.update``
says about the two settings.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from livekit.agents import llm
from livekit.plugins import openai
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

import livekit_ext
from livekit_ext import _compat
from livekit_ext.testing import OpenAIRealtimeServer

pytestmark = [pytest.mark.wire]

DEPLOYMENT = "my-realtime"
TRANSCRIBE_MODEL = "gpt-4o-transcribe"


@dataclass(frozen=True)
class Combo:
    """One way of reaching an Azure deployment, and where the plugin must connect for it."""

    api_version: str | None
    path: str
    query: dict[str, str]

    @property
    def preview(self) -> bool:
        return self.api_version is not None and "preview" in self.api_version


COMBOS = [
    pytest.param(Combo(None, "/openai/v1/realtime", {"model": DEPLOYMENT}), id="v1"),
    pytest.param(
        Combo(
            "2025-08-28",
            "/openai/realtime",
            {"api-version": "2025-08-28", "deployment": DEPLOYMENT},
        ),
        id="ga-2025-08-28",
    ),
    pytest.param(
        Combo(
            "2025-04-01-preview",
            "/openai/realtime",
            {"api-version": "2025-04-01-preview", "deployment": DEPLOYMENT},
        ),
        id="preview-2025-04-01",
    ),
]


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.with_defaults(extension_class=JSONSnapshotExtension)


def transcription(combo: Combo) -> Any:
    """What a user of that api-version passes: the preview type for preview deployments."""
    if combo.preview:
        from openai.types.beta.realtime.session import InputAudioTranscription

        return InputAudioTranscription(model=TRANSCRIBE_MODEL)
    from openai.types.realtime import AudioTranscription

    return AudioTranscription(model=TRANSCRIBE_MODEL)


def releases_flatten_ga_sessions() -> bool:
    """1.5+ send the legacy flat shape whenever an api-version is given; 1.4's GA model never."""
    return hasattr(openai.realtime.RealtimeSession, "_wrap_session_update")


def release_speaks_the_preview_protocol() -> bool:
    """1.4 has a preview model and 1.5.1+ a flat shape for api-versions; 1.5.0 has neither:
    it sends the GA shape whatever the api-version (an upstream gap outside this feature)."""
    return releases_flatten_ga_sessions() or hasattr(openai.realtime, "RealtimeModelBeta")


def expected_shape(combo: Combo) -> str:
    if combo.api_version is None:
        return "ga"
    if combo.preview or releases_flatten_ga_sessions():
        return "flat"
    return "ga"


def shape_of(body: dict[str, Any]) -> str:
    return "ga" if body.get("type") == "realtime" else "flat"


def settings_of(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The two settings' container in either shape, and the transcription key in it."""
    if shape_of(body) == "ga":
        return body.get("audio", {}).get("input", {}), "transcription"
    return body, "input_audio_transcription"


def project(event: dict[str, Any]) -> dict[str, Any]:
    """One ``session.update`` reduced to what this feature is about, the same on every release.

    Kept: the two settings (absent = not sent, ``None`` = explicit null, else the config as
    sent) and which code path sent the event (event id prefix; the random tail is dropped).
    Dropped, because releases genuinely differ there and it is not this feature's business:
    the wire shape for a GA api-version (1.4's GA model keeps the GA shape, 1.5+ flatten;
    asserted separately in ``assert_shape``), the other session fields (temperature, tracing,
    speed, an empty ``audio.output`` before 1.8, ...), and dict key order.
    """
    container, transcription_key = settings_of(event["session"])
    projected: dict[str, Any] = {"event": event["event_id"].rsplit("_", 1)[0] + "_*"}
    if transcription_key in container:
        projected["transcription"] = container[transcription_key]
    if "turn_detection" in container:
        projected["turn_detection"] = container["turn_detection"]
    return projected


def null_paths(value: Any, path: str = "") -> set[str]:
    """Every ``null`` in a JSON body, as dotted paths."""
    if value is None:
        return {path}
    if isinstance(value, dict):
        return set().union(*(null_paths(v, f"{path}.{k}".lstrip(".")) for k, v in value.items()))
    return set()


def assert_only_these_nulls(event: dict[str, Any], settings: set[str]) -> None:
    """A mid-session update carries ``null`` for the settings switched off, and nothing else."""
    body = event["session"]
    if shape_of(body) == "ga":
        names = {
            "transcription": "audio.input.transcription",
            "turn_detection": "audio.input.turn_detection",
        }
    else:
        names = {"transcription": "input_audio_transcription", "turn_detection": "turn_detection"}
    assert null_paths(body) == {names[s] for s in settings}, body


def assert_shape(combo: Combo, events: list[dict[str, Any]]) -> None:
    shapes = {shape_of(e["session"]) for e in events}
    assert shapes == {expected_shape(combo)}, [e["session"] for e in events]


def assert_connected_where_expected(server: OpenAIRealtimeServer, combo: Combo) -> None:
    conn = server.connections[0]
    assert (conn.path, conn.query) == (combo.path, combo.query)


@asynccontextmanager
async def azure_session(
    server: OpenAIRealtimeServer, combo: Combo, **options: Any
) -> AsyncIterator[tuple[Any, Any]]:
    if combo.preview and not release_speaks_the_preview_protocol():
        pytest.skip("this release sends the GA shape to preview api-versions too")
    extra = {} if combo.api_version is None else {"api_version": combo.api_version}
    model = openai.realtime.RealtimeModel.with_azure(
        azure_deployment=DEPLOYMENT,
        azure_endpoint=server.azure_endpoint,
        api_key="test",
        **extra,
        **options,
    )
    session = model.session()
    try:
        await server.wait_for_client_event("session.update")
        yield model, session
    finally:
        await session.aclose()
        await model.aclose()


async def update(server: OpenAIRealtimeServer, model: Any, **options: Any) -> dict[str, Any]:
    """``model.update_options(...)`` and the ``session.update`` it puts on the wire."""
    sent = len(server.client_events_of("session.update"))
    model.update_options(**options)
    return await server.wait_for_client_event("session.update", count=sent + 1)


@pytest.mark.parametrize("combo", COMBOS)
async def test_none_at_construction_is_an_explicit_null_and_can_be_switched_back(
    combo: Combo, snapshot_json: SnapshotAssertion
) -> None:
    async with (
        OpenAIRealtimeServer() as server,
        azure_session(server, combo, input_audio_transcription=None, turn_detection=None) as (
            model,
            _,
        ),
    ):
        assert isinstance(model, llm.RealtimeModel)
        if not combo.preview:  # GA and no api-version: the GA model on every release
            assert isinstance(model, openai.realtime.RealtimeModel)
        assert model.capabilities.user_transcription is False
        assert model.capabilities.turn_detection is False

        on = await update(server, model, input_audio_transcription=transcription(combo))
        assert model.capabilities.user_transcription is True
        off = await update(server, model, input_audio_transcription=None)
        assert model.capabilities.user_transcription is False

        assert_only_these_nulls(on, set())
        assert_only_these_nulls(off, {"transcription"})
        events = server.client_events_of("session.update")
        assert_connected_where_expected(server, combo)
        assert_shape(combo, events)
        assert len(server.connections) == 1
        assert [project(e) for e in events] == snapshot_json


@pytest.mark.parametrize("combo", COMBOS)
async def test_switching_off_mid_session_sends_null_for_that_setting_only(
    combo: Combo, snapshot_json: SnapshotAssertion
) -> None:
    async with OpenAIRealtimeServer() as server, azure_session(server, combo) as (model, _):
        assert model.capabilities.user_transcription is True  # the Azure defaults

        no_transcription = await update(server, model, input_audio_transcription=None)
        assert model.capabilities.user_transcription is False
        no_vad = await update(server, model, turn_detection=None)
        back_on = await update(server, model, input_audio_transcription=transcription(combo))
        assert model.capabilities.user_transcription is True

        assert_only_these_nulls(no_transcription, {"transcription"})
        assert_only_these_nulls(no_vad, {"turn_detection"})
        assert_only_these_nulls(back_on, set())
        events = server.client_events_of("session.update")
        assert_connected_where_expected(server, combo)
        assert_shape(combo, events)
        assert [project(e) for e in events] == snapshot_json


@pytest.mark.parametrize("combo", COMBOS)
async def test_a_reconnect_sends_the_nulls_again(
    combo: Combo, snapshot_json: SnapshotAssertion
) -> None:
    async with (
        OpenAIRealtimeServer() as server,
        azure_session(server, combo, input_audio_transcription=None) as (_, session),
    ):
        session.on("error", lambda _: None)  # the drop is reported as a recoverable error
        await server.drop()
        await server.wait_for_connection(2)
        await server.wait_for_client_event("session.update", count=2)

        assert [(c.path, c.query) for c in server.connections] == [(combo.path, combo.query)] * 2
        events = server.client_events_of("session.update")
        assert_shape(combo, events)
        assert [project(e) for e in events] == snapshot_json


@pytest.mark.parametrize("api_version", ["2025-08-28", "2025-10-01", None])
def test_ga_api_versions_build_the_ga_model(api_version: str | None) -> None:
    extra = {} if api_version is None else {"api_version": api_version}
    model = openai.realtime.RealtimeModel.with_azure(
        azure_deployment=DEPLOYMENT,
        azure_endpoint="https://example.openai.azure.com",
        api_key="test",
        input_audio_transcription=None,
        turn_detection=None,
        **extra,
    )
    assert isinstance(model, openai.realtime.RealtimeModel)
    assert (model.capabilities.user_transcription, model.capabilities.turn_detection) == (
        False,
        False,
    )


@pytest.mark.parametrize(
    ("api_version", "ga"),
    [
        ("2025-08-28", True),
        ("2026-01-15", True),
        ("2025-04-01-preview", False),
        ("2024-10-01-preview", False),
        ("2025-08-28-preview", False),
        ("2024-12-17", False),
        ("latest", False),
    ],
)
def test_which_api_versions_are_ga(api_version: str, ga: bool) -> None:
    from livekit_ext.azure import is_ga_api_version

    assert is_ga_api_version(api_version) is ga


needs_applied = pytest.mark.skipif(
    os.environ.get("LIVEKIT_EXT_DISABLE", "").strip().lower() in ("1", "true", "yes"),
    reason="checks the extension itself; LIVEKIT_EXT_DISABLE runs upstream alone",
)


@needs_applied
def test_status_reports_the_feature_patched_on_every_tested_release() -> None:
    status = livekit_ext.status()["azure_explicit_nulls"]
    installed = _compat.installed_version("livekit-agents")
    if installed not in _compat.TESTED_RELEASES:
        pytest.skip(f"no recorded expectation for livekit-agents {installed}")
    # no tested release gets it fully right: 1.4 lacks the GA routing, 1.5+ drop the nulls
    # in the flat shape. A release that fixes it upstream will show up here as "native".
    assert status.state == "patched", status.reason
    assert status.reason


@needs_applied
async def test_revert_restores_upstream_and_apply_brings_the_nulls_back() -> None:
    combo = Combo(
        "2025-08-28", "/openai/realtime", {"api-version": "2025-08-28", "deployment": DEPLOYMENT}
    )
    if not release_speaks_the_preview_protocol():
        pytest.skip("this release sends the GA shape, explicit nulls included: nothing to revert")
    livekit_ext.revert()
    try:
        async with OpenAIRealtimeServer() as server:
            try:
                ctx = azure_session(server, combo, input_audio_transcription=None)
                async with ctx:
                    first = server.client_events_of("session.update")[0]
                    container, key = settings_of(first["session"])
                    # upstream 1.5+: the flat shape drops the None, Azure keeps transcribing
                    assert key not in container
            except ValueError as e:  # upstream 1.4: with_azure builds the preview model
                assert "must be an instance of InputAudioTranscription" in str(e)
    finally:
        livekit_ext.apply()

    async with (
        OpenAIRealtimeServer() as server,
        azure_session(server, combo, input_audio_transcription=None),
    ):
        first = server.client_events_of("session.update")[0]
        container, key = settings_of(first["session"])
        assert container[key] is None


def test_missing_credentials_still_raise_as_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    """The routing leaves upstream's own checks in place: no key and no token is an error."""
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="credentials"):
        openai.realtime.RealtimeModel.with_azure(
            azure_deployment=DEPLOYMENT,
            azure_endpoint="https://example.openai.azure.com",
            api_version="2025-08-28",
            input_audio_transcription=None,
        )


def share_model_options(session: Any) -> None:
    """Make ``session`` diff ``update_options`` against its model's options, as the sessions of
    1.5.1 to 1.5.6 do (they keep none of their own): upstream's own code, reading
    ``self._opts``, then reads the model's."""
    cls = type(session)
    shared = property(lambda self: self._realtime_model._opts)
    vars(session).pop("_opts", None)
    session.__class__ = type(f"SharedOptions{cls.__name__}", (cls,), {"_opts": shared})


@needs_applied
@pytest.mark.parametrize("combo", COMBOS)
async def test_a_session_diffing_against_its_models_options_still_sends_the_null(
    combo: Combo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1.5.1 to 1.5.6 sent no ``session.update`` for a mid-session ``model.update_options``: the
    model stores the new value before it forwards the call, and the session diffed against
    it. Emulated on the installed release; the behaviour sweep runs it on 1.5.1 itself."""
    from livekit_ext import azure

    if not releases_flatten_ga_sessions():
        pytest.skip("this release's sessions send every setting they are given, no diff")
    monkeypatch.setattr(azure.gaps(), "rewind_model_options", True, raising=False)
    async with OpenAIRealtimeServer() as server, azure_session(server, combo) as (model, session):
        share_model_options(session)
        no_transcription = await update(server, model, input_audio_transcription=None)
        no_vad = await update(server, model, turn_detection=None)

        assert_only_these_nulls(no_transcription, {"transcription"})
        assert_only_these_nulls(no_vad, {"turn_detection"})
        # the session was shown the old values for the call only: the new ones stand
        assert model._opts.input_audio_transcription is None
        assert model._opts.turn_detection is None
        assert model.capabilities.user_transcription is False
