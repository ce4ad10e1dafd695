"""An agent module written as users write one: ``import livekit_ext`` at its top.

``tests/test_job_process.py`` registers ``entrypoint`` on a real ``AgentServer`` with a
process executor; livekit's job process imports this module to find it, and the entrypoint
reports (to ``<this module>.json`` in ``LIVEKIT_EXT_JOBPROC_REPORTS``) what the job saw there.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from jobproc_common import identity_of_one_utterance, write_report

import livekit_ext

IMPORTED_IN = os.getpid()


async def entrypoint(ctx: Any) -> None:
    """One utterance through a real session inside the job; report its identity fields."""
    report: dict[str, Any] = {
        "pid": os.getpid(),
        "module_imported_in": IMPORTED_IN,
        "status": {name: str(state) for name, state in livekit_ext.status().items()},
        "main": getattr(sys.modules.get("__main__"), "__file__", None),
    }
    try:
        report["identity"] = await identity_of_one_utterance()
    finally:
        write_report(__name__, report)
