"""Voice activity detection: webrtcvad behind a segmenter that owns the utterance state machine."""
