"""Facts about the installed livekit packages, computed once at import.

The supported range is declared once (``SUPPORTED``); everything else is probed
from what the installed version actually has, not from its version string.
"""

from __future__ import annotations

import logging
from importlib import metadata

from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

logger = logging.getLogger("livekit_ext")

SUPPORTED = Requirement("livekit-agents>=1.4.6,<1.9")
"""The livekit-agents releases this package is tested against (1.4.6 to 1.8.x)."""

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


def range_problem() -> str | None:
    """Why the installed livekit-agents is outside the supported range, or None."""
    found = installed_version("livekit-agents")
    if found is None:
        return "livekit-agents is not installed"
    try:
        parsed = Version(found)
    except InvalidVersion:
        return f"livekit-agents {found} has an unparseable version"
    if not SUPPORTED.specifier.contains(parsed, prereleases=True):
        return f"livekit-agents {found} is outside the supported range {SUPPORTED.specifier}"
    return None
