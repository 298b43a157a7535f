"""Base models from local folders only (transformers' Auto classes), and the list of their linear
layers in the order the tfjs engine numbers them (src-worker/models: layer by layer, in module order,
lm_head excluded): LoRA's initial A of layer i is drawn from derive_seed(seed, i) in both engines."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers.pytorch_utils import Conv1D

from .protocol import EngineError

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()


@dataclass(frozen=True)
class LinearModule:
    path: str
    in_features: int
    out_features: int
    #: GPT-2's Conv1D stores its weight [in, out].
    fan_in_fan_out: bool


@dataclass
class LoadedModel:
    model: torch.nn.Module
    #: 'causal' (AutoModelForCausalLM) or 'seq2seq' (AutoModelForSeq2SeqLM: T5).
    kind: str
    model_type: str


def pick_device(requested: str | None = None) -> torch.device:
    """cuda, then mps, then cpu; WORKBENCH_TORCH_DEVICE (or `requested`) overrides."""
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def training_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs that have it (f16 would need loss scaling), float32 elsewhere: the CPU path is the parity path."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def attention_choice() -> dict[str, str]:
    """WORKBENCH_TORCH_ATTENTION names transformers' attention kernel (eager, sdpa...); unset: transformers' default.
    The parity tests pick eager: sdpa's fused CPU kernel rounds its backward further from exact than the tfjs
    engine's plain attention, which AdamW amplifies in parameters whose early gradients are tiny (SeLoRA's g)."""
    name = os.environ.get("WORKBENCH_TORCH_ATTENTION")
    return {"attn_implementation": name} if name else {}


def load_model(model_dir: str, device: torch.device, dtype: torch.dtype = torch.float32) -> LoadedModel:
    folder = Path(model_dir)
    if not (folder / "config.json").exists():
        raise EngineError("model_invalid", f"{model_dir} has no config.json: pick a Hugging Face model folder.", {"modelDir": model_dir})
    try:
        config = transformers.AutoConfig.from_pretrained(model_dir, local_files_only=True)
    except (ValueError, OSError) as error:
        raise EngineError("model_invalid", f"transformers cannot read {model_dir}/config.json: {error}", {"modelDir": model_dir}) from error
    kind = "seq2seq" if getattr(config, "is_encoder_decoder", False) else "causal"
    auto = transformers.AutoModelForSeq2SeqLM if kind == "seq2seq" else transformers.AutoModelForCausalLM
    try:
        model = auto.from_pretrained(model_dir, local_files_only=True, dtype=dtype, **attention_choice())
    except (ValueError, OSError) as error:
        raise EngineError(
            "model_invalid",
            f"transformers cannot load {model_dir} as a {'sequence-to-sequence' if kind == 'seq2seq' else 'causal'} language model: {error}",
            {"modelDir": model_dir},
        ) from error
    model.to(device)
    # The frozen base model has no dropout at fine-tuning time (as in the tfjs engine): only the adapters' own dropout modules train.
    model.eval()
    return LoadedModel(model, kind, str(config.model_type))


def linear_modules(model: torch.nn.Module) -> list[LinearModule]:
    out: list[LinearModule] = []
    for path, module in model.named_modules():
        if path == "lm_head" or path.endswith(".lm_head"):
            continue
        if isinstance(module, Conv1D):
            in_features, out_features = module.weight.shape
            out.append(LinearModule(path, int(in_features), int(out_features), True))
        elif isinstance(module, torch.nn.Linear):
            out.append(LinearModule(path, module.in_features, module.out_features, False))
    return out


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
