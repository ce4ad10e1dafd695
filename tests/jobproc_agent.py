"""An agent module written as users write one: ``import livekit_ext`` at its top.

``tests/test_job_process.py`` registers ``entrypoint`` on a real ``AgentServer`` with a
process executor; livekit's job process imports this module to find it, and the entrypoint
reports (to the file named by ``LIVEKIT_EXT_JOBPROC_REPORT``) what the job saw there.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import livekit_ext
from livekit_ext.testing import OpenAIRealtimeServer
from livekit_ext.testing import openai_server as oai
from livekit_ext.testing.sessions import openai_realtime_session

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
        async with (
            OpenAIRealtimeServer() as server,
            openai_realtime_session(server) as (_, rec),
        ):
            await server.send(
                oai.speech_started("item_job"), oai.transcription_completed("item_job", "hi")
            )
            (final,) = await rec.wait_for_finals(1)
        identity = livekit_ext.identity(final)
        report["identity"] = [identity.item_id, identity.speech_started_at, identity.source]
    finally:
        Path(os.environ["LIVEKIT_EXT_JOBPROC_REPORT"]).write_text(json.dumps(report))
