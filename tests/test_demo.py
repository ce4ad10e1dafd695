"""``python -m livekit_ext demo`` explains itself: run in-process on both providers.

Each run takes about 12 s (the recording plays in real time), so one provider runs in the
default mode and the other with ``as_json``; the story is the same text in both, on stdout or
on stderr.
"""

from __future__ import annotations

import json

import pytest

from livekit_ext.demo.audio import load_phone_number
from livekit_ext.demo.run import digits_in, run_demo

DIGITS = load_phone_number()[1]["digits"]
CLOSING = f"result: the tool saved {DIGITS}, the number the caller said"
"""The demo's last line: the same whichever provider plays the model."""
COLUMNS = ["item", "start", "realtime", "stt"]
CALLOUT = (
    f">>> save_phone_number(): the realtime model heard 47912353, the STT heard {DIGITS}, "
    f"and the tool saved {DIGITS}"
)


@pytest.mark.wire
@pytest.mark.parametrize(
    ("provider", "as_json", "trace"),
    [("openai", False, False), ("gemini", True, True)],
    ids=["openai", "gemini-json-trace"],
)
def test_the_demo_explains_itself_and_ends_the_same_for_each_provider(
    capsys: pytest.CaptureFixture[str], provider: str, as_json: bool, trace: bool
) -> None:
    assert run_demo(provider=provider, as_json=as_json, trace=trace) == 0
    out, err = capsys.readouterr()
    story = err if as_json else out
    if as_json:  # stdout is the machine-readable line alone
        (line,) = out.splitlines()
        result = json.loads(line)
        assert result["provider"] == provider
        assert result["saved"] == result["expected"] == DIGITS
        assert result["stt_heard"] == DIGITS and result["utterances"] == 1
        assert digits_in(result["realtime_heard"]) == "47912353"
    else:
        assert "{" not in out  # no JSON without as_json
    lines = story.splitlines()

    # what is about to happen, in two lines
    assert lines[0].startswith("A recorded caller reads out a phone number to a realtime model")
    assert "loopback server that mishears one digit" in lines[0]
    assert "parallel STT" in lines[1] and "saves the STT's" in lines[1]
    assert lines[2] == ""

    # a legend for every column, then the header row
    header = next(i for i, line in enumerate(lines) if line.split() == COLUMNS)
    legend = lines[:header]
    for column in COLUMNS:
        assert any(line.startswith(f"  {column} ") for line in legend), column

    # the rows: one utterance, shared by both engines, no row repeated
    rows = lines[header + 1 : lines.index("", header)]
    assert len(rows) >= 3
    assert len(set(rows)) == len(rows), rows
    assert len({row.split()[0] for row in rows}) == 1  # one item_id for both engines
    assert rows[-1].endswith(f"five three [final]  {DIGITS} [final]")

    # the moment that matters, then the reply (one "saved") and the closing line
    assert CALLOUT in lines
    assert f"agent: Thanks, I saved {DIGITS}." in lines
    assert story.count("saved saved") == 0
    assert lines[-1] == CLOSING

    if trace:  # the span tree: the utterance on user_speaking, the answer linked to it
        tree = lines[lines.index(next(x for x in lines if x.startswith("the call's spans"))) :]
        item = rows[0].split()[0]
        assert "  agent_session  +0.00s" in "\n".join(tree)
        # on user_speaking (the model's), the parallel STT's user_turn and the agent_turn
        assert tree.count(f"      lk.utterance.item_id = '{item}'") == 3
        assert any("lk.pii.user_transcript = 'my number is" in x for x in tree)
        assert f"      -> links to user_speaking [{item}]" in tree
    else:
        assert "the call's spans" not in story


@pytest.mark.unit
def test_digits_in_reads_spelled_and_written_digits() -> None:
    assert digits_in("my number is four seven, nine one") == "4791"
    assert digits_in("Oh five 12") == "0512"
    assert digits_in("") == ""
