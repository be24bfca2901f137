#!/usr/bin/env bash
# Rebuilds samples/names.flac (synthetic speech: espeak-ng, US English, 150 words a minute): one sentence
# naming a person whose name Whisper tiny.en does not know, for the phrase-hint tests. Its text is
# samples/names.txt. Needs: apt-get install espeak-ng sox.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
espeak-ng -v en-us -s 150 -w "$tmp/names.wav" "$(cat names.txt)"
sox "$tmp/names.wav" -r 16000 names.flac pad 0.3 0.6
