"""The data plan the TypeScript side computes (src-worker/data/data-plan.ts): tokenized examples and the
rows of every step. Collation is the tfjs engine's (src-worker/data/batcher.ts collate): right padding
with the pad id to the longest example rounded up to a multiple of 8, capped at maxSeqLen."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .schemas import validate


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # [B, T] int64
    loss_mask: torch.Tensor  # [B, T] float32, 1 on targets
    token_count: int  # real (non-pad) tokens, for tokens/s
    prompts: list[list[int]]  # each row's prompt tokens (SeLoRA, bias-aware)


def read_plan(path: str | Path) -> dict[str, Any]:
    plan: dict[str, Any] = json.loads(Path(path).read_text())
    validate("data-plan", plan)
    return plan


def collate(plan: dict[str, Any], rows: list[int]) -> Batch:
    examples = [plan["examples"][i] for i in rows]
    longest = max([1, *(len(e["inputIds"]) for e in examples)])
    seq_len = max(longest, min(plan["maxSeqLen"], math.ceil(longest / 8) * 8))
    ids = torch.full((len(examples), seq_len), plan["padTokenId"], dtype=torch.long)
    mask = torch.zeros((len(examples), seq_len), dtype=torch.float32)
    for b, e in enumerate(examples):
        n = len(e["inputIds"])
        ids[b, :n] = torch.tensor(e["inputIds"], dtype=torch.long)
        mask[b, :n] = torch.tensor(e["lossMask"], dtype=torch.float32)
    return Batch(ids, mask, sum(len(e["inputIds"]) for e in examples), [list(e["prompt"]) for e in examples])


def shard(batch: Batch, rank: int, world: int) -> Batch:
    """Rank `rank`'s equal share of the rows, padded as the whole batch is, so every rank sees the same positions."""
    size = batch.input_ids.shape[0]
    if size % world != 0:
        raise ValueError(f"batchSize {size} does not split evenly over {world} processes")
    per = size // world
    part = slice(rank * per, (rank + 1) * per)
    return Batch(batch.input_ids[part], batch.loss_mask[part], batch.token_count, batch.prompts[part])
