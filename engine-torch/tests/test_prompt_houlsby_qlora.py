"""Prompt tuning, Houlsby adapters and QLoRA on the pytorch engine: what each starts from, what it saves,
what PEFT makes of it, and QLoRA's refusal where bitsandbytes cannot run. Equality with the tfjs engine
step by step is test/torch/engine-parity.test.ts's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from conftest import FIXTURES, Collector, make_job, make_plan
from workbench_torch.distributed import World
from workbench_torch.methods.houlsby import HoulsbyMethod
from workbench_torch.methods.prompt_tuning import PromptTuningMethod, standard_normals
from workbench_torch.methods.qlora import float_linear_modules, modules_kept_in_full_precision, quantization_config, require_bitsandbytes
from workbench_torch.models import load_model
from workbench_torch.protocol import Emitter, EngineError, NeverStop
from workbench_torch.train import Trainer
from workbench_torch.verify import verify_with_peft


def run(job: dict, plan: dict, collector: Collector) -> None:
    Trainer(job, plan, Emitter(collector.buffer), NeverStop(), World(0, 1, 0)).run()


def base_logits(model_dir: str, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return load_model(model_dir, torch.device("cpu")).model(input_ids=ids).logits  # type: ignore[no-any-return]


IDS = torch.tensor([[5, 9, 17, 3, 40, 2], [7, 1, 8, 8, 30, 11]])


@pytest.mark.parametrize("family", ["gpt2-tiny", "llama-tiny"])
def test_houlsby_starts_as_the_base_model_and_adapts_both_sublayers_of_every_layer(family: str) -> None:
    model_dir = str(FIXTURES / family)
    loaded = load_model(model_dir, torch.device("cpu"))
    method = HoulsbyMethod(loaded.model, {"bottleneckSize": 3}, seed=11)
    with torch.no_grad():
        assert torch.equal(method.forward(IDS, False), base_logits(model_dir, IDS))
    layers = loaded.model.config.num_hidden_layers
    names = [t.name for t in method.trainable()]
    # Two adapters a layer, four tensors each; only they train.
    assert len(names) == 2 * layers * 4 and all(".houlsby." in n and n.startswith("base_model.model.") for n in names)
    assert {p.requires_grad for p in loaded.model.parameters()} == {False}
    down = method.trainable()[0].parameter.detach()
    d = loaded.model.config.hidden_size
    assert tuple(down.shape) == (3, d) and float(down.abs().max()) <= 1 / d**0.5 and float(down.abs().max()) > 0
    # The adapter's output joins the residual stream: a non-zero up projection changes the logits.
    with torch.no_grad():
        method.trainable()[3].parameter.fill_(0.5)
        assert not torch.allclose(method.forward(IDS, False), base_logits(model_dir, IDS))


def test_a_houlsby_run_saves_the_tfjs_layout_without_a_peft_config(tmp_path: Path, collector: Collector) -> None:
    job = make_job(tmp_path / "run", "gpt2-tiny", method="houlsby")
    job["config"]["houlsby"] = {"bottleneckSize": 4}
    run(job, make_plan(), collector)
    losses = collector.losses()
    assert losses[6] < losses[1]
    adapter = tmp_path / "run" / "adapter"
    assert not (adapter / "adapter_config.json").exists()
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        up = f.get_tensor("base_model.model.transformer.h.0.attn.c_proj.houlsby.up_proj.weight")
        assert tuple(up.shape) == (32, 4) and float(up.abs().max()) > 0
        assert "base_model.model.transformer.h.1.mlp.c_proj.houlsby.down_proj.bias" in f.keys()


def test_prompt_tuning_random_init_draws_at_the_embedding_tables_scale() -> None:
    loaded = load_model(str(FIXTURES / "llama-tiny"), torch.device("cpu"))
    method = PromptTuningMethod(loaded.model, {"numVirtualTokens": 5, "init": "random", "initText": ""}, seed=3, kind="causal")
    table = loaded.model.get_input_embeddings().weight.detach()
    prompt = method.trainable()[0].parameter.detach()
    assert tuple(prompt.shape) == (5, table.shape[1])
    assert float(prompt.std()) == pytest.approx(float(table.std()), rel=0.5)
    again = PromptTuningMethod(load_model(str(FIXTURES / "llama-tiny"), torch.device("cpu")).model, {"numVirtualTokens": 5, "init": "random", "initText": ""}, seed=3, kind="causal")
    other = PromptTuningMethod(load_model(str(FIXTURES / "llama-tiny"), torch.device("cpu")).model, {"numVirtualTokens": 5, "init": "random", "initText": ""}, seed=4, kind="causal")
    assert torch.equal(again.trainable()[0].parameter, method.trainable()[0].parameter)
    assert not torch.allclose(other.trainable()[0].parameter, method.trainable()[0].parameter)
    # The model returns the real tokens' logits only.
    with torch.no_grad():
        assert method.forward(IDS, False).shape[:2] == IDS.shape


def test_prompt_tuning_text_init_takes_the_plans_token_rows_repeated() -> None:
    loaded = load_model(str(FIXTURES / "gpt2-tiny"), torch.device("cpu"))
    method = PromptTuningMethod(loaded.model, {"numVirtualTokens": 5, "init": "text", "initText": "meow"}, seed=3, kind="causal")
    method.fit({"promptTuningInitIds": [10, 20]})
    table = loaded.model.get_input_embeddings().weight.detach()
    assert torch.equal(method.trainable()[0].parameter.detach(), table[[10, 20, 10, 20, 10]])
    with pytest.raises(EngineError, match="no tokens"):
        method.fit({"promptTuningInitIds": []})
    with pytest.raises(EngineError, match="promptTuningInitIds"):
        method.fit({})


def test_prompt_tuning_is_refused_for_an_encoder_decoder() -> None:
    loaded = load_model(str(FIXTURES / "gpt2-tiny"), torch.device("cpu"))
    with pytest.raises(EngineError, match="T5 choose LoRA"):
        PromptTuningMethod(loaded.model, {"numVirtualTokens": 2, "init": "random", "initText": ""}, seed=1, kind="seq2seq")


def test_a_prompt_tuning_run_exports_peft_prompt_tuning_that_peft_reproduces(tmp_path: Path, collector: Collector) -> None:
    job = make_job(tmp_path / "run", "gpt2-tiny", method="prompt-tuning")
    job["config"]["promptTuning"] = {"numVirtualTokens": 4, "init": "random", "initText": ""}
    run(job, make_plan(), collector)
    losses = collector.losses()
    assert losses[6] < losses[1]
    adapter = tmp_path / "run" / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "PROMPT_TUNING" and config["num_virtual_tokens"] == 4 and config["token_dim"] == 32
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        assert list(f.keys()) == ["prompt_embeddings"] and tuple(f.get_tensor("prompt_embeddings").shape) == (4, 32)
    report = verify_with_peft(str(adapter), job["modelDir"])
    assert report["passed"] and report["maxAbsDiffToTrained"] <= 1e-5, report


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_qlora_is_refused_without_cuda_saying_what_to_do(tmp_path: Path, collector: Collector) -> None:
    job = make_job(tmp_path / "run", "gpt2-tiny", method="qlora")
    with pytest.raises(EngineError) as refused:
        run(job, make_plan(), collector)
    message = str(refused.value)
    assert "bitsandbytes" in message and "NVIDIA GPU with CUDA" in message and "tfjs engine" in message and "requirements-cuda.txt" in message
    assert not (tmp_path / "run" / "adapter").exists()


def test_qlora_on_cuda_without_bitsandbytes_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(EngineError, match="needs bitsandbytes, which this Python environment lacks"):
        require_bitsandbytes(torch.device("cuda"))


def test_qlora_nf4_takes_only_bitsandbytes_block_size() -> None:
    with pytest.raises(EngineError, match="blocks of 64"):
        quantization_config({"format": "nf4", "blockSize": 128}, [], torch.bfloat16)


@pytest.mark.parametrize(("family", "targets"), [("gpt2-tiny", ["c_attn", "c_proj"]), ("llama-tiny-qwen2", ["q_proj", "v_proj", "down_proj"])])
def test_qlora_quantizes_exactly_the_adapted_layers_as_transformers_reads_the_skip_list(family: str, targets: list[str]) -> None:
    from transformers.quantizers.quantizers_utils import should_convert_module

    modules = float_linear_modules(str(FIXTURES / family))
    linear_paths = [m.path for m in modules]
    skip = modules_kept_in_full_precision(modules, targets)
    converted = [path for path in linear_paths if should_convert_module(path, skip)]
    assert converted == [path for path in linear_paths if path.split(".")[-1] in targets]
    assert len(converted) < len(linear_paths) and not should_convert_module("lm_head", skip)
