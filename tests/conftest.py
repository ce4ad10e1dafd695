from __future__ import annotations

import os
import weakref
from collections.abc import Iterator

import aiohttp
import pytest

import livekit_ext

# With LIVEKIT_EXT_DISABLE=1 the suite runs against upstream with patches/ applied: the
# behaviour tests must then pass on upstream's own code, so nothing is applied here.
EXTENSION_ENABLED = os.environ.get("LIVEKIT_EXT_DISABLE") != "1"


@pytest.fixture(autouse=True)
def _extension_applied() -> Iterator[None]:
    """Every test starts and ends with the extension applied, whatever it toggled."""
    if EXTENSION_ENABLED:
        livekit_ext.apply()
    yield
    if EXTENSION_ENABLED:
        livekit_ext.apply()


@pytest.fixture(autouse=True)
def _no_unclosed_http_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A test closes every aiohttp session it opened.

    A realtime model outside a job context owns the ``aiohttp.ClientSession`` it connects
    with, and only ``model.aclose()`` closes it (``AgentSession.aclose()`` does not): a test
    that forgets it ends the run with "Unclosed client session" warnings, reported far from
    the test that leaked. Here the leaking test itself fails.
    """
    opened: weakref.WeakSet[aiohttp.ClientSession] = weakref.WeakSet()
    init = aiohttp.ClientSession.__init__

    def recording_init(self: aiohttp.ClientSession, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        opened.add(self)

    monkeypatch.setattr(aiohttp.ClientSession, "__init__", recording_init)
    yield
    left_open = [s for s in opened if not s.closed]
    assert not left_open, f"{len(left_open)} aiohttp session(s) left open (close the model)"
