"""Voxtral-Mini-3B-2507's compute at batch sizes 1 to 32, built from its config with random weights.

    .venv/bin/python bench/asr_gpu.py [--batches 1,2,4,8,16,32] [--attn sdpa,flash_attention_2] [--compile]

No download: the model is `VoxtralConfig()` (whose defaults are Voxtral-Mini-3B-2507: a 32-layer Whisper
large encoder and a 30-layer 3B decoder) with random weights, so the compute is the real model's. One
request is one 5-second utterance, which the processor pads to a 30-second window: 375 audio tokens, a
prompt of 383 tokens, then exactly 30 generated tokens (encoder + prefill + 30 decode steps). For each
batch size it prints the latency of one batch, utterances per second, and peak GPU memory. On a machine
without CUDA it runs a reduced config (4 layers, hidden 256) so that the script can be tried; those
figures say nothing about the real model.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import torch
from transformers import VoxtralConfig, VoxtralForConditionalGeneration

PROMPT_TOKENS = [1, 3, 25] + [24] * 375 + [4, 34, 1, 1]  # <s>[INST][BEGIN_AUDIO][AUDIO]x375[/INST][TRANSCRIBE]..
NEW_TOKENS = 30


def build(attn: str, device: str, reduced: bool) -> VoxtralForConditionalGeneration:
    config = VoxtralConfig(audio_token_id=24)
    if reduced:
        config = VoxtralConfig(
            audio_token_id=24,
            audio_config={
                "hidden_size": 256,
                "intermediate_size": 1024,
                "num_hidden_layers": 4,
                "num_attention_heads": 4,
            },
            text_config={
                "model_type": "llama",
                "hidden_size": 256,
                "intermediate_size": 512,
                "num_hidden_layers": 4,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "head_dim": 64,
                "vocab_size": 131072,
            },
        )
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = VoxtralForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation=attn)
    return model.eval()


def inputs(batch: int, device: str, dtype) -> dict:
    ids = torch.tensor([PROMPT_TOKENS] * batch, device=device)
    features = torch.randn(batch, 128, 3000, device=device, dtype=dtype)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "input_features": features}


def run_once(model, batch: int, device: str) -> float:
    kwargs = inputs(batch, device, model.dtype)
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**kwargs, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
    if device == "cuda":
        torch.cuda.synchronize()
    assert out.shape[1] == len(PROMPT_TOKENS) + NEW_TOKENS
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,2,4,8,16,32")
    parser.add_argument(
        "--attn", default="sdpa" + (",flash_attention_2" if importlib.util.find_spec("flash_attn") else "")
    )
    parser.add_argument("--compile", action="store_true", help="also run each attention with torch.compile")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    reduced = device != "cuda"
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (reduced config: not the real model)"
    print(
        f"device: {name}; torch {torch.__version__}; "
        f"one request = a 5 s utterance, 383-token prompt, {NEW_TOKENS} new tokens"
    )
    print()
    print("| attention | compiled | batch | latency of one batch | utterances/s | peak GPU memory |")
    print("| --- | --- | --- | --- | --- | --- |")
    for attn in args.attn.split(","):
        for compiled in [False, True] if args.compile else [False]:
            model = build(attn, device, reduced)
            if compiled:
                model.forward = torch.compile(model.forward, dynamic=True)
            for batch in (int(b) for b in args.batches.split(",")):
                if device == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                try:
                    run_once(model, batch, device)  # warm-up (and compilation)
                    latency = min(run_once(model, batch, device) for _ in range(args.repeats))
                except torch.cuda.OutOfMemoryError:
                    print(f"| {attn} | {compiled} | {batch} | out of memory | | |", flush=True)
                    break
                memory = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device == "cuda" else "n/a"
                print(
                    f"| {attn} | {compiled} | {batch} | {latency * 1000:.0f} ms | {batch / latency:.1f} | {memory} |",
                    flush=True,
                )
            del model


if __name__ == "__main__":
    main()
