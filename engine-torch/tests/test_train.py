"""Whole runs on the tiny GPT-2 fixture: the files they leave, stop and resume with dropout on, and
data parallelism under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from conftest import REPO, Collector, make_job, make_plan
from workbench_torch.distributed import World
from workbench_torch.methods import create_method
from workbench_torch.models import load_model
from workbench_torch.protocol import Emitter, EngineError, NeverStop
from workbench_torch.train import Trainer
from workbench_torch.verify import verify_with_peft


class StopBeforeStep:
    """Asks to stop when the loop is about to take step `step` (the loop asks once per step)."""

    def __init__(self, step: int, first: int = 1) -> None:
        self.calls = 0
        self.step = step
        self.first = first

    def requested(self) -> bool:
        self.calls += 1
        return self.first + self.calls - 1 >= self.step


def run(job: dict, plan: dict, collector: Collector, stop: object = None) -> None:
    Trainer(job, plan, Emitter(collector.buffer), stop or NeverStop(), World(0, 1, 0)).run()  # type: ignore[arg-type]


def test_a_run_writes_the_workbench_layout(tmp_path: Path, collector: Collector) -> None:
    job = make_job(tmp_path / "run", "gpt2-tiny")
    run(job, make_plan(), collector)
    types = [m["type"] for m in collector.messages()]
    assert types.index("started") < types.index("checkpoint") < types.index("trained")
    adapter = tmp_path / "run" / "adapter"
    assert {p.name for p in adapter.iterdir()} == {"adapter_model.safetensors", "adapter_config.json", "workbench_adapter.json", "probe.safetensors"}
    sidecar = json.loads((adapter / "workbench_adapter.json").read_text())
    assert sidecar["method"] == "lora" and sidecar["backend"]["name"] == "pytorch" and sidecar["step"] == 6
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        assert f.metadata() == {"format": "pt"}
        assert sorted(f.keys())[0] == "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"
    checkpoint = tmp_path / "run" / "checkpoints" / "step-000006"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["step"] == 6 and state["optimizerStep"] == 6 and state["batcher"] == make_plan()["steps"][5]["batcher"]
    with safe_open(str(checkpoint / "optimizer.safetensors"), "pt") as f:
        assert f.metadata() == {"step": "6"}
        assert "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight.exp_avg_sq" in f.keys()
    assert (checkpoint / "engine_rng_state.safetensors").exists()
    names = {p["name"] for m in collector.messages() if m["type"] == "metrics" for p in m["points"]}
    assert {"train/loss", "val/loss", "lr/lora_A", "lr/lora_B", "grad_norm", "tokens_per_s", "memory_mb"} <= names
    # PEFT itself loads the folder and reproduces the trainer's probe logits.
    report = verify_with_peft(str(adapter), job["modelDir"])
    assert report["passed"] and report["maxAbsDiffToTrained"] <= 1e-5, report


def test_stop_then_resume_gives_the_uninterrupted_losses_with_dropout_on(tmp_path: Path) -> None:
    plan = make_plan(steps=8)
    whole = Collector()
    run(make_job(tmp_path / "whole", "gpt2-tiny", steps=8, dropout=0.3, checkpoint_every=100), plan, whole)
    first = Collector()
    run(make_job(tmp_path / "parts", "gpt2-tiny", steps=8, dropout=0.3, checkpoint_every=100), make_plan(steps=8), first, StopBeforeStep(4))
    assert first.messages()[-1] == {"type": "stopped", "step": 3}
    second = Collector()
    resume = str(tmp_path / "parts" / "checkpoints" / "step-000003")
    run(make_job(tmp_path / "parts", "gpt2-tiny", steps=8, dropout=0.3, checkpoint_every=100, resume_from=resume), make_plan(steps=8), second)
    expected = whole.losses()
    assert sorted(first.losses()) == [1, 2, 3] and sorted(second.losses()) == [4, 5, 6, 7, 8]
    for step, loss in {**first.losses(), **second.losses()}.items():
        assert loss == pytest.approx(expected[step], abs=1e-6), step


def test_a_method_this_engine_lacks_is_refused_by_name() -> None:
    loaded = load_model(str(REPO / "test" / "fixtures" / "gpt2-tiny"), torch.device("cpu"))
    with pytest.raises(EngineError, match="does not train dora yet"):
        create_method(loaded, {"method": "dora", "training": {"seed": 1}})


@pytest.mark.parametrize("method", ["lora", "full"])
def test_two_processes_with_half_the_batch_each_equal_one_process(tmp_path: Path, method: str) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(make_plan(steps=5)))
    losses = {}
    for processes in (1, 2):
        job = make_job(tmp_path / f"run{processes}", "gpt2-tiny", method=method, steps=5, checkpoint_every=5)
        job_file = tmp_path / f"job{processes}.json"
        job_file.write_text(json.dumps(job))
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"] if processes > 1 else [sys.executable]
        env = {**os.environ, "PYTHONPATH": str(REPO / "engine-torch"), "OMP_NUM_THREADS": "1"}
        done = subprocess.run([*launcher, "-m", "workbench_torch", "train", "--job", str(job_file), "--plan", str(plan_file), "--no-stdin"], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        messages = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        assert sum(1 for m in messages if m["type"] == "started") == 1, "rank 0 alone reports"
        losses[processes] = {p["step"]: p["value"] for m in messages if m["type"] == "metrics" for p in m["points"] if p["name"] == "train/loss"}
    assert sorted(losses[2]) == [1, 2, 3, 4, 5]
    for step, loss in losses[1].items():
        assert abs(loss - losses[2][step]) <= 1e-5, (step, loss, losses[2][step])
    assert not (tmp_path / "run2" / "adapter.tmp").exists() and (tmp_path / "run2" / "adapter" / "adapter_model.safetensors").exists()
