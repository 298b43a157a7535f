"""Houlsby adapters (Houlsby et al. 2019, arXiv:1902.00751) as the tfjs engine trains them
(src-worker/methods/houlsby.ts): after the attention output projection and the MLP's output layer of
every transformer layer, the sublayer output h becomes h + up(gelu_tanh(down(h))), down: d -> m,
up: m -> d. down starts as nn.Linear's default bound (uniform in +-1/sqrt(d), drawn from
derive_seed(seed, 0x4015B, module index)), its bias, up and up's bias at zero, so the adapted model starts
as the base model. Only the adapters train. PEFT has no Houlsby type: the saved tensors are the tfjs
engine's keys (`base_model.model.<path>.houlsby.{down,up}_proj.{weight,bias}`, nn.Linear layout) and no
adapter_config.json is written."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..models import linear_modules
from ..protocol import EngineError
from ..rng import derive_seed, mulberry32
from .base import AdapterMethod, Trainable

#: As SITES in houlsby.ts: the attention output projection and the MLP output, GPT-2 and Llama names.
SITES = re.compile(r"(^|\.)(attn\.c_proj|mlp\.c_proj|self_attn\.o_proj|mlp\.down_proj)$")
_SEED_TAG = 0x4015B


class HoulsbyAdapter(torch.nn.Module):
    def __init__(self, d: int, m: int) -> None:
        super().__init__()
        self.down_proj = torch.nn.Linear(d, m)
        self.up_proj = torch.nn.Linear(m, d)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # The adapter computes in its own float32 whatever the base's dtype (bf16 on CUDA), as PEFT keeps LoRA's.
        x = h.to(self.down_proj.weight.dtype)
        out: torch.Tensor = self.up_proj(F.gelu(self.down_proj(x), approximate="tanh"))
        return h + out.to(h.dtype)


class HoulsbyMethod(AdapterMethod):
    method = "houlsby"
    peft_loadable = False

    def __init__(self, model: torch.nn.Module, settings: dict[str, Any], seed: int) -> None:
        self.model = model
        modules = linear_modules(model)
        targets = [(i, m) for i, m in enumerate(modules) if SITES.search(m.path)]
        if not targets:
            raise EngineError(
                "invalid_input",
                f"Houlsby adapters follow the attention output and MLP output projections, and this model has none by their usual names ({modules[0].path if modules else 'no linear layers'}).",
                {"field": "method"},
            )
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        m = int(settings["bottleneckSize"])
        device = next(model.parameters()).device
        self.adapters: list[tuple[str, HoulsbyAdapter]] = []
        for index, module in targets:
            d = module.out_features
            adapter = HoulsbyAdapter(d, m)
            draws = mulberry32(derive_seed(seed, _SEED_TAG, index), m * d)
            with torch.no_grad():
                adapter.down_proj.weight.copy_(torch.from_numpy(((2 * draws - 1) / np.sqrt(d)).astype(np.float32).reshape(m, d)))
                adapter.down_proj.bias.zero_()
                adapter.up_proj.weight.zero_()
                adapter.up_proj.bias.zero_()
            adapter.to(device)
            # A forward hook replaces the sublayer's output: the residual addition that follows sees h + adapter.
            model.get_submodule(module.path).register_forward_hook(lambda _m, _i, output, a=adapter: a(output))
            self.adapters.append((module.path, adapter))

    def trainable(self) -> list[Trainable]:
        out: list[Trainable] = []
        for path, adapter in self.adapters:
            prefix = f"base_model.model.{path}.houlsby"
            for name, parameter in (("down_proj.weight", adapter.down_proj.weight), ("down_proj.bias", adapter.down_proj.bias), ("up_proj.weight", adapter.up_proj.weight), ("up_proj.bias", adapter.up_proj.bias)):
                out.append(Trainable(f"{prefix}.{name}", "houlsby", parameter))
        return out

    def forward(self, input_ids: torch.Tensor, training: bool, **extra: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(input_ids=input_ids, **extra).logits
        return logits
