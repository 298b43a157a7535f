"""QLoRA (Dettmers et al. 2023, arXiv:2305.14314) on bitsandbytes, as PEFT users train it: the base model
loaded with a BitsAndBytesConfig (4-bit NF4 or 8-bit), prepare_model_for_kbit_training, then the LoRA layer
of lora.py with the tfjs engine's initialisation and tensor names. As in the tfjs engine
(src-worker/methods/qlora.ts) only the adapted linear layers are quantized: the others are listed in
llm_int8_skip_modules and keep full precision. The export is a plain PEFT LoRA.

bitsandbytes quantizes on CUDA only: everywhere else the method is refused with what to do instead (the
tfjs engine simulates NF4 / int8 on any backend). Where the two engines' quantizations differ:
- nf4: bitsandbytes' NF4 table and absmax blocks of 64 over the nn.Linear layout [out, in], the tfjs
  engine's over its forward layout (the same for Llama-family models; GPT-2's Conv1D is [in, out] there);
  bitsandbytes has no other block size through transformers, so qlora.blockSize must be 64;
- int8: bitsandbytes' 8-bit is LLM.int8() (row-wise absmax, outlier features above 6.0 kept in 16 bit),
  not the tfjs engine's blockwise int8."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import replace
from typing import Any

import torch
import transformers

from ..models import LinearModule, LoadedModel, linear_modules, training_dtype
from ..protocol import EngineError
from .lora import LoraMethod, select_targets

#: The only NF4 block size bitsandbytes offers through transformers' BitsAndBytesConfig.
BITSANDBYTES_NF4_BLOCK_SIZE = 64
CUDA_EXTRA = "pip install -r engine-torch/requirements-cuda.txt (bitsandbytes) into the engine's environment"


def require_bitsandbytes(device: torch.device) -> None:
    """Refuses QLoRA where bitsandbytes cannot quantize: no CUDA device, or bitsandbytes not installed."""
    if device.type != "cuda" or getattr(torch.version, "hip", None):
        found = "torch built without CUDA" if torch.version.cuda is None else f"the {device.type} device"
        raise EngineError(
            "invalid_input",
            f"QLoRA on the pytorch engine quantizes the base model with bitsandbytes, which needs an NVIDIA GPU with CUDA; this run has {found} (torch {torch.__version__}). "
            "Train QLoRA with the tfjs engine (it simulates NF4 and int8 quantization on any backend), or run this engine on a CUDA machine with bitsandbytes installed "
            f"({CUDA_EXTRA}; lora-workbench export-job writes a folder for one).",
            {"field": "method", "method": "qlora", "device": device.type},
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise EngineError(
            "invalid_input",
            f"QLoRA on the pytorch engine needs bitsandbytes, which this Python environment lacks: {CUDA_EXTRA}, or train QLoRA with the tfjs engine.",
            {"field": "method", "method": "qlora", "missing": "bitsandbytes"},
        )


def quantization_config(qlora: dict[str, Any], skip: list[str], compute_dtype: torch.dtype) -> transformers.BitsAndBytesConfig:
    if qlora["format"] == "nf4":
        if int(qlora["blockSize"]) != BITSANDBYTES_NF4_BLOCK_SIZE:
            raise EngineError(
                "invalid_input",
                f"qlora.blockSize {qlora['blockSize']}: bitsandbytes quantizes NF4 in blocks of {BITSANDBYTES_NF4_BLOCK_SIZE} on the pytorch engine. Set it to {BITSANDBYTES_NF4_BLOCK_SIZE}, or train with the tfjs engine for other block sizes.",
                {"issues": [{"path": "qlora.blockSize", "message": f"must be {BITSANDBYTES_NF4_BLOCK_SIZE} on the pytorch engine"}]},
            )
        # No double quantization: the tfjs engine keeps its scales in float32.
        return transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=False, bnb_4bit_compute_dtype=compute_dtype, llm_int8_skip_modules=skip)
    return transformers.BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)


def float_linear_modules(model_dir: str) -> list[LinearModule]:
    """The model's linear layers as the float model has them (GPT-2's Conv1D included), from its config alone."""
    import accelerate

    config = transformers.AutoConfig.from_pretrained(model_dir, local_files_only=True)
    with accelerate.init_empty_weights():
        skeleton = transformers.AutoModelForCausalLM.from_config(config)
    return linear_modules(skeleton)


def modules_kept_in_full_precision(modules: list[LinearModule], target_patterns: list[str]) -> list[str]:
    """llm_int8_skip_modules: the head and every linear layer LoRA does not adapt. transformers reads each
    entry as a regular expression matched at the start of a module's name, so the paths are escaped."""
    targets, _ = select_targets(modules, target_patterns)
    chosen = {m.path for m in targets}
    return ["lm_head", *(re.escape(m.path) for m in modules if m.path not in chosen)]


def load_quantized_model(model_dir: str, device: torch.device, config: dict[str, Any]) -> LoadedModel:
    """The base model with its adapted layers quantized, prepared for k-bit training."""
    require_bitsandbytes(device)
    skip = modules_kept_in_full_precision(float_linear_modules(model_dir), list(config["lora"]["targetModules"]))
    dtype = training_dtype(device)
    bnb = quantization_config(config["qlora"], skip, dtype)
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, quantization_config=bnb, dtype=dtype, device_map={"": device.index or 0})
    except (ValueError, OSError) as error:
        raise EngineError("model_invalid", f"transformers cannot load {model_dir} quantized with bitsandbytes: {error}", {"modelDir": model_dir}) from error
    import peft

    model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model.eval()
    return LoadedModel(model, "causal", str(model.config.model_type))


def _replaced_conv1d(module: torch.nn.Module) -> bool:
    from transformers.pytorch_utils import Conv1D

    layer = getattr(module, "base_layer", module)
    source = getattr(layer, "source_cls", None)
    return isinstance(layer, Conv1D) or (source is not None and issubclass(source, Conv1D))


class QloraMethod(LoraMethod):
    method = "qlora"

    def __init__(self, model: torch.nn.Module, lora: dict[str, Any], qlora: dict[str, Any], seed: int) -> None:
        super().__init__(model, lora, seed)
        self.qlora = qlora
        # The quantized layers are nn.Linear subclasses, [out, in], that remember the class they replaced: the
        # export's fan_in_fan_out is the float model's (GPT-2's Conv1D), so PEFT loads it over either base.
        base = self.model.base_model.model
        self.targets = [replace(t, fan_in_fan_out=_replaced_conv1d(base.get_submodule(t.path))) for t in self.targets]

    def startup_notes(self) -> list[str]:
        fmt = self.qlora["format"]
        how = "NF4 in blocks of 64 (bitsandbytes)" if fmt == "nf4" else "8-bit LLM.int8() (bitsandbytes: row-wise absmax with 16-bit outliers, not the tfjs engine's blockwise int8)"
        return [f"QLoRA: {len(self.targets)} adapted weights held in {how}; the other layers keep full precision."]
