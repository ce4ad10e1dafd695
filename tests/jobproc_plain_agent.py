"""An agent module that does not import livekit_ext: the worker's main process did.

``tests/test_job_process.py`` registers ``entrypoint`` on a real ``AgentServer`` in a process
that imported livekit_ext. The entrypoint first reports whether livekit_ext was already
imported in its job process (the pool's setup function does that), and only then imports it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from jobproc_common import identity_of_one_utterance, write_report


async def entrypoint(ctx: Any) -> None:
    report: dict[str, Any] = {"pid": os.getpid(), "already_imported": "livekit_ext" in sys.modules}
    try:
        import livekit_ext

        report["status"] = {name: str(state) for name, state in livekit_ext.status().items()}
        report["identity"] = await identity_of_one_utterance()
    finally:
        write_report(__name__, report)
