"""Azure realtime, pure logic: api-versions, the with_azure plan, the GA URL, flat nulls."""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

from .probes import FLAT_NAMES

FIRST_GA_API_VERSION = "2025-08-28"
"""The first Azure api-version of the GA realtime protocol; later dated versions are GA too."""

# what with_azure's arguments are called, and which the caller can switch off with None
NULLABLE = ("input_audio_transcription", "turn_detection")
# with_azure arguments that only locate and authenticate the deployment
LOCATION_ARGS = (
    "azure_deployment",
    "azure_endpoint",
    "api_version",
    "api_key",
    "entra_token",
    "base_url",
)
# audio-input settings a 1.4 model forwards to its sessions on every update_options
FORWARDED_EVERY_TIME = (
    "turn_detection",
    "input_audio_transcription",
    "input_audio_noise_reduction",
)


def is_ga_api_version(api_version: str) -> bool:
    """Whether an Azure api-version speaks the GA realtime protocol (dated, not a preview)."""
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(.*)", api_version.strip())
    if match is None or "preview" in match.group(2).lower():
        return False
    return match.group(1) >= FIRST_GA_API_VERSION


def placeholders() -> dict[str, Any]:
    """Preview-typed stand-ins that pass 1.4's with_azure checks; replaced right after."""
    from openai.types.beta.realtime.session import InputAudioTranscription, TurnDetection

    return {
        "input_audio_transcription": InputAudioTranscription(model="whisper-1"),
        "turn_detection": TurnDetection(type="server_vad"),
    }


def plan_with_azure(kwargs: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """(build the GA model?, the arguments upstream's with_azure can check)."""
    api_version = kwargs.get("api_version") or os.getenv("OPENAI_API_VERSION")
    ga = api_version is None or is_ga_api_version(api_version)
    stand_ins = placeholders()
    if ga:
        # any GA-typed config (or None) would fail the preview checks: stand in for all of them
        checked = {**kwargs, "api_version": api_version or FIRST_GA_API_VERSION}
        for name in NULLABLE:
            if name in kwargs:
                checked[name] = stand_ins[name]
        if "input_audio_noise_reduction" in kwargs:
            checked["input_audio_noise_reduction"] = None
        return True, checked
    nones = [name for name in NULLABLE if name in kwargs and kwargs[name] is None]
    if not nones:
        return False, kwargs
    return False, {**kwargs, **{name: stand_ins[name] for name in nones}}


def to_v1(url: str, base_url: str, deployment: str | None) -> str:
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


def add_flat_nulls(event: dict[str, Any], session: Any) -> None:
    """Set ``null`` in the flat body for every GA audio-input setting explicitly set to None."""
    audio_input = getattr(getattr(session, "audio", None), "input", None)
    if audio_input is None:
        return
    body = event.setdefault("session", {})
    for ga_name, flat_name in FLAT_NAMES.items():
        if ga_name in audio_input.model_fields_set and getattr(audio_input, ga_name) is None:
            body[flat_name] = None
