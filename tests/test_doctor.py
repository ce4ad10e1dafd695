"""``python -m livekit_ext``: doctor says what an agent gets; the CLI explains itself."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import livekit_ext
from livekit_ext.__main__ import doctor_line, main, parser
from livekit_ext._engine import Feature, Probe, _Engine
from livekit_ext._wrapping import Patcher

pytestmark = pytest.mark.unit

# An agent module: livekit first, the plugins, livekit_ext last (doctor imports the other
# way round: livekit_ext first, then the plugins, which import livekit.agents themselves).
AGENT = """
import livekit.agents
from livekit.plugins import google, openai
import livekit_ext
for name, state in livekit_ext.status().items():
    print(f"{name}: {state} ({state.reason})")
"""


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_EXT_")}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env)


@pytest.mark.skipif(
    os.environ.get("LIVEKIT_EXT_DISABLE") == "1", reason="exercises the extension itself"
)
def test_doctor_reports_what_an_agent_importing_the_plugins_gets() -> None:
    doctor = _python("-m", "livekit_ext", "doctor")
    agent = _python("-c", AGENT)
    assert agent.returncode == 0, agent.stderr
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    agent_lines = agent.stdout.strip().splitlines()
    features = {line.partition(":")[0] for line in agent_lines}
    doctor_lines = [
        line for line in doctor.stdout.splitlines() if line.partition(":")[0] in features
    ]
    assert doctor_lines == agent_lines
    assert not any(": unsupported" in line for line in doctor_lines), doctor.stdout


def test_doctor_prints_livekit_ext_version_first(capsys: pytest.CaptureFixture[str]) -> None:
    main(["doctor"])
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"livekit-ext {livekit_ext.__version__}"


class _ForAbsentPlugin(Feature):
    name = "absent_plugin_feature"
    description = "a feature of a plugin that is not installed"
    trigger = "livekit_ext_tests_absent_plugin"
    distribution = "livekit-ext-tests-absent-plugin"

    def probe(self) -> Probe:
        return Probe("patchable", "never reached")

    def install(self, patcher: Patcher) -> None:
        raise AssertionError("never installed")


def test_a_feature_of_a_plugin_that_is_not_installed_reads_as_not_needed() -> None:
    engine = _Engine()
    engine.register(_ForAbsentPlugin())
    engine.apply()
    state = engine.status()["absent_plugin_feature"]
    assert state == "unsupported"  # status() keeps its four states
    assert doctor_line("absent_plugin_feature", state) == (
        "absent_plugin_feature: not needed (livekit-ext-tests-absent-plugin is not installed)"
    )


def test_a_missing_touchpoint_is_not_read_as_not_needed() -> None:
    state = livekit_ext.FeatureStatus("unsupported", "missing upstream touchpoint: x:Y.z (why)")
    assert doctor_line("f", state) == "f: unsupported (missing upstream touchpoint: x:Y.z (why))"


def test_no_command_prints_the_help_and_exits_0() -> None:
    done = _python("-m", "livekit_ext")
    assert done.returncode == 0, done.stderr
    assert "doctor" in done.stdout and "demo" in done.stdout
    assert _python("-m", "livekit_ext", "--version").stdout.strip() == livekit_ext.__version__


def test_every_option_has_help_and_live_names_the_keys_it_needs() -> None:
    cli = parser()
    subcommands = next(a for a in cli._actions if a.dest == "command").choices
    assert subcommands is not None
    for command in (cli, *subcommands.values()):
        for action in command._actions:
            assert action.help, f"{command.prog} {action.option_strings or action.dest}"
    live_help = subcommands["demo"].format_help()
    assert "OPENAI_API_KEY" in live_help and "GOOGLE_API_KEY" in live_help
