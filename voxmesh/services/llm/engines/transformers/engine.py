"""An instruction LLM through transformers: any Hugging Face causal LM with a chat template.

Default checkpoint: mistralai/Ministral-8B-Instruct-2410. A checkpoint that ships a tekken.json (Mistral's
own models) is tokenised by mistral-common, through transformers' MistralCommonBackend; any other through
its Hugging Face tokenizer and chat template. One model per process: every stream's transcripts go through
one GenerationScheduler, which generates them as rows of one continuous batch (greedy by default). Each transcript's
tokens become text deltas as they come; the done message carries the whole text. For the default clean-up
instruction the faithfulness guard (guard.py beside this module) compares the output with the transcript and,
over its threshold, returns the rule-based clean-up instead (outcome guarded); the deltas already sent stand,
the done message's text wins.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Sequence

from voxmesh import errors
from voxmesh.services.llm import metrics
from voxmesh.services.llm.engines import Done, LlmRequest
from voxmesh.services.llm.engines.rules import clean_up
from voxmesh.services.llm.engines.transformers import guard, prompt
from voxmesh.services.llm.engines.transformers.scheduler import GenerationScheduler
from voxmesh.settings import LlmSettings
from voxmesh.torch_runtime import check_local, describe_source, load_model, placement

log = logging.getLogger("voxmesh.llm.transformers")

DEFAULT_MODEL = "mistralai/Ministral-8B-Instruct-2410"
WARMUP = ("um so so this is a a warm-up of the model", "and a second one to exercise the batch")
WARMUP_TIMEOUT_S = 600.0  # the first calls on a GPU compile kernels; the request time limit is for serving


def load_tokenizer(model_id: str):
    """mistral-common's tokenizer where the checkpoint ships a tekken.json, else the Hugging Face one."""
    from transformers import AutoTokenizer
    from transformers.integrations.mistral.tokenizer import resolve_mistral_format
    from transformers.tokenization_mistral_common import MistralCommonBackend

    if resolve_mistral_format(model_id)[0]:
        return MistralCommonBackend.from_pretrained(model_id)
    tokenizer = AutoTokenizer.from_pretrained(model_id, mistral_format=False)
    if not tokenizer.chat_template:
        raise errors.FailedPrecondition(
            f"the tokenizer of {model_id!r} has no chat template (and the checkpoint no tekken.json): the "
            "transformers engine needs an instruction (chat) model"
        )
    return tokenizer


