"""Measures what one LoRA training step of the pytorch engine holds beyond the model's own parameters,
for the memory estimate (src-worker/inspect-model.ts torchActivationBytes) to be checked against:
- savedBytes: the tensors autograd keeps for the backward pass (torch.autograd.graph.saved_tensors_hooks);
- peakBytes: the most bytes of tensors alive at once from the forward through the backward (every tensor
  an op makes, counted until its storage is freed).
Usage: python measure_activation_peak.py MODEL_DIR BATCH SEQ_LEN R TARGET[,TARGET...]   (prints JSON; CPU, f32)"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench_torch.methods.lora import LoraMethod  # noqa: E402
from workbench_torch.models import load_model  # noqa: E402
from workbench_torch.train import masked_loss_sum  # noqa: E402


class LiveTensorBytes(TorchDispatchMode):
    """Every storage an op returns, held by weak reference: the peak of their sum while they live."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                self.live.setdefault(storage._cdata, (StorageWeakRef(storage), storage.nbytes()))
        self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
        self.peak = max(self.peak, sum(n for _, n in self.live.values()))
        return out


def measure(model_dir: str, batch: int, seq_len: int, r: int, targets: list[str]) -> dict[str, int]:
    torch.manual_seed(0)
    loaded = load_model(model_dir, torch.device("cpu"))
    method = LoraMethod(loaded.model, {"r": r, "alpha": 2 * r, "dropout": 0.0, "targetModules": targets, "useRslora": False}, 1)
    parameters = {p.untyped_storage().data_ptr() for p in loaded.model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    ids = torch.randint(0, int(loaded.model.config.vocab_size), (batch, seq_len))
    live = LiveTensorBytes()
    with live, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = method.forward(ids, True)
        total, count = masked_loss_sum(logits, ids, torch.ones(batch, seq_len))
        (total / count).backward()
    return {"savedBytes": sum(saved.values()), "peakBytes": live.peak}


if __name__ == "__main__":
    model_dir, batch, seq_len, r, targets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split(",")
    print(json.dumps(measure(model_dir, batch, seq_len, r, targets)))
