"""Tiny, randomly initialised models with matching tokenizers, built offline: Voxtral (ASR) and causal
language models (the LLM post-processor).

The compute path is the real one (mistral-common tokenizer -> transformers processor -> model -> decode);
only the sizes are tiny and the weights random, so the text they produce is gibberish. Tests build them
in fixtures; a person can build one to try the engines without a download:

    .venv/bin/python -m tests.tiny_models voxtral /tmp/tiny-voxtral
    VOXMESH_ASR_ENGINE=voxtral VOXMESH_ASR_MODEL=/tmp/tiny-voxtral voxmesh transcribe samples/welcome.flac
    .venv/bin/python -m tests.tiny_models voxtral-realtime /tmp/tiny-realtime
    VOXMESH_ASR_ENGINE=voxtral-realtime VOXMESH_ASR_MODEL=/tmp/tiny-realtime voxmesh transcribe samples/welcome.flac
    .venv/bin/python -m tests.tiny_models causal-lm /tmp/tiny-llm
    VOXMESH_LLM_ENGINE=transformers VOXMESH_LLM_MODEL=/tmp/tiny-llm voxmesh transcribe samples/welcome.flac
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NUM_SPECIAL = 100
N_BPE = 1000  # byte tokens and the first merges of mistral-common's own tekken vocabulary
SPECIAL = {
    0: "<unk>",
    1: "<s>",
    2: "</s>",
    3: "[INST]",
    4: "[/INST]",
    5: "[AVAILABLE_TOOLS]",
    6: "[/AVAILABLE_TOOLS]",
    7: "[TOOL_RESULTS]",
    8: "[/TOOL_RESULTS]",
    9: "[TOOL_CALLS]",
    10: "[IMG]",
    11: "<pad>",
    12: "[IMG_BREAK]",
    13: "[IMG_END]",
    14: "[PREFIX]",
    15: "[MIDDLE]",
    16: "[SUFFIX]",
    17: "[SYSTEM_PROMPT]",
    18: "[/SYSTEM_PROMPT]",
    19: "[TOOL_CONTENT]",
    20: "[ARGS]",
    21: "[CALL_ID]",
    24: "[AUDIO]",
    25: "[BEGIN_AUDIO]",
    32: "[STREAMING_PAD]",
    33: "[STREAMING_WORD]",
    34: "[TRANSCRIBE]",
}
AUDIO_ENCODING = {"num_mel_bins": 128, "hop_length": 160, "window_size": 400}


def tekken(streaming: bool) -> dict:
    """A v7 tekken tokenizer: the public special-token layout, a small BPE vocabulary, an audio section."""
    import mistral_common

    source = Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"
    real = json.loads(source.read_text())
    audio = {"sampling_rate": 16000, "frame_rate": 12.5, "audio_encoding_config": AUDIO_ENCODING}
    if streaming:
        audio.update(
            transcription_format="streaming",
            transcription_delay_ms=480,
            streaming_look_ahead_ms=2.5,
            streaming_look_back_ms=52.5,
            streaming_n_left_pad_tokens=32,
        )
    else:
        audio.update(chunk_length_s=30.0, transcription_format="instruct")
    return {
        "config": {
            "pattern": real["config"]["pattern"],
            "num_vocab_tokens": N_BPE,
            "default_vocab_size": NUM_SPECIAL + N_BPE,
            "default_num_special_tokens": NUM_SPECIAL,
            "version": "v7",
        },
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
        for param in model.parameters():
            if param.dim() >= 2:
                param.normal_(0.0, std)


def _save_random(model_cls, config, processor, out: Path, seed: int) -> Path:
    """A randomly initialised (and spread) model of `config`, saved with its processor."""
    import torch

    torch.manual_seed(seed)
    model = model_cls(config).eval()
    _spread(model)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_voxtral(out: Path, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A tiny VoxtralForConditionalGeneration (Voxtral-Mini-3B-2507's architecture) with its processor."""
    from transformers import (
        MistralCommonBackend,
        VoxtralConfig,
        VoxtralForConditionalGeneration,
        VoxtralProcessor,
        WhisperFeatureExtractor,
    )

    out.mkdir(parents=True, exist_ok=True)
    (out / "tekken.json").write_text(json.dumps(tekken(streaming=False)))
    tokenizer = MistralCommonBackend(tokenizer_path=str(out / "tekken.json"))
    processor = VoxtralProcessor(WhisperFeatureExtractor(feature_size=128), tokenizer)
    config = VoxtralConfig(
        audio_token_id=24,
        audio_config={
            "hidden_size": hidden,
            "intermediate_size": 4 * hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": 4,
            "num_mel_bins": 128,
            "max_source_positions": 1500,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": NUM_SPECIAL + N_BPE,
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": hidden // 4,
            "max_position_embeddings": 4096,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
    )
    return _save_random(VoxtralForConditionalGeneration, config, processor, out, seed)


def build_voxtral_realtime(
    out: Path, hidden: int = 64, layers: int = 2, seed: int = 0, audio_window: int = 750, text_window: int = 8192
) -> Path:
    """A tiny VoxtralRealtimeForConditionalGeneration (Voxtral-Mini-4B-Realtime-2602's architecture; the
    real model's sliding windows unless told: short ones make tests of seconds slide)."""
    from transformers import (
        MistralCommonBackend,
        VoxtralRealtimeConfig,
        VoxtralRealtimeFeatureExtractor,
        VoxtralRealtimeForConditionalGeneration,
        VoxtralRealtimeProcessor,
    )

    out.mkdir(parents=True, exist_ok=True)
    (out / "tekken.json").write_text(json.dumps(tekken(streaming=True)))
    tokenizer = MistralCommonBackend(tokenizer_path=str(out / "tekken.json"))
    processor = VoxtralRealtimeProcessor(VoxtralRealtimeFeatureExtractor(), tokenizer)
    config = VoxtralRealtimeConfig(
        audio_config={
            "hidden_size": hidden,
            "intermediate_size": 4 * hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": 4,
            "head_dim": hidden // 4,
            "sliding_window": audio_window,
        },
        text_config={
            "vocab_size": NUM_SPECIAL + N_BPE,
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": hidden // 4,
            "sliding_window": text_window,
            "tie_word_embeddings": True,
        },
    )
    return _save_random(VoxtralRealtimeForConditionalGeneration, config, processor, out, seed)


CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CHAT_SPECIAL = ["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]


def _chat_template_tokenizer(vocab_size: int):
    """A byte-level BPE trained here on a few sentences, with a ChatML chat template (no mistral-common)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    text = (Path(__file__).resolve().parent.parent / "samples" / "welcome.txt").read_text()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=CHAT_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([text] * 4, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="<|im_end|>",
        chat_template=CHAT_TEMPLATE,
    )


def build_causal_lm(out: Path, tokenizer: str = "tekken", hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A tiny MistralForCausalLM (Ministral-8B-Instruct-2410's architecture: grouped-query attention, a
    sliding window; 2 layers, hidden 64) and its tokenizer.

    tokenizer="tekken": a text-only tekken file, read through mistral-common as Mistral checkpoints are;
    tokenizer="chat-template": a Hugging Face tokenizer with a Jinja chat template, as most other models ship.
    """
    import torch
    from transformers import GenerationConfig, MistralConfig, MistralForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    if tokenizer == "tekken":
        text_only = {k: v for k, v in tekken(streaming=False).items() if k != "audio"}
        (out / "tekken.json").write_text(json.dumps(text_only))
        vocab_size, bos, eos, pad = NUM_SPECIAL + N_BPE, 1, 2, 11
    elif tokenizer == "chat-template":
        hf_tokenizer = _chat_template_tokenizer(400)
        hf_tokenizer.save_pretrained(out)
        vocab_size = len(hf_tokenizer)
        bos, eos, pad = (hf_tokenizer.convert_tokens_to_ids(t) for t in ("<s>", "<|im_end|>", "<pad>"))
    else:
        raise ValueError(f"unknown tokenizer {tokenizer!r}: tekken or chat-template")
    config = MistralConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden // 4,
        max_position_embeddings=4096,
        sliding_window=4096,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    torch.manual_seed(seed)
    model = MistralForCausalLM(config).eval()
    with torch.no_grad():
        # The end-of-sequence token's logit is 0 where the others' spread around it: it never wins, so every
        # generation runs to its token budget and tests can rely on how long it lasts.
        model.lm_head.weight[eos].zero_()
    model.generation_config = GenerationConfig(bos_token_id=bos, eos_token_id=eos, pad_token_id=pad)
    model.save_pretrained(out)
    return out


BUILDERS = {
    "voxtral": build_voxtral,
    "voxtral-realtime": build_voxtral_realtime,
    "causal-lm": build_causal_lm,
    "causal-lm-chat-template": lambda out: build_causal_lm(out, tokenizer="chat-template"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description="Build a tiny random model directory, offline.")
    parser.add_argument("kind", choices=sorted(BUILDERS))
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    print(BUILDERS[args.kind](args.out))


if __name__ == "__main__":
    main()
