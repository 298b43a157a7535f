"""SeLoRA, semantic-guided LoRA (docs/METHODS.md section 3), as src-worker/methods/selora.ts and
semantic.ts compute it. For each adapted layer
  Delta W(s) = B M(s) A,   M(s) = I_r + reshape(g(s)) (row-major),
g = Linear(d_s, hidden) -> tanh -> Linear(hidden, r*r) with the last layer zero, so training starts as
LoRA. Per example b: y_b = x_b W0^T + scale ((x_b A^T) M_b^T) B^T. s is the mean of the frozen base
model's final hidden states over the example's prompt tokens; a forward without prompts uses the
training set's mean s_bar (what the flattened export bakes in). Semantic consistency, summed over layers:
  L_sem = mean_{i<j} w_ij ||B (M_i - M_j) A||_F^2,  w_ij = max(0, cos(s_i, s_j)),
through r x r Grams: ||B D A||_F^2 = trace(D^T G_B D G_A), G_A = A A^T, G_B = B^T B."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..plan import Batch
from ..protocol import EngineError
from ..rng import derive_seed, mulberry32
from .base import FlatLora, Regularizer, Trainable
from .hooked import HookedLoraMethod

SEMANTIC_MEAN_KEY = "base_model.model.selora.semantic_mean"
#: Prompts per forward when pooling (semantic.ts POOL_BATCH): padding within a chunk changes no real position.
POOL_BATCH = 16
#: selora.ts seeds g's first layer from derive_seed(seed, SELORA_STREAM, layer index).
SELORA_STREAM = 0x5E10


def pooled_prompt_states(backbone_states: Any, prompts: list[list[int]], device: torch.device) -> torch.Tensor:
    """[n, hidden]: each prompt's mean final hidden state over its tokens (an empty prompt: its one pad
    position), right-padded with id 0 within chunks of POOL_BATCH, as pooledPromptStates."""
    chunks = []
    for start in range(0, len(prompts), POOL_BATCH):
        chunk = prompts[start : start + POOL_BATCH]
        length = max(1, *(len(p) for p in chunk))
        ids = torch.zeros((len(chunk), length), dtype=torch.long)
        weights = torch.zeros((len(chunk), length, 1), dtype=torch.float32)
        for b, p in enumerate(chunk):
            ids[b, : len(p)] = torch.tensor(p, dtype=torch.long)
            n = max(1, len(p))
            weights[b, :n] = 1 / n
        states = backbone_states(ids.to(device)).float()
        chunks.append((states * weights.to(device)).sum(1))
    return torch.cat(chunks, 0)


def clamped_pair_cosines(s: torch.Tensor) -> torch.Tensor:
    """max(0, cos(s_a, s_b)) for each pair a < b of the rows of s, in that order (0 where a row is zero)."""
    norms = s.square().sum(1, keepdim=True).sqrt()
    unit = s / torch.where(norms > 0, norms, torch.ones_like(norms))
    a, b = torch.triu_indices(s.shape[0], s.shape[0], offset=1, device=s.device)
    return torch.relu((unit @ unit.T)[a, b])


def gram_frobenius(d: torch.Tensor, g_a: torch.Tensor, g_b: torch.Tensor) -> torch.Tensor:
    """||B D_p A||_F^2 for D [P, r, r] from G_A = A A^T and G_B = B^T B: sum(D (.) G_B D G_A) per p."""
    return (d * (g_b @ d @ g_a)).sum((1, 2))


class SeloraMethod(HookedLoraMethod):
    method = "selora"
    # Delta W depends on the prompt through g(s): PEFT's LoRA holds only the flattened B M(s_bar) A.
    peft_loadable = False

    def __init__(self, model: torch.nn.Module, lora: dict[str, Any], selora: dict[str, Any], seed: int, task_type: str = "CAUSAL_LM") -> None:
        super().__init__(model, lora, seed, task_type)
        self.selora = selora
        self.semantic_size = int(self.model.get_base_model().config.hidden_size)
        r = int(lora["r"])
        hidden = int(selora["hiddenSize"])
        device, dtype = self.layers[0][1].device, self.layers[0][1].dtype
        self.encoders: dict[str, list[torch.nn.Parameter]] = {}
        for path, _, _ in self.layers:
            # nn.Linear's default init for the first layer: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); w1's draws, then b1's.
            draws = mulberry32(derive_seed(seed, SELORA_STREAM, self.layer_index[path]), hidden * self.semantic_size + hidden)
            first = ((2 * draws - 1) / np.sqrt(self.semantic_size)).astype(np.float32)
            w1 = torch.from_numpy(first[: hidden * self.semantic_size].reshape(hidden, self.semantic_size).copy())
            b1 = torch.from_numpy(first[hidden * self.semantic_size :].copy())
            self.encoders[path] = [torch.nn.Parameter(t.to(device, dtype)) for t in (w1, b1, torch.zeros(r * r, hidden), torch.zeros(r * r))]
        self.semantic_mean = torch.zeros(self.semantic_size, device=device)
        self.semantics: torch.Tensor | None = None
        self._cache: dict[tuple[int, ...], torch.Tensor] = {}

    @staticmethod
    def encoder_keys(path: str) -> list[str]:
        prefix = f"base_model.model.{path}.selora_g"
        return [f"{prefix}.0.weight", f"{prefix}.0.bias", f"{prefix}.2.weight", f"{prefix}.2.bias"]

    def trainable(self) -> list[Trainable]:
        out = super().trainable()
        for path, parameters in self.encoders.items():
            out.extend(Trainable(key, "selora_g", p) for key, p in zip(self.encoder_keys(path), parameters))
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**super().state_dict(), SEMANTIC_MEAN_KEY: self.semantic_mean.detach().to("cpu", torch.float32).contiguous()}

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        if SEMANTIC_MEAN_KEY not in tensors:
            raise EngineError("format_invalid", f"The saved tensors do not match this selora configuration: missing {SEMANTIC_MEAN_KEY}.", {"missing": [SEMANTIC_MEAN_KEY]})
        super().load_state_dict({k: v for k, v in tensors.items() if k != SEMANTIC_MEAN_KEY})
        self.semantic_mean = tensors[SEMANTIC_MEAN_KEY].to(self.semantic_mean.device, torch.float32)

    def peft_config(self, base_model_name_or_path: str) -> dict[str, Any] | None:
        return None

    # -- semantic vectors -------------------------------------------------------------------------
    def semantic_vectors(self, prompts: list[list[int]]) -> torch.Tensor:
        """[n, d_s], each computed once with the base model (adapters off) and cached by its tokens."""
        missing = list(dict.fromkeys(tuple(p) for p in prompts if tuple(p) not in self._cache))
        if missing:
            with torch.no_grad(), self.adapters_off():
                pooled = pooled_prompt_states(self.backbone_states, [list(p) for p in missing], self.semantic_mean.device)
            for key, row in zip(missing, pooled):
                self._cache[key] = row
        return torch.stack([self._cache[tuple(p)] for p in prompts])

    def fit(self, plan: dict[str, Any]) -> None:
        examples = plan["examples"]
        self.semantic_mean = self.semantic_vectors([examples[i]["prompt"] for i in plan["train"]]).mean(0)

    def prepare(self, batch: Batch, training: bool) -> None:
        self.semantics = self.semantic_vectors(batch.prompts)

    def mixing(self, path: str, s: torch.Tensor) -> torch.Tensor:
        """M(s) = I + reshape(g(s)) for each row of s [B, d_s]: [B, r, r]."""
        w1, b1, w2, b2 = self.encoders[path]
        r = int(self.settings["r"])
        s = s.to(w1.dtype)
        g = torch.tanh(s @ w1.T + b1) @ w2.T + b2
        return g.view(s.shape[0], r, r) + torch.eye(r, device=s.device, dtype=g.dtype)

    def current_semantics(self) -> torch.Tensor:
        return self.semantics if self.semantics is not None else self.semantic_mean.view(1, -1)

    def delta(self, path: str, x: torch.Tensor) -> torch.Tensor:
        _, a, b = self.layer_of(path)
        m = self.mixing(path, self.current_semantics())
        h = (self.dropout(x) @ a.T) * self.scaling
        if m.shape[0] == 1:
            mixed = h @ m[0].T
        else:
            if x.shape[0] != m.shape[0]:
                raise ValueError(f"SeLoRA: a batch of {x.shape[0]} rows, semantic vectors of {m.shape[0]}: prepare() before each forward")
            mixed = (h.reshape(m.shape[0], -1, h.shape[-1]) @ m.transpose(1, 2)).reshape(h.shape)
        return mixed @ b.T

    def semantic_loss(self) -> torch.Tensor:
        s = self.semantics
        if s is None or s.shape[0] < 2:
            return torch.zeros((), device=self.semantic_mean.device)
        w = clamped_pair_cosines(s)
        i, j = torch.triu_indices(s.shape[0], s.shape[0], offset=1, device=s.device)
        terms = []
        for path, a, b in self.layers:
            m = self.mixing(path, s)
            norms = gram_frobenius(m[i] - m[j], a @ a.T, b.T @ b)
            terms.append((w * norms).mean())
        return torch.stack(terms).sum()

    def regularizers(self, batch: Batch, input_ids: torch.Tensor, loss_mask: torch.Tensor, logits: torch.Tensor) -> list[Regularizer]:
        return [Regularizer("sem", float(self.selora["lambdaSem"]), self.semantic_loss())]

    # -- export -----------------------------------------------------------------------------------
    def flattened(self, base_model_name_or_path: str) -> FlatLora:
        """Plain LoRA tensors at s_bar: B' = B M(s_bar), A unchanged, so scale x A^T B'^T = scale (x A^T) M^T B^T."""
        tensors: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for path, a, b in self.layers:
                m = self.mixing(path, self.semantic_mean.view(1, -1))[0]
                tensors[f"base_model.model.{path}.lora_A.weight"] = a.detach().to("cpu", torch.float32).contiguous()
                tensors[f"base_model.model.{path}.lora_B.weight"] = (b @ m).detach().to("cpu", torch.float32).contiguous()
        return self.flat_lora(tensors, dict(self.settings), base_model_name_or_path)
