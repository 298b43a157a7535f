"""LoRA whose low-rank update is computed by the method's own delta(), as the tfjs engine's methods
compute theirs (AdapterHooks.delta in src-worker/methods/lora.ts), for the LoRA-family methods PEFT's
layer cannot express: SeLoRA's per-example mixing, bias-aware LoRA's task adapters. PEFT's layers still
hold lora_A and lora_B (so names, initialisation and adapter_config.json stay LoRA's), but their own
branch is switched off and a forward hook on each adapted layer adds delta(x) to the base layer's output.
The hook also gives the base model back (adapters_off) and runs a flattened LoRA (flat_forward)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from ..protocol import EngineError
from .base import FlatLora
from .lora import LoraMethod, lora_peft_config


class HookedLoraMethod(LoraMethod):
    def __init__(self, model: torch.nn.Module, settings: dict[str, Any], seed: int, task_type: str = "CAUSAL_LM") -> None:
        if task_type != "CAUSAL_LM":
            raise EngineError(
                "invalid_input",
                f"{self.method} reads the prompt's pooled hidden states of a causal language model; this model is an encoder-decoder. Choose LoRA for it.",
                {"field": "method", "method": self.method},
            )
        super().__init__(model, settings, seed, task_type)
        r = int(settings["r"])
        self.scaling = float(settings["alpha"]) / (math.sqrt(r) if settings["useRslora"] else r)
        self._adapters_on = True
        self._training = False
        self._flat: dict[str, tuple[torch.Tensor, torch.Tensor, float]] | None = None
        self._layer_by_path = {layer[0]: layer for layer in self.layers}
        for path, a, b in self.layers:
            layer = self.model.base_model.model.get_submodule(path)
            # No active PEFT adapter: the layer returns base_layer(x), and the hook adds delta(x).
            layer.set_adapter([])
            layer.register_forward_hook(self._hook(path))
            a.requires_grad_(True)
            b.requires_grad_(True)

    def _hook(self, path: str) -> Any:
        def add_delta(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor | None:
            if not self._adapters_on:
                return None
            x = inputs[0]
            if self._flat is not None:
                a, b, scale = self._flat[path]
                x = x.to(a.dtype)
                return output + ((x @ a.T) * scale @ b.T).to(output.dtype)
            return output + self.delta(path, x.to(self.layers[0][1].dtype)).to(output.dtype)

        return add_delta

    def dropout(self, x: torch.Tensor) -> torch.Tensor:
        p = float(self.settings["dropout"])
        return F.dropout(x, p, training=True) if self._training and p > 0 else x

    def lora_delta(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """s x A^T B^T with LoRA's dropout (scaling the [.., r] product, as lora.ts does)."""
        return ((self.dropout(x) @ a.T) * self.scaling) @ b.T

    def delta(self, path: str, x: torch.Tensor) -> torch.Tensor:
        _, a, b = self.layer_of(path)
        return self.lora_delta(x, a, b)

    def layer_of(self, path: str) -> tuple[str, torch.nn.Parameter, torch.nn.Parameter]:
        return self._layer_by_path[path]

    def forward(self, input_ids: torch.Tensor, training: bool, **extra: torch.Tensor) -> torch.Tensor:
        self._training = training
        logits: torch.Tensor = self.model(input_ids=input_ids, **extra).logits
        return logits

    @contextmanager
    def adapters_off(self) -> Iterator[None]:
        """The frozen base model (the adapters' `adapters: null`)."""
        previous = self._adapters_on
        self._adapters_on = False
        try:
            yield
        finally:
            self._adapters_on = previous

    @contextmanager
    def flat_forward(self, flat: FlatLora) -> Iterator[None]:
        s = flat.settings
        scale = float(s["alpha"]) / (math.sqrt(s["r"]) if s["useRslora"] else s["r"])
        prefix = "base_model.model."
        self._flat = {
            path: (flat.tensors[f"{prefix}{path}.lora_A.weight"].to(a.device, a.dtype), flat.tensors[f"{prefix}{path}.lora_B.weight"].to(b.device, b.dtype), scale)
            for path, a, b in self.layers
        }
        try:
            yield
        finally:
            self._flat = None

    def flat_lora(self, tensors: dict[str, torch.Tensor], settings: dict[str, Any], base_model_name_or_path: str) -> FlatLora:
        return FlatLora(tensors, settings, lora_peft_config(settings, self.targets, self.peft_target_modules, self.task_type, base_model_name_or_path))

    def backbone_states(self, input_ids: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        """Final hidden states [B, T, hidden] (after the final norm, as the tfjs models' hiddenStates), adapters as
        they are now, no dropout; `offset` is added to every input embedding (bias-aware's adversarial b_bias)."""
        hf = self.model.get_base_model()
        training = self._training
        self._training = False
        try:
            if offset is None:
                return hf.base_model(input_ids=input_ids).last_hidden_state
            embeds = hf.get_input_embeddings()(input_ids)
            return hf.base_model(inputs_embeds=embeds + offset.to(embeds.dtype)).last_hidden_state
        finally:
            self._training = training
