"""The transformers LLM engine: an instruction LLM through transformers, every stream's transcripts
generated as rows of one continuous batch.

- engine.py: the engine the LLM service runs (`VOXMESH_LLM_ENGINE=transformers`);
- scheduler.py: the one worker that admits requests into the batch and steps it;
- batch.py: the continuous batch itself (rows join and leave between steps);
- prompt.py: the chat messages of one request;
- guard.py: the faithfulness guard that falls back to the rule-based clean-up.
Nothing outside this package uses them.
"""
