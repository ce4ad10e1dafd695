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
import tempfile
from pathlib import Path
from typing import Any

import jobproc_agent
import jobproc_plain_agent
import pytest
from livekit.agents import AgentServer, JobExecutorType

pytestmark = [pytest.mark.jobproc, pytest.mark.wire]
EXTENSION_DISABLED = os.environ.get("LIVEKIT_EXT_DISABLE") == "1"

# Job processes fork from livekit's forkserver, which keeps the environment it started with:
# one directory for the whole run, set before the first server starts, each agent its file.
REPORTS = Path(tempfile.mkdtemp(prefix="livekit-ext-jobproc-"))
os.environ["LIVEKIT_EXT_JOBPROC_REPORTS"] = str(REPORTS)


async def _wait_for(path: Path, timeout: float) -> dict[str, object]:
    deadline = asyncio.get_running_loop().time() + timeout
    while not path.exists():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the job wrote no report within {timeout}s")
        await asyncio.sleep(0.1)
    return dict(json.loads(path.read_text()))


async def _run_one_job(entrypoint: Any) -> dict[str, object]:
    """``entrypoint`` run by a real AgentServer with the process executor, one simulated job;
    the report it wrote (``<its module>.json``)."""
    report_path = REPORTS / f"{entrypoint.__module__}.json"
    report_path.unlink(missing_ok=True)
    # unregistered: never dialled, but 1.4 still asks for a URL and credentials
    server = AgentServer(
        job_executor_type=JobExecutorType.PROCESS,
        num_idle_processes=0,
        port=0,
        ws_url="ws://127.0.0.1:9",
        api_key="livekit-ext-test",
        api_secret="livekit-ext-test-secret-of-some-length",
    )
    server.rtc_session()(entrypoint)
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
        return await _wait_for(report_path, 60)
    finally:
        await server.aclose()
        running.cancel()


@pytest.mark.skipif(EXTENSION_DISABLED, reason="the extension applied by an agent's import")
async def test_an_agent_importing_livekit_ext_runs_patched_in_its_job_process() -> None:
    report = await _run_one_job(jobproc_agent.entrypoint)
    assert report["pid"] != os.getpid()  # the job ran in its own process...
    assert report["module_imported_in"] == report["pid"]  # ...which imported the agent module
    assert report["status"]["transcript_identity"] in ("patched", "native")  # type: ignore[index]
    item_id, started_at, source = report["identity"]  # type: ignore[misc]
    assert item_id == "item_job" and started_at is not None and source == "realtime"


@pytest.mark.skipif(EXTENSION_DISABLED, reason="the extension applied by the worker's import")
async def test_livekit_ext_imported_only_by_the_worker_reaches_its_job_processes() -> None:
    """The mistake of importing livekit_ext where the server is built (a ``__main__`` block, a
    launcher) but not in the agent module: the job process imports livekit_ext anyway, through
    the setup function of the worker's process pool, before the entrypoint runs."""
    report = await _run_one_job(jobproc_plain_agent.entrypoint)
    assert report["pid"] != os.getpid()
    assert report["already_imported"] is True  # before the entrypoint's own import
    assert report["status"]["job_processes"] == "patched"  # type: ignore[index]
    item_id, started_at, source = report["identity"]  # type: ignore[misc]
    assert item_id == "item_job" and started_at is not None and source == "realtime"
