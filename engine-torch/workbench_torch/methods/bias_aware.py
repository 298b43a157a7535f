"""Bias-aware LoRA (docs/METHODS.md section 4) as src-worker/methods/bias-aware.ts and align.ts compute
it: the LoRA layer W' = W0 + s B A trained on L = L_task + l1 L_bias + l2 L_align + l3 L_KL.
L_bias = mean over the batch of ||f(x') - f(x)||^2, f the mean over the prompt tokens of the final hidden
states with the adapter on, x' either
  counterfactual: the prompt with its demographic terms swapped (the data plan carries its ids, computed
                  by the tfjs engine's own code: src-worker/data/data-plan.ts), or
  adversarial:    x with b_bias (norm epsilon) added to its input embeddings, b_bias moved by one signed
                  gradient-ascent step on L_bias before every training step.
L_KL = KL(P_lora || P_orig) averaged over the completion tokens, P_orig the base model's.
With two or more tasks, one adapter per task (task 0 is LoRA's own layer), a training step trains the task
its batch was drawn for, every other forward uses the mixture sum_t pi_t s B_t A_t, and
L_align = sum_{i<j} ||B_i A_i - B_j A_j||_F^2 per module, through r x r Grams; the export is that mixture
as one exact PEFT LoRA of rank T r (flattened/)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..plan import Batch
from ..protocol import EngineError
from ..rng import derive_seed, mulberry32
from .base import FlatLora, Regularizer, Trainable
from .hooked import HookedLoraMethod

TASK_MIXTURE_KEY = "base_model.model.align_task_mixture"
#: bias-aware.ts seeds task t's A from derive_seed(seed, layer index, TASK_STREAM, t) and b_bias from derive_seed(seed, OFFSET_STREAM).
TASK_STREAM = 0xA119
OFFSET_STREAM = 0xB1A5


def task_key(path: str, task: int, matrix: str) -> str:
    return f"base_model.model.{path}.align_tasks.{task}.lora_{matrix}.weight"


def lora_inner_product(x: tuple[torch.Tensor, torch.Tensor], y: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """<B_x A_x, B_y A_y>_F = sum((B_x^T B_y) (.) (A_x A_y^T)) for (A, B) pairs."""
    return ((x[1].T @ y[1]) * (x[0] @ y[0].T)).sum()


def align_loss(tasks: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """sum_{i<j} ||X_i - X_j||^2 = (T - 1) sum_i <X_i, X_i> - 2 sum_{i<j} <X_i, X_j> for one module's (A, B) per task."""
    count = len(tasks)
    total = torch.zeros((), device=tasks[0][0].device)
    for i in range(count):
        total = total + (count - 1) * lora_inner_product(tasks[i], tasks[i])
        for j in range(i + 1, count):
            total = total - 2 * lora_inner_product(tasks[i], tasks[j])
    # The expansion can round a true zero (identical adapters) slightly below it.
    return torch.relu(total)


