"""Prompt tuning (Lester, Al-Rfou, Constant 2021, arXiv:2104.08691) on PEFT's PROMPT_TUNING, with the tfjs
engine's initialisation (src-worker/methods/prompt-tuning.ts): n trainable vectors P [n, d] precede the
input embeddings of every sequence, taking positions 0..n-1; the loss reads the real tokens' logits only.
`random` draws N(0, s^2) with s the embedding table's own standard deviation (standard normals by
Box-Muller from mulberry32(derive_seed(seed, 0x9707))); `text` takes the rows of the init text's tokens,
repeated and cut to n, as PEFT's TEXT does; the tokens come from the data plan, tokenized by the tfjs
engine's tokenizer. The export is PEFT's layout: `prompt_embeddings` [n, d] and a PromptTuningConfig."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import peft
import torch

from ..protocol import EngineError
from ..rng import derive_seed, mulberry32
from .base import AdapterMethod, Trainable

PROMPT_EMBEDDINGS_KEY = "prompt_embeddings"
_SEED_TAG = 0x9707


def standard_normals(count: int, seed: int) -> npt.NDArray[np.float32]:
    """normals() in prompt-tuning.ts: pairs of draws (u = 1 - r, v) give r cos(2 pi v) and r sin(2 pi v), in float64, stored float32."""
    draws = mulberry32(seed, count + (count % 2))
    u = 1 - draws[0::2]
    v = draws[1::2]
    radius = np.sqrt(-2 * np.log(u))
    out = np.empty(2 * len(u), dtype=np.float64)
    out[0::2] = radius * np.cos(2 * math.pi * v)
    out[1::2] = radius * np.sin(2 * math.pi * v)
    return out[:count].astype(np.float32)


class PromptTuningMethod(AdapterMethod):
    method = "prompt-tuning"

    def __init__(self, model: torch.nn.Module, settings: dict[str, Any], seed: int, kind: str) -> None:
        if kind != "causal":
            raise EngineError(
                "invalid_input",
                "Prompt tuning on the pytorch engine trains decoder-only models (GPT-2, Llama, Qwen2, Mistral...), as the tfjs engine does; for an encoder-decoder such as T5 choose LoRA.",
                {"field": "method"},
            )
        self.settings = settings
        n = int(settings["numVirtualTokens"])
        config = peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n, prompt_tuning_init=peft.PromptTuningInit.RANDOM)
        self.model = peft.get_peft_model(model, config)
        self.prompt: torch.nn.Parameter = self.model.prompt_encoder["default"].embedding.weight
        table = model.get_input_embeddings().weight.detach()
        d = table.shape[1]
        with torch.no_grad():
            # The table's population standard deviation, in float32 as tf.moments computes it.
            scale = torch.sqrt(table.float().var(unbiased=False))
            init = torch.from_numpy(standard_normals(n * d, derive_seed(seed, _SEED_TAG)).reshape(n, d)).to(table.device)
            self.prompt.copy_(init * scale)
        self.embedding = table
        self.num_virtual_tokens = n

    def fit(self, plan: dict[str, Any]) -> None:
        """init "text": P = the embeddings of the init text's tokens, repeated and cut to n rows (PEFT's TEXT)."""
        if self.settings["init"] != "text":
            return
        ids = plan.get("promptTuningInitIds")
        if ids is None:
            raise EngineError("invalid_input", "The data plan has no promptTuningInitIds for init \"text\": it was written by an older workbench; start the run again to rewrite it.", {"field": "promptTuning.initText"})
        if not ids:
            raise EngineError(
                "invalid_input",
                'promptTuning.initText is empty or has no tokens: give a text (e.g. a description of the task) or choose init "random".',
                {"issues": [{"path": "promptTuning.initText", "message": "no tokens"}]},
            )
        rows = torch.tensor([ids[i % len(ids)] for i in range(self.num_virtual_tokens)], device=self.embedding.device)
        with torch.no_grad():
            self.prompt.copy_(self.embedding[rows].to(self.prompt.dtype))

    def trainable(self) -> list[Trainable]:
        return [Trainable(PROMPT_EMBEDDINGS_KEY, PROMPT_EMBEDDINGS_KEY, self.prompt)]

    def forward(self, input_ids: torch.Tensor, training: bool, **extra: torch.Tensor) -> torch.Tensor:
        # PEFT returns logits for the virtual positions too; the loss and the probe read the real tokens'.
        logits: torch.Tensor = self.model(input_ids=input_ids, **extra).logits
        return logits[:, self.num_virtual_tokens :, :]

    def peft_config(self, base_model_name_or_path: str) -> dict[str, Any] | None:
        """PEFT's PromptTuningConfig fields only, as prompt-tuning.ts writes them."""
        c = self.model.peft_config["default"]
        text = self.settings["init"] == "text"
        return {
            "peft_type": "PROMPT_TUNING",
            "task_type": "CAUSAL_LM",
            "num_virtual_tokens": self.num_virtual_tokens,
            "token_dim": c.token_dim,
            "num_transformer_submodules": 1,
            "num_attention_heads": c.num_attention_heads,
            "num_layers": c.num_layers,
            "prompt_tuning_init": "TEXT" if text else "RANDOM",
            "prompt_tuning_init_text": self.settings["initText"] if text else None,
            # PEFT requires a tokenizer for TEXT; the base model folder holds it.
            "tokenizer_name_or_path": base_model_name_or_path if text else None,
            "base_model_name_or_path": base_model_name_or_path,
            "revision": None,
            "inference_mode": True,
        }
