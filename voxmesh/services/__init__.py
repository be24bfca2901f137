"""The inner services of the mesh, one deployable each: vad, asr, llm."""