def token_kl(lora_logits: torch.Tensor, base_logits: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """KL(P_lora || P_orig) per next-token distribution, averaged over the positions whose next token is a target."""
    weights = torch.nn.functional.pad(loss_mask[:, 1:].float(), (0, 1))
    log_p = torch.log_softmax(lora_logits.float(), -1)
    log_q = torch.log_softmax(base_logits.float(), -1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)
    return (kl * weights).sum() / weights.sum().clamp(min=1)


class BiasAwareMethod(HookedLoraMethod):
    method = "bias-aware"

    def __init__(self, model: torch.nn.Module, lora: dict[str, Any], bias: dict[str, Any], seed: int, task_type: str = "CAUSAL_LM") -> None:
        super().__init__(model, lora, seed, task_type)
        self.bias = bias
        self.task_count = len(bias["tasks"])
        self.multi_task = self.task_count >= 2
        # Multi-task: PEFT holds only the merged mixture (flattened/).
        self.peft_loadable = not self.multi_task
        r = int(lora["r"])
        device, dtype = self.layers[0][1].device, self.layers[0][1].dtype
        #: task_layers[t - 1][path] = (A_t, B_t) for tasks 1..T-1.
        self.task_layers: list[dict[str, tuple[torch.nn.Parameter, torch.nn.Parameter]]] = []
        for task in range(1, self.task_count):
            layers = {}
            for module in self.targets:
                # PEFT's init for every task: A kaiming-uniform (bound 1 / sqrt(in)), B zero; each task its own stream.
                draws = mulberry32(derive_seed(seed, self.layer_index[module.path], TASK_STREAM, task), r * module.in_features)
                a = ((2 * draws - 1) / np.sqrt(module.in_features)).astype(np.float32).reshape(r, module.in_features)
                layers[module.path] = (torch.nn.Parameter(torch.from_numpy(a).to(device, dtype)), torch.nn.Parameter(torch.zeros(module.out_features, r, device=device, dtype=dtype)))
            self.task_layers.append(layers)
        #: pi_t, saved with the tensors so a reloaded adapter applies the same mixture.
        self.mixture = torch.full((self.task_count,), 1 / self.task_count, device=device) if self.multi_task else None
        self.active_task: int | None = None
        self.offset: torch.Tensor | None = None
        if bias["reading"] == "adversarial":
            # A seeded random direction: zero has no direction to project back onto the sphere from.
            hidden = int(self.model.get_base_model().config.hidden_size)
            v = 2 * mulberry32(derive_seed(seed, OFFSET_STREAM), hidden) - 1
            self.offset = torch.from_numpy((v * float(bias["epsilon"]) / np.sqrt(np.sum(v * v))).astype(np.float32)).to(device)
        self.counterfactuals: dict[tuple[int, ...], list[int] | None] = {}
        self.prompts: list[list[int]] = []

    # -- tensors ----------------------------------------------------------------------------------
    def task_factors(self, path: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(A_t, B_t) of every task of one module, task 0 first."""
        _, a, b = self.layer_of(path)
        return [(a, b), *(layers[path] for layers in self.task_layers)]

    def trainable(self) -> list[Trainable]:
        out = super().trainable()
        for task, layers in enumerate(self.task_layers, start=1):
            for path, (a, b) in layers.items():
                out.append(Trainable(task_key(path, task, "A"), "lora_A", a))
                out.append(Trainable(task_key(path, task, "B"), "lora_B", b))
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = super().state_dict()
        if self.mixture is not None:
            out[TASK_MIXTURE_KEY] = self.mixture.detach().to("cpu", torch.float32).contiguous()
        return out

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.mixture is None:
            super().load_state_dict(tensors)
            return
        if TASK_MIXTURE_KEY not in tensors:
            raise EngineError("format_invalid", f"The saved tensors do not match this bias-aware configuration: missing {TASK_MIXTURE_KEY}.", {"missing": [TASK_MIXTURE_KEY]})
        super().load_state_dict({k: v for k, v in tensors.items() if k != TASK_MIXTURE_KEY})
        self.mixture = tensors[TASK_MIXTURE_KEY].to(self.mixture.device, torch.float32)

    def peft_config(self, base_model_name_or_path: str) -> dict[str, Any] | None:
        return None if self.multi_task else super().peft_config(base_model_name_or_path)

    # -- the forward ------------------------------------------------------------------------------
    def select_task(self, task: int | None) -> None:
        if not self.multi_task:
            return
        if task is not None and not 0 <= task < self.task_count:
            raise ValueError(f"select_task: no task {task}")
        self.active_task = task

    def delta(self, path: str, x: torch.Tensor) -> torch.Tensor:
        if self.mixture is None or self.active_task == 0:
            return super().delta(path, x)
        factors = self.task_factors(path)
        if self.active_task is not None:
            return self.lora_delta(x, *factors[self.active_task])
        total = self.lora_delta(x, *factors[0]) * self.mixture[0]
        for task in range(1, self.task_count):
            total = total + self.lora_delta(x, *factors[task]) * self.mixture[task]
        return total

    # -- the regularizers -------------------------------------------------------------------------
    def fit(self, plan: dict[str, Any]) -> None:
        if self.mixture is not None:
            self.mixture = torch.tensor(plan["taskProbabilities"], dtype=torch.float32, device=self.mixture.device)
        if self.bias["reading"] == "counterfactual":
            for example in plan["examples"]:
                counterfactual = example.get("counterfactual")
                self.counterfactuals[tuple(example["prompt"])] = list(counterfactual) if counterfactual else None

    def prepare(self, batch: Batch, training: bool) -> None:
        # The plan's prompts are cut to maxSeqLen, itself within the model's positions (bias-aware.ts cuts them there).
        self.prompts = [p for p in batch.prompts if p]
        if training:
            self.ascend()

    def pooled_states(self, rows: list[list[int]], offset: torch.Tensor | None = None) -> torch.Tensor:
        """Mean-pooled final hidden states [N, hidden] of `rows`, adapter on, no dropout, right-padded with id 0."""
        length = max(len(r) for r in rows)
        device = self.layers[0][1].device
        ids = torch.zeros((len(rows), length), dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.float32)
        for n, row in enumerate(rows):
            ids[n, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[n, : len(row)] = 1
        mask = mask.to(device)
        states = self.backbone_states(ids.to(device), offset).float()
        return (states * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)

    def counterfactual_rows(self) -> list[list[int]]:
        return [p for p in self.prompts if self.counterfactuals.get(tuple(p)) is not None]

    def bias_loss(self, offset: torch.Tensor | None) -> torch.Tensor:
        """L_bias on the prompts of the last prepare (0 before any, and for a batch without counterfactuals)."""
        zero = torch.zeros((), device=self.layers[0][1].device)
        if not self.prompts:
            return zero
        if self.bias["reading"] == "adversarial":
            diff = self.pooled_states(self.prompts, offset) - self.pooled_states(self.prompts)
        else:
            rows = self.counterfactual_rows()
            if not rows:
                return zero
            counterfactuals = [self.counterfactuals[tuple(p)] for p in rows]
            diff = self.pooled_states(counterfactuals) - self.pooled_states(rows)  # type: ignore[arg-type]
        # Averaged over the whole batch: rows without a counterfactual contribute 0.
        return diff.square().sum() / len(self.prompts)

    def ascend(self) -> None:
        """One signed ascent step on L_bias for b_bias (step norm epsilon / 2), then back onto the sphere of radius epsilon."""
        if self.offset is None or not self.prompts:
            return
        epsilon = float(self.bias["epsilon"])
        offset = self.offset.clone().requires_grad_(True)
        with torch.enable_grad():
            (gradient,) = torch.autograd.grad(self.bias_loss(offset), offset)
        with torch.no_grad():
            moved = self.offset + gradient.sign() * (0.5 * epsilon / np.sqrt(self.offset.numel()))
            self.offset = moved * (epsilon / moved.norm().clamp(min=1e-12))

    def regularizers(self, batch: Batch, input_ids: torch.Tensor, loss_mask: torch.Tensor, logits: torch.Tensor) -> list[Regularizer]:
        terms = [Regularizer("bias", float(self.bias["lambdaBias"]), self.bias_loss(self.offset))]
        if self.multi_task:
            value = torch.stack([align_loss(self.task_factors(path)) for path, _, _ in self.layers]).sum()
            terms.append(Regularizer("align", float(self.bias["lambdaAlign"]), value))
        if self.bias["reading"] == "counterfactual":
            # Logged (weight 0) so a run shows how many of its examples the bias term can act on.
            terms.append(Regularizer("bias_counterfactuals", 0.0, torch.tensor(float(len(self.counterfactual_rows())))))
        # P_orig depends on no parameter: no gradient flows into it.
        with torch.no_grad(), self.adapters_off():
            base = self.model(input_ids=input_ids).logits
        terms.append(Regularizer("kl", float(self.bias["lambdaKl"]), token_kl(logits, base, loss_mask)))
        return terms

    # -- export -----------------------------------------------------------------------------------
    def flattened(self, base_model_name_or_path: str) -> FlatLora | None:
        """A multi-task adapter as the plain LoRA it applies outside training: sum_t pi_t s B_t A_t, exactly, as rank
        T r factors B_cat = [pi_0 B_0 | pi_1 B_1 | ...], A_cat = [A_0; A_1; ...] (scale kept: alpha = s T r)."""
        if self.mixture is None:
            return None
        tensors: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for path, _, _ in self.layers:
                factors = self.task_factors(path)
                prefix = f"base_model.model.{path}"
                tensors[f"{prefix}.lora_A.weight"] = torch.cat([a for a, _ in factors], 0).to("cpu", torch.float32).contiguous()
                tensors[f"{prefix}.lora_B.weight"] = torch.cat([b * self.mixture[t] for t, (_, b) in enumerate(factors)], 1).to("cpu", torch.float32).contiguous()
        r = self.task_count * int(self.settings["r"])
        settings = {**self.settings, "r": r, "alpha": self.scaling * r, "useRslora": False}
        return self.flat_lora(tensors, settings, base_model_name_or_path)
