"""Checkpoints and the final adapter in the tfjs engine's layout (src-worker/train/checkpoint.ts,
src-worker/export/peft.ts, src-worker/export/probe.ts), so export, verification, the Playground and
evaluations read them unchanged:
  checkpoints/step-000040/ adapter_model.safetensors, adapter_config.json (PEFT-loadable methods),
                           workbench_adapter.json, optimizer.safetensors, engine_rng_state.safetensors,
                           trainer_state.json (last: a folder without it is incomplete)
  adapter/                 adapter_model.safetensors, adapter_config.json, workbench_adapter.json, probe.safetensors
Every folder is written under a temporary name and renamed into place."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file

CHECKPOINTS_DIR = "checkpoints"
FINAL_ADAPTER_DIR = "adapter"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG_FILE = "adapter_config.json"
SIDECAR_FILE = "workbench_adapter.json"
OPTIMIZER_FILE = "optimizer.safetensors"
TRAINER_STATE_FILE = "trainer_state.json"
#: Dropout's generator state per rank (the tfjs engine derives its masks from the step and needs none).
RNG_STATE_FILE = "engine_rng_state.safetensors"
PROBE_FILE = "probe.safetensors"
KEEP_CHECKPOINTS = 2
_TEMP_PREFIX = ".tmp-"
_NAME = re.compile(r"^step-(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = _NAME.match(entry.name)
        if match and (entry / TRAINER_STATE_FILE).exists():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def commit_checkpoint(run_dir: str | Path, step: int, write: Callable[[Path], None], keep: int = KEEP_CHECKPOINTS) -> Path:
    root = Path(run_dir) / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    name = checkpoint_name(step)
    temp = root / f"{_TEMP_PREFIX}{name}-{os.getpid()}-{secrets.token_hex(4)}"
    temp.mkdir()
    try:
        write(temp)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    final = root / name
    if final.exists():
        old = root / f"{_TEMP_PREFIX}old-{name}-{secrets.token_hex(4)}"
        final.rename(old)
        temp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        temp.rename(final)
    # One trainer writes a run's folder at a time: every other temporary folder is a dead save.
    for entry in root.iterdir():
        if entry.name.startswith(_TEMP_PREFIX):
            shutil.rmtree(entry, ignore_errors=True)
    for _, old_dir in list_checkpoints(run_dir)[: max(0, len(list_checkpoints(run_dir)) - keep)]:
        shutil.rmtree(old_dir, ignore_errors=True)
    return final


def write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)


def write_adapter_files(folder: Path, tensors: dict[str, torch.Tensor], peft_config: dict[str, Any] | None, sidecar: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / ADAPTER_WEIGHTS_FILE), metadata={"format": "pt"})
    if peft_config is not None:
        write_json(folder / ADAPTER_CONFIG_FILE, peft_config)
    else:
        (folder / ADAPTER_CONFIG_FILE).unlink(missing_ok=True)
    write_json(folder / SIDECAR_FILE, sidecar)


def write_probe(folder: Path, input_ids: list[list[int]], logits: torch.Tensor, backend: str) -> None:
    """input_ids as float32 (exact below 2^24), the logits of the last positions, as writeProbe does."""
    tensors = {"input_ids": torch.tensor(input_ids, dtype=torch.float32), "logits": logits.detach().to("cpu", torch.float32).contiguous()}
    save_file(tensors, str(folder / PROBE_FILE), metadata={"format": "pt", "backend": backend, "positions": f"last {logits.shape[1]}"})


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def read_metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), "pt") as f:
        return dict(f.metadata() or {})


def swap_in_folder(final: Path, write: Callable[[Path], None]) -> None:
    """Writes into a temporary sibling and swaps it in, replacing an older folder (writeFinalAdapter)."""
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        old = final.with_name(f"{final.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
