"""Optional dependencies, named by the ``livekit-ext[extra]`` that installs them.

A feature that needs one checks for it up front and fails with one line that says what to
install, instead of an upstream traceback from deep inside a running session.
"""

from __future__ import annotations

import importlib.util


class MissingExtra(ImportError):
    """``feature`` needs ``module``, which ``pip install "livekit-ext[extra]"`` installs."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f'{feature} needs {module}, which is not installed: pip install "livekit-ext[{extra}]"',
            name=module,
        )
        self.extra = extra


def require(feature: str, extra: str, *modules: str) -> None:
    """Raise ``MissingExtra`` for the first of ``modules`` that is not installed.

    Looks the modules up without importing them (a plugin import costs seconds).
    """
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a missing parent package; a None in sys.modules
            found = False
        if not found:
            raise MissingExtra(feature, extra, module)
