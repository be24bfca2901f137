"""The gateway: the one service clients call; it pipes each client stream through VAD -> ASR -> LLM."""
