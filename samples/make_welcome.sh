#!/usr/bin/env bash
# Rebuilds samples/welcome.flac: four sentences from espeak-ng (apt-get install espeak-ng sox), with pauses
# between them so that each becomes its own utterance. Its text is samples/welcome.txt.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
i=0
while IFS= read -r sentence; do
  i=$((i + 1))
  espeak-ng -v en -s 150 -w "$tmp/$i.wav" "$sentence"
  sox "$tmp/$i.wav" "$tmp/p$i.wav" pad 0.5 0.8
done < welcome.txt
sox "$tmp"/p*.wav welcome.flac
