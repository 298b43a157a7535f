"""Full fine-tuning and BitFit (src-worker/methods/base-parameters.ts): the base model's own parameters
train, saved under the checkpoint's keys in its layout; PEFT has no adapter type for either."""

from __future__ import annotations

from typing import Any

import torch

from ..models import linear_modules, parameter_count
from ..protocol import EngineError
from .base import AdapterMethod, Trainable

#: As FULL_FINE_TUNING_MAX_PARAMS: weights, gradients and two AdamW moments take ~4-5x the model.
FULL_FINE_TUNING_MAX_PARAMS = 130_000_000
_EMBEDDING_KEYS = {"transformer.wte.weight", "transformer.wpe.weight", "model.embed_tokens.weight", "shared.weight"}


class BaseParameterMethod(AdapterMethod):
    trains_base_parameters = True
    peft_loadable = False

    def __init__(self, method: str, group: str, model: torch.nn.Module, keys: list[str]) -> None:
        self.method = method
        self.model = model
        chosen = set(keys)
        self._trained: list[Trainable] = []
        # named_parameters lists a tied head once, under the embedding's key, as the tfjs engine does.
        for key, parameter in model.named_parameters():
            parameter.requires_grad_(key in chosen)
            if key in chosen:
                self._trained.append(Trainable(key, group, parameter))

    def trainable(self) -> list[Trainable]:
        return self._trained

    def forward(self, input_ids: torch.Tensor, training: bool, **extra: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(input_ids=input_ids, **extra).logits
        return logits


def create_full(model: torch.nn.Module, settings: dict[str, Any]) -> BaseParameterMethod:
    total = parameter_count(model)
    if total > FULL_FINE_TUNING_MAX_PARAMS:
        raise EngineError(
            "invalid_input",
            f"Full fine-tuning is offered for models up to {FULL_FINE_TUNING_MAX_PARAMS // 1_000_000}M parameters; this one has {total / 1e6:.0f}M. Use LoRA or QLoRA for a model this size.",
            {"parameters": total, "limit": FULL_FINE_TUNING_MAX_PARAMS},
        )
    keys = [k for k, _ in model.named_parameters() if settings["trainEmbeddings"] or k not in _EMBEDDING_KEYS]
    return BaseParameterMethod("full", "weights", model, keys)


def create_bitfit(model: torch.nn.Module, settings: dict[str, Any], model_type: str) -> BaseParameterMethod:
    linear = {m.path for m in linear_modules(model)}
    keys = [k for k, _ in model.named_parameters() if k.endswith(".bias") and (settings["includeNormBiases"] or k[: -len(".bias")] in linear)]
    if not keys:
        raise EngineError(
            "invalid_input",
            f"BitFit trains bias terms, and this {model_type} model has none{'' if settings['includeNormBiases'] else ' in its linear layers'} (Llama-family models use RMSNorm and bias-free linear layers). Choose LoRA for it, or a model with biases such as GPT-2 or Qwen2.",
            {"modelType": model_type},
        )
    return BaseParameterMethod("bitfit", "bias", model, keys)
