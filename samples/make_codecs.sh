#!/usr/bin/env bash
# Rebuilds samples/codecs/: the real speech of ../shared/audio/jfk.flac (public domain) encoded by real
# encoders, as telephony and browsers send it, for the codec tests. Needs: apt-get install sox opus-tools ffmpeg.
#   jfk.ulaw, jfk.alaw   G.711 mu-law / A-law, 8 kHz mono, raw (sox)
#   jfk.opus             Opus in Ogg, 24 kb/s (opusenc)
#   jfk.webm             Opus in WebM, 24 kb/s, as MediaRecorder writes it (ffmpeg, libopus)
set -euo pipefail
cd "$(dirname "$0")"
src=../../shared/audio/jfk.flac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sox "$src" -r 8000 -c 1 -e u-law -b 8 -t raw codecs/jfk.ulaw
sox "$src" -r 8000 -c 1 -e a-law -b 8 -t raw codecs/jfk.alaw
sox "$src" -r 48000 -c 1 -b 16 "$tmp/jfk.wav"
opusenc --quiet --bitrate 24 "$tmp/jfk.wav" codecs/jfk.opus
ffmpeg -loglevel error -y -i "$tmp/jfk.wav" -c:a libopus -b:a 24k -f webm codecs/jfk.webm
