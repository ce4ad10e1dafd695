"""What both job-process agents do inside the job. Imports nothing of livekit_ext at its top:
``jobproc_plain_agent`` must not import it before its entrypoint has looked."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


async def identity_of_one_utterance() -> list[Any]:
    """One utterance through a real session in this process: its identity fields."""
    import livekit_ext
    from livekit_ext.testing import OpenAIRealtimeServer
    from livekit_ext.testing import openai_server as oai
    from livekit_ext.testing.sessions import openai_realtime_session

    async with OpenAIRealtimeServer() as server, openai_realtime_session(server) as (_, rec):
        await server.send(
            oai.speech_started("item_job"), oai.transcription_completed("item_job", "hi")
        )
        (final,) = await rec.wait_for_finals(1)
    identity = livekit_ext.identity(final)
    return [identity.item_id, identity.speech_started_at, identity.source]


def write_report(agent_module: str, report: dict[str, Any]) -> None:
    """``<agent module>.json`` in the directory the test named."""
    reports = Path(os.environ["LIVEKIT_EXT_JOBPROC_REPORTS"])
    (reports / f"{agent_module}.json").write_text(json.dumps(report))
