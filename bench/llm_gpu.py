"""Ministral-8B-Instruct-2410 through the LLM service's own batching path, built from its config with random
weights: time to the first token and tokens per second at batch sizes 1 to 32.

    .venv/bin/python bench/llm_gpu.py [--batches 1,2,4,8,16,32] [--prompt-tokens 320] [--new-tokens 64]

No download: the model is `MistralConfig(...)` with Ministral-8B-Instruct-2410's published sizes (36 layers,
hidden 4096, 32 query and 8 key-value heads, vocabulary 131072; 8.0 B parameters) and random weights, so
the compute is the real model's. The requests go through what the service runs: the GenerationScheduler (one worker
thread, continuous batching) over a ContinuousBatch, on CUDA in bf16 with flash-attn 2 when it is
installed, else sdpa. One request is a prompt of --prompt-tokens tokens (the default instruction, three
utterances of context and a transcript come to about 320 with a tekken tokenizer), then exactly
--new-tokens generated tokens (end-of-sequence is ignored). For each batch size all requests are submitted
at once; it prints the time to each request's first token (p50 and the last of the batch), the decode rate
(tokens per second over all rows, and per row, from the last first token to the end) and peak GPU memory.
On a machine without CUDA it runs a reduced config (4 layers, hidden 256) so that the script can be tried;
those figures say nothing about the real model.

`--compare-transformers-cb` then runs the same batches through transformers' own continuous batching (a
manager from `model.init_continuous_batching()`, started once and warmed: its scheduler, paged KV cache and
worker thread) and through the service's path, and prints the wall time from submission to the last token
for each: the comparison docs/llm.md cites.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import MistralConfig, MistralForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voxmesh.services.llm.engines.transformers.batch import ContinuousBatch
from voxmesh.services.llm.engines.transformers.scheduler import GenerationScheduler

MINISTRAL_8B = dict(
    vocab_size=131072,
    hidden_size=4096,
    intermediate_size=12288,
    num_hidden_layers=36,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    max_position_embeddings=32768,
    rope_theta=100_000_000.0,
    sliding_window=32768,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
)
REDUCED = {
    **MINISTRAL_8B,
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
}


def build(device: str, attn: str) -> MistralForCausalLM:
    config = MistralConfig(**(MINISTRAL_8B if device == "cuda" else REDUCED))
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = MistralForCausalLM._from_config(config, dtype=dtype, attn_implementation=attn)
    return model.eval()


async def run_batch(
    scheduler: GenerationScheduler, size: int, prompt_tokens: int, new_tokens: int, device: str
) -> dict:
    prompts = [torch.randint(1000, 131072, (prompt_tokens,)).tolist() for _ in range(size)]
    started = time.perf_counter()
    generations = [scheduler.submit(p, new_tokens, timeout_s=3600) for p in prompts]

    async def first_and_last(generation):
        first = None
        async for _ in generation:
            first = first or time.perf_counter()
        return first, time.perf_counter()

    times = await asyncio.gather(*(first_and_last(g) for g in generations))
    if device == "cuda":
        torch.cuda.synchronize()
    firsts = sorted(f - started for f, _ in times)
    decode_s = max(end for _, end in times) - max(f for f, _ in times)
    return {
        "ttft_p50": statistics.median(firsts),
        "ttft_max": firsts[-1],
        "tokens_per_s": size * (new_tokens - 1) / decode_s,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,2,4,8,16,32")
    parser.add_argument("--prompt-tokens", type=int, default=320)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare-transformers-cb", action="store_true")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    attn = "flash_attention_2" if device == "cuda" and importlib.util.find_spec("flash_attn") else "sdpa"
    batches = [int(b) for b in args.batches.split(",")]
    if device == "cpu" and args.batches == parser.get_default("batches"):
        batches = [1, 2, 4]
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (reduced config: not the real model)"
    print(
        f"device: {name}; torch {torch.__version__}; attention {attn}; one request = a {args.prompt_tokens}-token "
        f"prompt, {args.new_tokens} new tokens; median of {args.repeats} runs"
    )
    print()
    print(
        "| batch | first token p50 | first token, last of the batch | decode tokens/s (all rows) | per row | "
        "peak GPU memory |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    model = build(device, attn)
    batch = ContinuousBatch(model, device=device, eos_ids=frozenset())
    scheduler = GenerationScheduler(batch, queue_size=max(batches), max_batch_size=max(batches), timeout_s=3600)
    scheduler.start()
    await run_batch(scheduler, 2, args.prompt_tokens, 4, device)  # warm-up
    for size in batches:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        runs = [
            await run_batch(scheduler, size, args.prompt_tokens, args.new_tokens, device) for _ in range(args.repeats)
        ]
        row = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        memory = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device == "cuda" else "-"
        print(
            f"| {size} | {row['ttft_p50'] * 1000:.0f} ms | {row['ttft_max'] * 1000:.0f} ms | "
            f"{row['tokens_per_s']:.0f} | {row['tokens_per_s'] / size:.1f} | {memory} |"
        )
    if args.compare_transformers_cb:
        await compare_transformers_cb(model, scheduler, batches, args, device)
    await scheduler.close()


async def compare_transformers_cb(model, scheduler: GenerationScheduler, batches, args, device: str) -> None:
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=args.new_tokens, do_sample=False, eos_token_id=-1, pad_token_id=0)
    manager = model.init_continuous_batching(generation_config=config)
    manager.start()

    def through_manager(prompts: list[list[int]]) -> float:
        started = time.perf_counter()
        manager.add_requests(prompts, max_new_tokens=args.new_tokens)
        finished = 0
        while finished < len(prompts):
            result = manager.get_result(timeout=60)
            if result is None:
                raise RuntimeError("transformers' continuous batching returned nothing within 60 s")
            finished += result.is_finished()
        return time.perf_counter() - started

    through_manager([[1000] * args.prompt_tokens] * 2)  # warm-up
    print()
    print("| batch | the service's batch: submission to last token | transformers' continuous batching | ratio |")
    print("| --- | --- | --- | --- |")
    for size in batches:
        prompts = [torch.randint(1000, 131072, (args.prompt_tokens,)).tolist() for _ in range(size)]
        ours, theirs = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            for generation in [scheduler.submit(p, args.new_tokens, timeout_s=3600) for p in prompts]:
                async for _ in generation:
                    continue  # drain: only the time to the last token counts
            ours.append(time.perf_counter() - started)
            theirs.append(through_manager(prompts))
        mine, other = statistics.median(ours), statistics.median(theirs)
        print(f"| {size} | {mine * 1000:.0f} ms | {other * 1000:.0f} ms | {other / mine:.2f}x |", flush=True)
    manager.stop(block=True)


if __name__ == "__main__":
    asyncio.run(main())