class Detokenizer:
    """Token ids to text deltas, a few tokens of context at a time (a token alone may not decode to its text,
    and a character may span tokens). Deltas concatenate to the stripped text; trailing whitespace waits for
    the next word."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = self._read = 0  # decode window: ids[prefix:read] are decoded, ids[read:] are new
        self._raw = ""
        self.sent = ""  # the deltas so far, concatenated
        self.text = ""  # the whole output, once finish() ran

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, token: int) -> str:
        self.ids.append(token)
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""  # an incomplete character or a token with no text yet
        self._raw += after[len(before) :]
        self._prefix, self._read = self._read, len(self.ids)
        return self._advance(self._raw.strip())

    def finish(self) -> str:
        """The last delta; `text` is then the whole output."""
        self.text = self._decode(self.ids).strip()
        return self._advance(self.text)

    def _advance(self, visible: str) -> str:
        if not visible.startswith(self.sent) or len(visible) == len(self.sent):
            return ""
        delta, self.sent = visible[len(self.sent) :], visible
        return delta


class TransformersEngine:
    def __init__(self, settings: LlmSettings):
        import torch
        from transformers import AutoModelForCausalLM

        from voxmesh.services.llm.engines.transformers.batch import ContinuousBatch

        self.settings = settings
        self.model_id = settings.model or DEFAULT_MODEL
        check_local(self.model_id, "VOXMESH_LLM_MODEL / --model")
        self.place = placement(settings.device)
        try:
            self.tokenizer = load_tokenizer(self.model_id)
            model, self.place = load_model(AutoModelForCausalLM, self.model_id, self.place)
        except (OSError, ValueError) as exc:
            raise errors.FailedPrecondition(
                f"could not load the LLM from {describe_source(self.model_id)}: {exc}"
            ) from exc
        self.system_role = self._template_takes_system_role()
        self.max_positions = getattr(model.config.get_text_config(), "max_position_embeddings", None)
        self.batch = ContinuousBatch(
            model,
            device=self.place.device,
            eos_ids=self._eos_ids(model),
            temperature=settings.temperature,
            top_p=settings.top_p,
        )
        self.scheduler: GenerationScheduler | None = None  # started by warmup(), on the event loop
        self.torch = torch
        self.name = f"transformers:{self.model_id.rstrip('/').split('/')[-1]}"
        log.info(
            "model loaded",
            extra={
                "model": self.model_id,
                "device": self.place.device,
                "dtype": str(self.place.dtype),
                "attn": self.place.attn_implementation,
                "tokenizer": type(self.tokenizer).__name__,
            },
        )

    def _eos_ids(self, model) -> frozenset[int]:
        ids = model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        if not ids:
            raise errors.FailedPrecondition(f"{self.model_id!r} names no end-of-sequence token")
        return frozenset(ids)

    def _template_takes_system_role(self) -> bool:
        try:
            self.encode(LlmRequest("test", None), system_role=True)
            return True
        except Exception:
            log.info("the chat template takes no system role; the instruction goes into the user message")
        try:
            self.encode(LlmRequest("test", None), system_role=False)
        except Exception as exc:
            raise errors.FailedPrecondition(f"the chat template of {self.model_id!r} fails on a chat: {exc}") from exc
        return False

    def encode(self, request: LlmRequest, system_role: bool | None = None) -> list[int]:
        """The prompt's token ids: the chat template over prompt.messages(), ready for the reply."""
        conversation = prompt.messages(request, system_role=self.system_role if system_role is None else system_role)
        ids = self.tokenizer.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        return list(ids)

    def budget(self, text: str, prompt_tokens: int) -> int:
        """Most new tokens for a transcript: max_new_tokens_factor times its tokens, plus max_new_tokens_extra,
        within the model's positions."""
        tokens = len(self.tokenizer.encode(text, add_special_tokens=False))
        budget = self.settings.max_new_tokens_extra + math.ceil(self.settings.max_new_tokens_factor * tokens)
        if self.max_positions:
            budget = min(budget, self.max_positions - prompt_tokens)
        if budget < 1:
            raise errors.InvalidArgument(
                f"the prompt has {prompt_tokens} tokens; the model takes at most {self.max_positions}"
            )
        return budget

    async def warmup(self) -> None:
        """Start the scheduler and run two transcripts through it, the second joining the first's batch
        (prefill, join, decode steps, a row leaving)."""
        self.scheduler = GenerationScheduler(
            self.batch,
            queue_size=self.settings.queue_size,
            max_batch_size=self.settings.max_batch_size,
            timeout_s=self.settings.request_timeout_s,
        )
        self.scheduler.start()
        first = self.scheduler.submit(self.encode(LlmRequest(WARMUP[0], None)), 8, timeout_s=WARMUP_TIMEOUT_S)
        await anext(first, None)
        second = self.scheduler.submit(self.encode(LlmRequest(WARMUP[1], None)), 4, timeout_s=WARMUP_TIMEOUT_S)
        for generation in (first, second):
            async for _ in generation:
                continue  # drain: the warm-up's text is not used

    async def stream(self, request: LlmRequest) -> AsyncIterator[str | Done]:
        prompt_ids = self.encode(request)
        assert self.scheduler is not None  # warmup() starts it, before the service takes calls
        generation = self.scheduler.submit(prompt_ids, self.budget(request.text, len(prompt_ids)))
        detokenizer = Detokenizer(self.tokenizer)
        try:
            async for token in generation:
                if delta := detokenizer.add(token):
                    yield delta
        finally:
            generation.cancel()  # a consumer that went away frees the row (no-op once it ended)
        if delta := detokenizer.finish():
            yield delta
        text = detokenizer.text
        if request.instruction is None:
            verdict = guard.check(request.text, text, self.settings.guard_threshold)
            metrics.GUARD_DIVERGENCE.observe(verdict.divergence)
            if verdict.guarded:
                yield Done(text=clean_up(request.text), outcome="guarded", reason=verdict.reason)
                return
        reason = (
            ""
            if generation.end == "eos"
            else (f"the output reached its budget of {generation.max_new_tokens} tokens and may be cut short")
        )
        yield Done(text=text, reason=reason)

    async def close(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.close()
        self.batch.reset()
        del self.batch
        if self.place.device == "cuda":
            self.torch.cuda.empty_cache()
