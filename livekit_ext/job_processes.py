"""Job processes: ``import livekit_ext`` in the worker's main process reaches every job.

livekit runs each job in a process of its own, which imports the module that defines the
entrypoint and runs the server's setup function (``setup_fnc``/prewarm) there. An application
that imports livekit_ext only where it builds the server (its ``__main__`` block, a launcher
script) would run its jobs unpatched, silently. Here the worker's process pool is handed a
setup function that livekit pickles by reference: unpickling it in the job process imports
livekit_ext there (which applies as usual, ``LIVEKIT_EXT_DISABLE`` included), and it then runs
the application's own setup. The thread executor shares the worker's process: nothing changes.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable
from typing import Any

from . import _touchpoints as tp
from ._engine import Feature, Probe
from ._wrapping import Patcher, when_active

logger = logging.getLogger("livekit_ext")

FEATURE = "job_processes"

PROC_POOL_INIT = tp.wrap(
    "the worker's process pool: its initialize_process_fnc imports livekit_ext first",
    "livekit.agents.ipc.proc_pool:ProcPool.__init__",
)


def setup_job_process(setup: Callable[[Any], Any] | None, proc: Any) -> Any:
    """Runs in the job process, where unpickling this function imported livekit_ext; then the
    application's own setup, unchanged."""
    logger.debug("livekit_ext: imported in job process %d before the server's setup", os.getpid())
    return setup(proc) if setup is not None else None


def _with_livekit_ext(setup: Any) -> Any:
    if isinstance(setup, functools.partial) and setup.func is setup_job_process:
        return setup  # already ours
    return functools.partial(setup_job_process, setup)


@when_active(FEATURE)
def _proc_pool_init(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    if "initialize_process_fnc" in kwargs:
        kwargs = {
            **kwargs,
            "initialize_process_fnc": _with_livekit_ext(kwargs["initialize_process_fnc"]),
        }
    return wrapped(*args, **kwargs)


class JobProcesses(Feature):
    name = FEATURE
    description = "a job process imports livekit_ext before the server's setup runs there"
    touchpoints = tp.declared(globals())

    def probe(self) -> Probe:
        params = inspect.signature(PROC_POOL_INIT.owner()).parameters
        if "initialize_process_fnc" not in params:
            return Probe("unsupported", "ProcPool takes no initialize_process_fnc")
        return Probe(
            "patchable", "the worker's process pool imports livekit_ext in each job process"
        )

    def install(self, patcher: Patcher) -> None:
        patcher.wrap(PROC_POOL_INIT, _proc_pool_init)
