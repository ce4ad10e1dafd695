"""A feature whose optional dependency is missing says, in one line, which extra installs it."""

from __future__ import annotations

import sys

import pytest

from livekit_ext.__main__ import main
from livekit_ext._extras import MissingExtra
from livekit_ext.testing import GeminiLiveServer, OpenAIRealtimeServer

pytestmark = pytest.mark.unit


def _uninstalled(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``modules`` look uninstalled (a ``None`` in ``sys.modules`` blocks the import)."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_the_demo_without_pocketsphinx_prints_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _uninstalled(monkeypatch, "pocketsphinx")
    assert main(["demo"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and 'pip install "livekit-ext[demo]"' in err, err


@pytest.mark.parametrize(
    ("provider", "module", "extra"),
    [
        ("openai", "livekit.plugins.openai", "openai"),
        ("gemini", "livekit.plugins.google", "google"),
        ("gemini", "cryptography", "demo"),
    ],
)
def test_the_demo_without_a_provider_dependency_names_its_extra(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    provider: str,
    module: str,
    extra: str,
) -> None:
    _uninstalled(monkeypatch, module)
    assert main(["demo", "--provider", provider]) == 1
    assert f'pip install "livekit-ext[{extra}]"' in capsys.readouterr().err


@pytest.mark.parametrize(
    ("server", "module", "extra"),
    [
        (GeminiLiveServer, "google.genai", "google"),
        (GeminiLiveServer, "cryptography", "google"),
        (OpenAIRealtimeServer, "openai", "openai"),
    ],
)
def test_a_loopback_server_without_its_sdk_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, server: type, module: str, extra: str
) -> None:
    _uninstalled(monkeypatch, module)
    with pytest.raises(MissingExtra, match=rf'needs {module}\b.*"livekit-ext\[{extra}\]"'):
        server()
