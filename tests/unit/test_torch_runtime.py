"""Where the transformers engines load their models: flash-attn only where transformers itself can use it,
and sdpa when flash-attn fails to import after all (a fake model class isolates the fallback)."""

from __future__ import annotations

from typing import ClassVar

import pytest

from voxmesh import torch_runtime


class FlashBreaks:
    """from_pretrained raises ImportError for flash_attention_2, as transformers does with a broken flash-attn."""

    asked: ClassVar[list[str]] = []

    @classmethod
    def from_pretrained(cls, model_id, dtype, attn_implementation, **options):
        cls.asked.append(attn_implementation)
        if attn_implementation == "flash_attention_2":
            raise ImportError("flash_attn seems to be not installed")
        return cls()

    def to(self, device):
        self.device = device
        return self

    def eval(self):
        return self


def test_a_flash_attn_that_will_not_import_falls_back_to_sdpa():
    place = torch_runtime.Placement("cpu", None, "flash_attention_2")
    _, used = torch_runtime.load_model(FlashBreaks, "some/model", place)
    assert FlashBreaks.asked[-2:] == ["flash_attention_2", "sdpa"]
    assert used.attn_implementation == "sdpa"


def test_an_import_error_with_sdpa_is_not_hidden():
    class AlwaysBreaks(FlashBreaks):
        @classmethod
        def from_pretrained(cls, model_id, dtype, attn_implementation, **options):
            raise ImportError("some other package is missing")

    with pytest.raises(ImportError, match="some other package"):
        torch_runtime.load_model(AlwaysBreaks, "some/model", torch_runtime.Placement("cpu", None, "sdpa"))


def test_cuda_placement_asks_transformers_whether_flash_attn_works(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch_runtime, "flash_attn_available", lambda: False)
    assert torch_runtime.placement("cuda").attn_implementation == "sdpa"
    monkeypatch.setattr(torch_runtime, "flash_attn_available", lambda: True)
    assert torch_runtime.placement("cuda").attn_implementation == "flash_attention_2"


def test_flash_attn_available_is_a_plain_no_when_the_check_itself_fails(monkeypatch):
    import transformers.utils.import_utils as import_utils

    def broken():
        raise RuntimeError("CUDA driver mismatch")

    monkeypatch.setattr(import_utils, "is_flash_attn_2_available", broken)
    assert torch_runtime.flash_attn_available() is False


@pytest.mark.parametrize(
    ("cpu_max", "cpus"), [("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000\n", 1), ("garbage", None)]
)
def test_the_containers_cpu_quota_is_read_from_cgroup_v2(tmp_path, cpu_max, cpus):
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    assert torch_runtime.cpu_quota(path) == cpus
    assert torch_runtime.cpu_quota(tmp_path / "absent") is None


def test_torch_uses_no_more_cpu_threads_than_the_quota(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setattr(torch_runtime, "cpu_quota", lambda: 1)
    try:
        torch.set_num_threads(2)  # more than the quota, whatever the machine's default
        torch_runtime.fit_threads_to_quota(torch)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_weights_load_straight_to_the_device(tiny_voxtral):
    from transformers import VoxtralForConditionalGeneration

    asked = {}
    real = VoxtralForConditionalGeneration.from_pretrained

    class Recording(VoxtralForConditionalGeneration):
        @classmethod
        def from_pretrained(cls, *args, **options):
            asked.update(options)
            return real(*args, **options)

    model, _ = torch_runtime.load_model(Recording, str(tiny_voxtral), torch_runtime.placement("cpu"))
    assert asked["device_map"] == "cpu", "from_pretrained places the weights itself"
    assert not model.training and next(model.parameters()).device.type == "cpu"
