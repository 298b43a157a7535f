"""LoRA (Hu et al. 2021) and rsLoRA on PEFT's LoRA layer, and LoRA+ (Hayou et al. 2024) as two AdamW
groups, with the tfjs engine's settings, initialisation and tensor names (src-worker/methods/lora.ts,
lora-plus.ts): A [r, in] uniform in +-1/sqrt(in) from derive_seed(seed, layer index), B [out, r] zero,
scale alpha / r (alpha / sqrt(r) with rsLoRA)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import peft
import torch

from ..models import LinearModule, linear_modules
from ..protocol import EngineError
from ..rng import derive_seed, mulberry32
from .base import AdapterMethod, Trainable


def _key_prefix(path: str) -> str:
    return f"base_model.model.{path}"


def select_targets(modules: list[LinearModule], patterns: list[str]) -> tuple[list[LinearModule], list[str] | str]:
    """As selectTargets in lora.ts: a name matches a full path or a dot-suffix of it; /regex/ is searched in the path.
    Returns the targets and adapter_config.json's target_modules (the plainest list PEFT selects exactly these with)."""
    matchers: list[tuple[str, bool, Any]] = []
    for pattern in patterns:
        regex = re.fullmatch(r"/(.+)/", pattern)
        if regex is None:
            matchers.append((pattern, False, lambda p, n=pattern: p == n or p.endswith(f".{n}")))
            continue
        try:
            compiled = re.compile(regex.group(1))
        except re.error as error:
            raise EngineError("invalid_input", f"lora.targetModules: {pattern} is not a valid regular expression ({error}).", {"issues": [{"path": "lora.targetModules", "message": "invalid regular expression"}]}) from error
        matchers.append((pattern, True, lambda p, c=compiled: c.search(p) is not None))
    targets = [m for m in modules if any(test(m.path) for _, _, test in matchers)]
    if not targets:
        names = sorted({m.path.split(".")[-1] for m in modules})
        raise EngineError(
            "invalid_input",
            f"lora.targetModules {patterns} match no linear layer of this model. Available module names: {', '.join(names)} (or /regex/ over full paths such as {modules[0].path if modules else 'none'}).",
            {"issues": [{"path": "lora.targetModules", "message": "no module matched"}]},
        )
    chosen = {m.path for m in targets}

    def selects_exactly(names: list[str]) -> bool:
        hit = [m for m in modules if any(m.path == n or m.path.endswith(f".{n}") for n in names)]
        return len(hit) == len(chosen) and all(m.path in chosen for m in hit)

    own_names = sorted({m.path.split(".")[-1] for m in targets})
    used = [(pattern, is_regex) for pattern, is_regex, test in matchers if any(test(m.path) for m in modules)]
    given = sorted({p for p, _ in used}) if all(not r for _, r in used) else []
    if selects_exactly(own_names):
        return targets, own_names
    if given and selects_exactly(given):
        return targets, given
    return targets, "|".join(re.escape(m.path) for m in targets)


def lora_peft_config(settings: dict[str, Any], targets: list[LinearModule], peft_target_modules: list[str] | str, task_type: str, base_model_name_or_path: str) -> dict[str, Any]:
    """adapter_config.json of a LoRA with these settings on these targets (LoraModel.peftConfig)."""
    return {
        "peft_type": "LORA",
        "task_type": task_type,
        "r": settings["r"],
        "lora_alpha": settings["alpha"],
        "lora_dropout": settings["dropout"],
        "target_modules": peft_target_modules,
        "fan_in_fan_out": all(m.fan_in_fan_out for m in targets),
        "bias": "none",
        "use_rslora": settings["useRslora"],
        "base_model_name_or_path": base_model_name_or_path,
        "inference_mode": True,
        "modules_to_save": None,
        "init_lora_weights": True,
        "layers_to_transform": None,
        "layers_pattern": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": None,
    }


class LoraMethod(AdapterMethod):
    method = "lora"

    def __init__(self, model: torch.nn.Module, settings: dict[str, Any], seed: int, task_type: str = "CAUSAL_LM") -> None:
        self.settings = settings
        self.task_type = task_type
        modules = linear_modules(model)
        self.targets, self.peft_target_modules = select_targets(modules, list(settings["targetModules"]))
        r = int(settings["r"])
        config = peft.LoraConfig(
            r=r,
            lora_alpha=settings["alpha"],
            lora_dropout=settings["dropout"],
            # An exact regex over the chosen paths (re.fullmatch in PEFT): the selection is made once, above.
            target_modules="|".join(re.escape(m.path) for m in self.targets),
            fan_in_fan_out=all(m.fan_in_fan_out for m in self.targets),
            bias="none",
            use_rslora=bool(settings["useRslora"]),
            init_lora_weights=True,
        )
        self.model = peft.get_peft_model(model, config)
        self.layers: list[tuple[str, torch.nn.Parameter, torch.nn.Parameter]] = []
        index_of = {m.path: i for i, m in enumerate(modules)}
        #: Each target's index among the model's linear layers: the seeds of its initial tensors derive from it.
        self.layer_index = {m.path: index_of[m.path] for m in self.targets}
        with torch.no_grad():
            for module in self.targets:
                layer = self.model.base_model.model.get_submodule(module.path)
                a = layer.lora_A["default"].weight
                b = layer.lora_B["default"].weight
                draws = mulberry32(derive_seed(seed, index_of[module.path]), r * module.in_features)
                bound = 1 / np.sqrt(module.in_features)
                a.copy_(torch.from_numpy(((2 * draws - 1) * bound).astype(np.float32).reshape(r, module.in_features)))
                b.zero_()
                self.layers.append((module.path, a, b))
        self._dropouts = [m for name, m in self.model.named_modules() if name.endswith("lora_dropout.default")]

    def trainable(self) -> list[Trainable]:
        out: list[Trainable] = []
        for path, a, b in self.layers:
            out.append(Trainable(f"{_key_prefix(path)}.lora_A.weight", "lora_A", a))
            out.append(Trainable(f"{_key_prefix(path)}.lora_B.weight", "lora_B", b))
        return out

    def forward(self, input_ids: torch.Tensor, training: bool, **extra: torch.Tensor) -> torch.Tensor:
        for dropout in self._dropouts:
            dropout.train(training)
        logits: torch.Tensor = self.model(input_ids=input_ids, **extra).logits
        return logits

    def peft_config(self, base_model_name_or_path: str) -> dict[str, Any] | None:
        return lora_peft_config(self.settings, self.targets, self.peft_target_modules, self.task_type, base_model_name_or_path)


class LoraPlusMethod(LoraMethod):
    """LoRA+: lora_B's peak rate is learningRateB when given, else ratio x the run's; lora_A keeps the run's."""

    method = "lora-plus"

    def __init__(self, model: torch.nn.Module, lora: dict[str, Any], plus: dict[str, Any], seed: int, task_type: str = "CAUSAL_LM") -> None:
        super().__init__(model, lora, seed, task_type)
        self.plus = plus

    def learning_rate_scale(self, group: str, learning_rate: float) -> float:
        if group != "lora_B":
            return 1.0
        rate_b = self.plus.get("learningRateB")
        return float(self.plus["ratio"]) if rate_b is None else float(rate_b) / learning_rate
