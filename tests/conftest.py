from __future__ import annotations

import os
from collections.abc import Iterator

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
