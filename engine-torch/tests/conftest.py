"""Shared helpers: the repository's fixtures, and data plans written by hand in the TypeScript side's shape
(src-worker/data/data-plan.ts) so the package's own tests need no Node."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from workbench_torch.schemas import validate

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "test" / "fixtures"


def make_plan(*, rows: int = 12, batch_size: int = 4, steps: int = 6, vocab: int = 200, seed: int = 3) -> dict[str, Any]:
    """Examples of a prompt (mask 0) and a completion (mask 1) of a few tokens each, drawn in a simple cyclic order."""
    examples = []
    for i in range(rows):
        prompt = [(7 * i + k) % vocab for k in range(3 + i % 3)]
        completion = [(11 * i + 5 * k + 1) % vocab for k in range(2 + i % 2)]
        examples.append({"inputIds": prompt + completion, "lossMask": [0] * len(prompt) + [1] * len(completion), "promptLength": len(prompt), "bosLength": 0, "prompt": prompt})
    validation = [0, 1]
    train = list(range(2, rows))
    plan_steps = []
    position = 0
    for _ in range(steps):
        picked = [train[(position + k) % len(train)] for k in range(batch_size)]
        position += batch_size
        plan_steps.append({"rows": picked, "batcher": {"epoch": position // len(train), "position": position % len(train)}, "task": None})
    plan = {
        "format": "lora-workbench-data-plan",
        "version": 1,
        "padTokenId": 0,
        "maxSeqLen": 16,
        "examples": examples,
        "train": train,
        "validation": validation,
        "steps": plan_steps,
        "dataset": {"rows": rows, "trainRows": len(train), "validationRows": len(validation), "fingerprint": f"synthetic-{seed}"},
        "probeInputIds": [examples[0]["prompt"], examples[1]["prompt"][: len(examples[0]["prompt"])]],
        "taskProbabilities": [],
        "baseModelFingerprint": None,
    }
    validate("data-plan", plan)
    return plan


def make_job(run_dir: Path, model: str, method: str = "lora", *, steps: int = 6, dropout: float = 0.0, checkpoint_every: int = 3, batch_size: int = 4, resume_from: str | None = None, target_modules: list[str] | None = None) -> dict[str, Any]:
    defaults = json.loads((REPO / "engine-torch" / "tests" / "default-run-configs.json").read_text())[method]
    config = {**defaults, "model": model, "dataset": "synthetic", "backend": "cpu", "engine": "pytorch"}
    if "lora" in config:
        config["lora"] = {**defaults["lora"], "r": 2, "alpha": 4, "dropout": dropout, "targetModules": target_modules or ["c_attn"]}
    config["training"] = {**defaults["training"], "learningRate": 1e-2, "batchSize": batch_size, "maxSteps": steps, "maxSeqLen": 16, "warmupSteps": 1, "evalEvery": 3, "evalBatches": 1, "checkpointEvery": checkpoint_every, "seed": 5}
    job = {"type": "train", "runId": run_dir.name, "config": config, "modelDir": str(FIXTURES / model), "datasetPath": "synthetic.jsonl", "runDir": str(run_dir), "resumeFrom": resume_from}
    validate("train-job", job)
    return job


class Collector:
    """An Emitter target: every line it is written, parsed."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines() if line]

    def losses(self) -> dict[int, float]:
        return {p["step"]: p["value"] for m in self.messages() if m["type"] == "metrics" for p in m["points"] if p["name"] == "train/loss"}


@pytest.fixture
def collector() -> Collector:
    return Collector()
