"""Which livekit-agents release is installed, and what the package makes of it.

The supported range is declared once here (``MIN_RELEASE``) and checked at run time, as
OpenTelemetry's instrumentations do (``_instruments``): ``pyproject.toml`` names livekit-agents
with no bound, so installing livekit-ext never changes the user's livekit. There is no upper
bound either. A release newer than ``NEWEST_TESTED`` gets every feature whose touchpoints and
probes hold, with one warning; ``LIVEKIT_EXT_STRICT=1`` applies nothing there. Below
``MIN_RELEASE`` nothing is applied, with one warning naming the release to move to.
Everything else is probed from what the installed release has, not from its version string.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

MIN_RELEASE = "1.4.6"
"""The oldest supported livekit-agents release. Not a bound in pyproject.toml (pip would act
on one and change the user's livekit); ``scripts/check_dist.py`` checks that none is there."""

INSTRUMENTS = (f"livekit-agents >= {MIN_RELEASE}",)
"""What livekit-ext patches, as requirement strings (OpenTelemetry's ``_instruments``)."""

TESTED_RELEASES = ("1.4.6", "1.5.17", "1.6.10", "1.7.1", "1.8.9")
"""The version matrix run in CI (``scripts/sweep.py`` checks every release in between)."""

NEWEST_TESTED = TESTED_RELEASES[-1]

PACKAGES = ("livekit-agents", "livekit-plugins-openai", "livekit-plugins-google")


def installed_version(dist: str) -> str | None:
    # imported here: ~35 ms that ``import livekit_ext`` need not pay before livekit is imported
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def installed_versions() -> dict[str, str | None]:
    return {name: installed_version(name) for name in PACKAGES}


def release(version: str) -> tuple[int, ...] | None:
    """The numeric release of a version string ("1.5.17rc1" -> (1, 5, 17)).

    (A tiny parser instead of ``packaging``: importing that costs ~60 ms.)
    """
    match = re.match(r"^\s*v?(\d+(?:\.\d+)*)", version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def _padded(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)), b + (0,) * (width - len(b))


def is_older(version: tuple[int, ...], than: str) -> bool:
    left, right = _padded(version, release(than) or ())
    return left < right


@dataclass(frozen=True)
class Verdict:
    """What to do with the installed livekit-agents: apply (perhaps with a warning) or not."""

    apply: bool
    warning: str | None = None


def strict() -> bool:
    return os.environ.get("LIVEKIT_EXT_STRICT", "").strip().lower() in ("1", "true", "yes")


def _below_range(found: str) -> str:
    """The warning for a release below the range: which release to move to, and how.

    The installed plugins move with it (they are released in lockstep with livekit-agents).
    """
    names = [
        name for name in PACKAGES if name == "livekit-agents" or installed_version(name) is not None
    ]
    command = " ".join(f"'{name}>={MIN_RELEASE}'" for name in names)
    return (
        f"livekit-agents {found} is older than {MIN_RELEASE}, the oldest supported release; "
        f"no feature is applied. Move to {MIN_RELEASE} or newer: pip install {command}"
    )


def verdict() -> Verdict:
    found = installed_version("livekit-agents")
    if found is None:
        return Verdict(False, "livekit-agents is not installed; no feature is applied")
    parsed = release(found)
    if parsed is None:
        return Verdict(False, f"livekit-agents {found} has an unparseable version; nothing applied")
    if is_older(parsed, MIN_RELEASE):
        return Verdict(False, _below_range(found))
    if is_older(release(NEWEST_TESTED) or (), found):
        if strict():
            return Verdict(
                False,
                f"livekit-agents {found} is newer than {NEWEST_TESTED}, the newest tested "
                "release, and LIVEKIT_EXT_STRICT=1; no feature is applied",
            )
        return Verdict(
            True,
            f"livekit-agents {found} is newer than {NEWEST_TESTED}, the newest tested release "
            "(untested); each feature is applied only where its touchpoints and probes hold",
        )
    return Verdict(True)
