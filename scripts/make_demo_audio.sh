#!/usr/bin/env bash
# Regenerate livekit_ext/demo/assets/phone_number.{wav,json}: a caller reading a Norwegian-style
# 8-digit phone number in English, two digits at a time ("four seven, nine one, ...").
#
# Needs espeak-ng, sox and a python3 (stdlib only): apt-get install -y espeak-ng sox
#
# Why these settings: the asset is decoded by PocketSphinxSTT (CMU Sphinx en-us model + a digits
# grammar). espeak-ng's default formant voice is barely intelligible to that acoustic model; the
# Klatt variant "en-us+klatt4" at 160 wpm with a 100 ms word gap is recognised reliably. Each pair
# is synthesised on its own and the pairs are joined with 0.35 s of digital silence, because a
# comma inside one espeak sentence adds a phrase-final vowel tail that Sphinx hears as "eight".
# sox runs with -D (no dither) so the output is byte-for-byte reproducible, and with -G where it
# resamples, because the Klatt voice peaks close to full scale and would clip a few samples.
# Made with espeak-ng 1.51 and SoX 14.4.2 (Debian bookworm); other versions may differ slightly,
# so the JSON records the espeak-ng version and the speech times are measured, not assumed.
set -euo pipefail

VOICE="en-us+klatt4"   # espeak-ng -v
SPEED=160              # espeak-ng -s, words per minute
WORD_GAP=10            # espeak-ng -g, pause between words in units of 10 ms
PAIR_GAP=0.35          # seconds of silence between digit pairs
EDGE=0.5               # seconds of silence before and after the speech
RATE=16000             # output: 16 kHz mono signed 16-bit PCM
PAIRS=("four seven" "nine one" "two three" "five eight")
DIGITS="47912358"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="$root/livekit_ext/demo/assets"
wav="$out_dir/phone_number.wav"
json="$out_dir/phone_number.json"
mkdir -p "$out_dir"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

sox -D -n -r "$RATE" -c 1 -b 16 "$tmp/gap.wav" trim 0 "$PAIR_GAP"
inputs=()
for i in "${!PAIRS[@]}"; do
    espeak-ng -v "$VOICE" -s "$SPEED" -g "$WORD_GAP" -w "$tmp/raw$i.wav" "${PAIRS[$i]}"
    # resample, then trim espeak's own leading/trailing silence so the pauses are exactly ours
    sox -D -G "$tmp/raw$i.wav" -r "$RATE" -c 1 -b 16 "$tmp/pair$i.wav" \
        silence 1 0.01 0.1% reverse silence 1 0.01 0.1% reverse
    [[ $i -gt 0 ]] && inputs+=("$tmp/gap.wav")
    inputs+=("$tmp/pair$i.wav")
done
sox -D "${inputs[@]}" -r "$RATE" -c 1 -b 16 "$wav" pad "$EDGE" "$EDGE"

# Measure where the speech is (first/last sample above -50 dBFS), overall and per pair.
espeak_version="$(espeak-ng --version | head -n 1)"
python3 - "$wav" "$json" "$DIGITS" "$VOICE" "$SPEED" "$WORD_GAP" "$PAIR_GAP" "$espeak_version" \
    "${PAIRS[@]}" <<'EOF'
import array
import json
import sys
import wave

wav, out, digits, voice, speed, word_gap, pair_gap, version, *pairs = sys.argv[1:]
with wave.open(wav, "rb") as w:
    rate = w.getframerate()
    samples = array.array("h", w.readframes(w.getnframes()))
threshold = int(32768 * 10 ** (-50 / 20))
loud = [i for i, s in enumerate(samples) if abs(s) > threshold]
# a run of >= 150 ms below the threshold separates two pairs
runs, start, prev = [], loud[0], loud[0]
for i in loud[1:]:
    if i - prev > 0.15 * rate:
        runs.append((start, prev + 1))
        start = i
    prev = i
runs.append((start, prev + 1))
assert len(runs) == len(pairs), f"expected {len(pairs)} spoken pairs, measured {len(runs)}"
meta = {
    "digits": digits,
    "text": ", ".join(pairs),
    "words": " ".join(pairs).split(),
    "sample_rate": rate,
    "duration": round(len(samples) / rate, 3),
    "speech_start": round(runs[0][0] / rate, 3),
    "speech_end": round(runs[-1][1] / rate, 3),
    "pairs": [
        {"text": p, "start": round(a / rate, 3), "end": round(b / rate, 3)}
        for p, (a, b) in zip(pairs, runs)
    ],
    "generator": {
        "tool": "espeak-ng",
        "tool_version": version.split("  Data at:")[0].strip(),
        "voice": voice,
        "speed_wpm": int(speed),
        "word_gap_10ms": int(word_gap),
        "pair_gap_s": float(pair_gap),
        "script": "scripts/make_demo_audio.sh",
    },
}
with open(out, "w") as f:
    json.dump(meta, f, indent=2)
    f.write("\n")
print(f"{wav}: {meta['duration']} s, speech {meta['speech_start']}-{meta['speech_end']} s")
EOF
