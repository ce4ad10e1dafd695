"""Inside livekit's own job process: an agent module importing livekit_ext runs patched.

A real ``AgentServer`` with the process executor (its default ``multiprocessing`` context,
forkserver on Linux: a fresh interpreter, not a fork of this one), unregistered, and a
simulated job (``simulate_job(fake_job=True)``): no LiveKit server. The job process imports
the agent module to find its entrypoint; the entrypoint drives one utterance through a real
session there and reports what it saw. Slow (a process start), so behind the ``jobproc``
marker; ``.ci/run`` runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import jobproc_agent
import pytest
from livekit.agents import AgentServer, JobExecutorType

pytestmark = [pytest.mark.jobproc, pytest.mark.wire]
EXTENSION_DISABLED = os.environ.get("LIVEKIT_EXT_DISABLE") == "1"


async def _wait_for(path: Path, timeout: float) -> dict[str, object]:
    deadline = asyncio.get_running_loop().time() + timeout
    while not path.exists():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the job wrote no report within {timeout}s")
        await asyncio.sleep(0.1)
    return dict(json.loads(path.read_text()))


@pytest.mark.skipif(EXTENSION_DISABLED, reason="the extension applied by an agent's import")
async def test_an_agent_importing_livekit_ext_runs_patched_in_its_job_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report_path = tmp_path / "report.json"
    monkeypatch.setenv("LIVEKIT_EXT_JOBPROC_REPORT", str(report_path))
    # unregistered: never dialled, but 1.4 still asks for a URL and credentials
    server = AgentServer(
        job_executor_type=JobExecutorType.PROCESS,
        num_idle_processes=0,
        port=0,
        ws_url="ws://127.0.0.1:9",
        api_key="livekit-ext-test",
        api_secret="livekit-ext-test-secret-of-some-length",
    )
    server.rtc_session()(jobproc_agent.entrypoint)
    started = asyncio.Event()
    server.on("worker_started", lambda: started.set())
    running = asyncio.create_task(server.run(devmode=True, unregistered=True))
    try:
        waiting = asyncio.ensure_future(started.wait())
        await asyncio.wait({waiting, running}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            running.result()  # raises why the server did not start
        assert started.is_set(), "the AgentServer did not start within 30s"
        await server.simulate_job("livekit-ext-job", fake_job=True)
        report = await _wait_for(report_path, 60)
    finally:
        await server.aclose()
        running.cancel()
    assert report["pid"] != os.getpid()  # the job ran in its own process...
    assert report["module_imported_in"] == report["pid"]  # ...which imported the agent module
    assert report["status"]["transcript_identity"] in ("patched", "native")
    item_id, started_at, source = report["identity"]  # type: ignore[misc]
    assert item_id == "item_job" and started_at is not None and source == "realtime"
