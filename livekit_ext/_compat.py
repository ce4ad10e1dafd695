"""Facts about the installed livekit packages, computed once at import.

The supported range is declared once (``SUPPORTED``); everything else is probed
from what the installed version actually has, not from its version string.
"""

from __future__ import annotations

import logging
import re
from importlib import metadata

logger = logging.getLogger("livekit_ext")

SUPPORTED = "livekit-agents>=1.4.6,<1.9"
"""The livekit-agents releases this package supports (1.4.6 to 1.8.x); pyproject.toml agrees."""

TESTED_RELEASES = ("1.4.6", "1.5.17", "1.6.10", "1.7.1", "1.8.9")
"""The version matrix run in CI."""

PACKAGES = ("livekit-agents", "livekit-plugins-openai", "livekit-plugins-google")


def installed_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def installed_versions() -> dict[str, str | None]:
    return {name: installed_version(name) for name in PACKAGES}


def _release(version: str) -> tuple[int, ...] | None:
    """The numeric release of a version string ("1.5.17rc1" -> (1, 5, 17))."""
    match = re.match(r"^\s*v?(\d+(?:\.\d+)*)", version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def _satisfies(release: tuple[int, ...], clause: str) -> bool:
    op, bound_text = re.match(r"^(>=|<=|==|<|>)(.+)$", clause.strip()).groups()  # type: ignore[union-attr]
    bound = _release(bound_text)
    assert bound is not None
    width = max(len(release), len(bound))
    left, right = release + (0,) * (width - len(release)), bound + (0,) * (width - len(bound))
    return {
        ">=": left >= right,
        "<=": left <= right,
        "==": left == right,
        "<": left < right,
        ">": left > right,
    }[op]


def range_problem() -> str | None:
    """Why the installed livekit-agents is outside the supported range, or None.

    (A tiny parser instead of ``packaging``: importing that costs ~60 ms at import time.)
    """
    found = installed_version("livekit-agents")
    if found is None:
        return "livekit-agents is not installed"
    release = _release(found)
    if release is None:
        return f"livekit-agents {found} has an unparseable version"
    specifier = SUPPORTED.removeprefix("livekit-agents")
    if not all(_satisfies(release, clause) for clause in specifier.split(",")):
        return f"livekit-agents {found} is outside the supported range {specifier}"
    return None
