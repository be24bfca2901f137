"""Tiny, randomly initialised Voxtral models with a matching tekken tokenizer, built offline.

The compute path is the real one (mistral-common tokenizer -> transformers processor -> model -> decode);
only the sizes are tiny and the weights random, so the text they produce is gibberish. Tests build them
in fixtures; a person can build one to try the engines without a download:

    .venv/bin/python -m tests.tiny_models voxtral /tmp/tiny-voxtral
    VOXMESH_ASR_ENGINE=voxtral VOXMESH_ASR_MODEL=/tmp/tiny-voxtral voxmesh transcribe samples/welcome.flac
    .venv/bin/python -m tests.tiny_models voxtral-realtime /tmp/tiny-realtime
    VOXMESH_ASR_ENGINE=voxtral-realtime VOXMESH_ASR_MODEL=/tmp/tiny-realtime voxmesh transcribe samples/welcome.flac
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NUM_SPECIAL = 100
N_BPE = 1000  # byte tokens and the first merges of mistral-common's own tekken vocabulary
SPECIAL = {
    0: "<unk>", 1: "<s>", 2: "</s>", 3: "[INST]", 4: "[/INST]", 5: "[AVAILABLE_TOOLS]", 6: "[/AVAILABLE_TOOLS]",
    7: "[TOOL_RESULTS]", 8: "[/TOOL_RESULTS]", 9: "[TOOL_CALLS]", 10: "[IMG]", 11: "<pad>", 12: "[IMG_BREAK]",
    13: "[IMG_END]", 14: "[PREFIX]", 15: "[MIDDLE]", 16: "[SUFFIX]", 17: "[SYSTEM_PROMPT]", 18: "[/SYSTEM_PROMPT]",
    19: "[TOOL_CONTENT]", 20: "[ARGS]", 21: "[CALL_ID]", 24: "[AUDIO]", 25: "[BEGIN_AUDIO]", 32: "[STREAMING_PAD]",
    33: "[STREAMING_WORD]", 34: "[TRANSCRIBE]",
}
AUDIO_ENCODING = {"num_mel_bins": 128, "hop_length": 160, "window_size": 400}


def tekken(streaming: bool) -> dict:
    """A v7 tekken tokenizer: the public special-token layout, a small BPE vocabulary, an audio section."""
    import mistral_common

    source = Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"
    real = json.loads(source.read_text())
    audio = {"sampling_rate": 16000, "frame_rate": 12.5, "audio_encoding_config": AUDIO_ENCODING}
    if streaming:
        audio.update(transcription_format="streaming", transcription_delay_ms=480, streaming_look_ahead_ms=2.5,
                     streaming_look_back_ms=52.5, streaming_n_left_pad_tokens=32)
    else:
        audio.update(chunk_length_s=30.0, transcription_format="instruct")
    return {
        "config": {"pattern": real["config"]["pattern"], "num_vocab_tokens": N_BPE,
                   "default_vocab_size": NUM_SPECIAL + N_BPE, "default_num_special_tokens": NUM_SPECIAL,
                   "version": "v7"},
        "vocab": real["vocab"][:N_BPE],
        "special_tokens": [
            {"rank": i, "token_str": SPECIAL.get(i, f"<SPECIAL_{i}>"), "is_control": True} for i in range(NUM_SPECIAL)
        ],
        "audio": audio,
    }


def _spread(model, std: float = 0.3) -> None:
    """Re-draw the weight matrices wider than the init does, so a random model's greedy output varies
    with its input instead of repeating one token: tests that compare two decodes can then fail."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.normal_(0.0, std)


def build_voxtral(out: Path, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A tiny VoxtralForConditionalGeneration (Voxtral-Mini-3B-2507's architecture) with its processor."""
    import torch
    from transformers import (MistralCommonBackend, VoxtralConfig, VoxtralForConditionalGeneration,
                              VoxtralProcessor, WhisperFeatureExtractor)

    out.mkdir(parents=True, exist_ok=True)
    (out / "tekken.json").write_text(json.dumps(tekken(streaming=False)))
    tokenizer = MistralCommonBackend(tokenizer_path=str(out / "tekken.json"))
    processor = VoxtralProcessor(WhisperFeatureExtractor(feature_size=128), tokenizer)
    config = VoxtralConfig(
        audio_token_id=24,
        audio_config={"hidden_size": hidden, "intermediate_size": 4 * hidden, "num_hidden_layers": layers,
                      "num_attention_heads": 4, "num_mel_bins": 128, "max_source_positions": 1500},
        text_config={"model_type": "llama", "vocab_size": NUM_SPECIAL + N_BPE, "hidden_size": hidden,
                     "intermediate_size": 2 * hidden, "num_hidden_layers": layers, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "head_dim": hidden // 4, "max_position_embeddings": 4096,
                     "bos_token_id": 1, "eos_token_id": 2},
    )
    torch.manual_seed(seed)
    model = VoxtralForConditionalGeneration(config).eval()
    _spread(model)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_voxtral_realtime(out: Path, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A tiny VoxtralRealtimeForConditionalGeneration (Voxtral-Mini-4B-Realtime-2602's architecture)."""
    import torch
    from transformers import (MistralCommonBackend, VoxtralRealtimeConfig, VoxtralRealtimeFeatureExtractor,
                              VoxtralRealtimeForConditionalGeneration, VoxtralRealtimeProcessor)

    out.mkdir(parents=True, exist_ok=True)
    (out / "tekken.json").write_text(json.dumps(tekken(streaming=True)))
    tokenizer = MistralCommonBackend(tokenizer_path=str(out / "tekken.json"))
    processor = VoxtralRealtimeProcessor(VoxtralRealtimeFeatureExtractor(), tokenizer)
    config = VoxtralRealtimeConfig(
        audio_config={"hidden_size": hidden, "intermediate_size": 4 * hidden, "num_hidden_layers": layers,
                      "num_attention_heads": 4, "head_dim": hidden // 4, "sliding_window": 750},
        text_config={"vocab_size": NUM_SPECIAL + N_BPE, "hidden_size": hidden, "intermediate_size": 2 * hidden,
                     "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "head_dim": hidden // 4, "sliding_window": 8192, "tie_word_embeddings": True},
    )
    torch.manual_seed(seed)
    model = VoxtralRealtimeForConditionalGeneration(config).eval()
    _spread(model)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


BUILDERS = {"voxtral": build_voxtral, "voxtral-realtime": build_voxtral_realtime}


def main() -> None:
    parser = argparse.ArgumentParser(description="Build a tiny random Voxtral model directory, offline.")
    parser.add_argument("kind", choices=sorted(BUILDERS))
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    print(BUILDERS[args.kind](args.out))


if __name__ == "__main__":
    main()
