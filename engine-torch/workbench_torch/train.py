"""One training run, step for step as the tfjs engine's loop (src-worker/train/loop.ts): the plan's
batches, token-averaged cross-entropy on the completion tokens, AdamW over the method's parameter
groups (torch.optim.AdamW is the update adamw.ts reproduces), global-norm clipping, linear warmup then
cosine to 10% of the peak, validation loss, checkpoints, stop and resume, the final adapter and probe."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import transformers

from . import checkpoint as ckpt
from .distributed import World, all_sum, any_rank, gather_objects, sum_gradients
from .methods import create_method
from .methods.base import AdapterMethod, FlatLora
from .methods.qlora import load_quantized_model
from .models import LoadedModel, load_model, parameter_count, pick_device, training_dtype
from .plan import Batch, collate, shard
from .protocol import EngineError, Emitter

METRICS_INTERVAL_S = 0.5
MIN_LR_RATIO = 0.1
PROBE_POSITIONS = 4

#: The RunConfig sections each method reads (src-shared/methods.ts settingsSectionsOf): a resume with other settings is refused.
_SETTINGS_SECTIONS = {
    "lora": ["lora"],
    "lora-plus": ["lora", "loraPlus"],
    "selora": ["lora", "selora"],
    "bias-aware": ["lora", "biasAware"],
    "full": ["full"],
    "bitfit": ["bitfit"],
    "prompt-tuning": ["promptTuning"],
    "houlsby": ["houlsby"],
    "qlora": ["lora", "qlora"],
}
#: The RunConfig keys of method settings (src-shared/config.ts methodSettingsKeys): a flattened adapter's config drops them.
_METHOD_SETTINGS_KEYS = ("lora", "loraPlus", "selora", "biasAware", "full", "bitfit", "promptTuning", "houlsby", "qlora")
FLATTENED_ADAPTER_DIR = "flattened"


class StopSignal:
    def requested(self) -> bool:  # pragma: no cover - a protocol
        raise NotImplementedError


def learning_rate_at(step: int, peak: float, warmup_steps: int, max_steps: int, min_ratio: float = MIN_LR_RATIO) -> float:
    """schedule.ts learningRateAt."""
    if warmup_steps > 0 and step <= warmup_steps:
        return peak * max(0, step) / warmup_steps
    if max_steps <= warmup_steps:
        return peak
    progress = min(1.0, (step - warmup_steps) / (max_steps - warmup_steps))
    return peak * (min_ratio + (1 - min_ratio) * (1 + math.cos(math.pi * progress)) / 2)


def masked_loss_sum(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over target tokens of -log p(token_{t+1} | tokens_{<=t}), and the number of targets (loss.ts)."""
    # The targets and weights move left, not the logits (as loss.ts and transformers do): slicing [B, T, V]
    # would copy the largest tensor of the step. The last position predicts nothing (weight 0).
    vocab = logits.shape[-1]
    targets = F.pad(input_ids[:, 1:], (0, 1), value=0)
    weights = F.pad(loss_mask[:, 1:].to(torch.float32), (0, 1), value=0.0)
    nll = F.cross_entropy(logits.reshape(-1, vocab).float(), targets.reshape(-1), reduction="none").view_as(weights)
    return (nll * weights).sum(), weights.sum()


def seq2seq_tensors(batch: Batch, pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An encoder-decoder reads the example as prompt -> completion: the encoder gets the prompt tokens
    (a lone pad for rows without a prompt), the decoder learns the target tokens (mask 1: completion and
    EOS). Returns encoder ids, their attention mask, and labels with -100 on padding."""
    prompts = [p if p else [pad_token_id] for p in batch.prompts]
    targets = [row[mask == 1].tolist() for row, mask in zip(batch.input_ids, batch.loss_mask)]
    enc = torch.full((len(prompts), max(len(p) for p in prompts)), pad_token_id, dtype=torch.long)
    enc_mask = torch.zeros(enc.shape, dtype=torch.long)
    labels = torch.full((len(targets), max(1, *(len(t) for t in targets))), -100, dtype=torch.long)
    for b, (p, t) in enumerate(zip(prompts, targets)):
        enc[b, : len(p)] = torch.tensor(p)
        enc_mask[b, : len(p)] = 1
        labels[b, : len(t)] = torch.tensor(t, dtype=torch.long)
    return enc, enc_mask, labels


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"PyTorch {torch.__version__} on cuda: {torch.cuda.get_device_name(device)}"
    return f"PyTorch {torch.__version__} on {device.type}"


class Trainer:
    def __init__(self, job: dict[str, Any], plan: dict[str, Any], emitter: Emitter, stop: StopSignal, world: World, device: torch.device | None = None) -> None:
        self.job = job
        self.plan = plan
        self.config: dict[str, Any] = job["config"]
        self.t: dict[str, Any] = self.config["training"]
        self.emitter = emitter
        self.stop = stop
        self.world = world
        self.device = device or pick_device()
        self.run_dir = Path(job["runDir"])
        #: 'causal' or 'seq2seq', known once the model is loaded.
        self.kind = "causal"
        self.backend = {"name": "pytorch", "adapter": device_description(self.device)}
        self.points: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()

    # -- messages ---------------------------------------------------------------------------
    def log(self, level: str, message: str) -> None:
        self.emitter.emit({"type": "log", "level": level, "message": message})

    def record(self, step: int, name: str, value: float) -> None:
        self.points.append({"step": step, "name": name, "value": float(value), "time": int(time.time() * 1000)})

    def flush(self) -> None:
        if self.points:
            self.emitter.emit({"type": "metrics", "points": self.points})
        self.points = []
        self.last_flush = time.monotonic()

    # -- pieces -----------------------------------------------------------------------------
    def sidecar(self, step: int) -> dict[str, Any]:
        return {
            "format": "lora-workbench-adapter",
            "version": 1,
            "method": self.config["method"],
            "runId": self.job["runId"],
            "step": step,
            "trainableParams": self.trainable_params,
            "config": self.config,
            "backend": self.backend,
            "baseModel": {"path": self.job["modelDir"], "fingerprint": self.plan["baseModelFingerprint"]},
            "createdAt": _now_iso(),
        }

    def batch_for(self, rows: list[int]) -> Batch:
        whole = collate(self.plan, rows)
        return shard(whole, self.world.rank, self.world.size) if self.world.active else whole

    def batch_loss(self, method: AdapterMethod, batch: Batch, training: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sum of the target tokens' losses, their count, the logits, and the ids and mask regularizers read."""
        ids = batch.input_ids.to(self.device)
        mask = batch.loss_mask.to(self.device)
        method.prepare(batch, training)
        if self.kind == "causal":
            logits = method.forward(ids, training)
            total, count = masked_loss_sum(logits, ids, mask)
            return total, count, logits, ids, mask
        enc, enc_mask, labels = (t.to(self.device) for t in seq2seq_tensors(batch, int(self.plan["padTokenId"])))
        logits = method.forward(enc, training, attention_mask=enc_mask, labels=labels)
        total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100, reduction="sum")
        return total, (labels != -100).sum().to(torch.float32), logits, ids, mask

    def validation_loss(self, method: AdapterMethod) -> float:
        """Token-weighted mean over the first evalBatches validation batches, without dropout (validationLoss in loop.ts)."""
        indices: list[int] = self.plan["validation"]
        size = int(self.t["batchSize"])
        total = torch.zeros((), dtype=torch.float64)
        count = torch.zeros((), dtype=torch.float64)
        with torch.no_grad():
            for b in range(int(self.t["evalBatches"])):
                rows = indices[b * size : (b + 1) * size]
                if not rows:
                    break
                s, c, _, _, _ = self.batch_loss(method, collate(self.plan, rows), False)
                total += s.double().cpu()
                count += c.double().cpu()
        return float(total / count) if count > 0 else math.nan

    def probe_logits(self, method: AdapterMethod) -> torch.Tensor:
        ids = torch.tensor(self.plan["probeInputIds"], dtype=torch.long, device=self.device)
        k = min(PROBE_POSITIONS, ids.shape[1])
        with torch.no_grad():
            probe = Batch(ids.cpu(), torch.zeros(ids.shape), 0, [list(r) for r in self.plan["probeInputIds"]])
            method.prepare(probe, False)
            # An encoder-decoder reads the probe on both sides (teacher-forced), which PEFT's verification repeats.
            extra = {"decoder_input_ids": ids} if self.kind == "seq2seq" else {}
            return method.forward(ids, False, **extra)[:, ids.shape[1] - k :, :].float().cpu()

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> None:
        t = self.t
        torch.manual_seed(int(t["seed"]) + self.world.rank)
        loaded: LoadedModel
        if self.config["method"] == "qlora":
            loaded = load_quantized_model(self.job["modelDir"], self.device, self.config)
        else:
            loaded = load_model(self.job["modelDir"], self.device, training_dtype(self.device))
        self.kind = loaded.kind
        base_params = parameter_count(loaded.model)
        method = create_method(loaded, self.config)
        method.fit(self.plan)
        for note in method.startup_notes():
            self.log("info", note)
        trainable = method.trainable()
        self.trainable_params = sum(p.parameter.numel() for p in trainable)
        groups: list[str] = list(dict.fromkeys(p.group for p in trainable))
        lr_scale = {g: method.learning_rate_scale(g, float(t["learningRate"])) for g in groups}
        optimizer = torch.optim.AdamW(
            [{"params": [p.parameter for p in trainable if p.group == g], "lr": float(t["learningRate"]) * lr_scale[g], "weight_decay": float(t["weightDecay"]), "name": g} for g in groups],
            betas=(0.9, 0.999),
            eps=1e-8,
        )
        parameters = [p.parameter for p in trainable]
        if self.world.active and int(t["batchSize"]) % self.world.size != 0:
            raise EngineError("invalid_input", f"training.batchSize {t['batchSize']} does not split evenly over {self.world.size} processes; make it a multiple of distributed.processes.", {"field": "training.batchSize"})
        self.log("info", f"Dataset: {self.plan['dataset']['rows']} rows, {len(self.plan['train'])} for training, {len(self.plan['validation'])} for validation.")

        start_step = 1
        last_checkpoint = -1
        self.optimizer_steps = 0
        if self.job.get("resumeFrom"):
            start_step = self.resume(Path(self.job["resumeFrom"]), method, optimizer, trainable)
            last_checkpoint = start_step - 1
        total_params = base_params if method.trains_base_parameters else base_params + self.trainable_params
        self.log("info", f"Trainable parameters: {self.trainable_params:,}, {100 * self.trainable_params / base_params:.3g}% of the base model's {base_params:,}.")
        if self.world.active:
            self.log("info", f"{self.world.size} processes, {int(t['batchSize']) // self.world.size} rows of each batch per process.")
        self.emitter.emit({"type": "started", "backend": self.backend, "trainableParams": self.trainable_params, "totalParams": total_params})

        def save(step: int) -> None:
            nonlocal last_checkpoint
            rng = gather_objects(self.world, self.rng_state())
            if self.world.is_main:
                folder = ckpt.commit_checkpoint(self.run_dir, step, lambda d: self.write_checkpoint(d, step, method, optimizer, trainable, rng))
                self.flush()
                self.emitter.emit({"type": "checkpoint", "step": step, "dir": str(folder)})
            last_checkpoint = step

        step_time_ema: float | None = None
        max_steps = int(t["maxSteps"])
        for step in range(start_step, max_steps + 1):
            if any_rank(self.world, self.stop.requested()):
                done = step - 1
                if last_checkpoint != done:
                    save(done)
                self.flush()
                self.emitter.emit({"type": "stopped", "step": done})
                return
            began = time.perf_counter()
            lr = learning_rate_at(step, float(t["learningRate"]), int(t["warmupSteps"]), max_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_scale[group["name"]]
            entry = self.plan["steps"][step - 1]
            batch = self.batch_for(entry["rows"])
            # A multi-task method trains the adapter of the task this batch was drawn for.
            method.select_task(entry["task"])
            try:
                loss, grad_norm, regularizers = self.train_step(method, optimizer, parameters, batch, step)
            finally:
                method.select_task(None)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            step_time = time.perf_counter() - began
            step_time_ema = step_time if step_time_ema is None else 0.9 * step_time_ema + 0.1 * step_time
            tokens_per_second = batch.token_count / step_time
            self.record(step, "train/loss", loss)
            for name, value in regularizers.items():
                self.record(step, f"loss/{name}", value)
            for group in optimizer.param_groups:
                self.record(step, f"lr/{group['name']}", group["lr"])
            self.record(step, "grad_norm", grad_norm)
            self.record(step, "tokens_per_s", tokens_per_second)
            self.record(step, "step_time_ms", step_time * 1000)
            self.record(step, "memory_mb", _memory_mb(self.device))
            self.emitter.emit({"type": "progress", "progress": {"step": step, "maxSteps": max_steps, "tokensPerSecond": tokens_per_second, "stepTimeMs": step_time * 1000, "etaSeconds": (max_steps - step) * step_time_ema}})
            if (step % int(t["evalEvery"]) == 0 or step == max_steps) and self.plan["validation"] and self.world.is_main:
                value = self.validation_loss(method)
                if math.isfinite(value):
                    self.record(step, "val/loss", value)
            if step % int(t["checkpointEvery"]) == 0:
                save(step)
            if time.monotonic() - self.last_flush >= METRICS_INTERVAL_S:
                self.flush()
        if start_step > max_steps:
            self.log("info", f"The checkpoint is already at step {max_steps}; writing the final adapter.")
        self.flush()
        if self.world.is_main:
            adapter_dir = self.run_dir / ckpt.FINAL_ADAPTER_DIR

            def write_final(folder: Path) -> None:
                ckpt.write_adapter_files(folder, method.state_dict(), method.peft_config(self.job["modelDir"]), self.sidecar(max_steps))
                native_logits = self.probe_logits(method)
                ckpt.write_probe(folder, self.plan["probeInputIds"], native_logits, "pytorch")
                flat = method.flattened(self.job["modelDir"])
                if flat is not None:
                    self.write_flattened(folder / FLATTENED_ADAPTER_DIR, method, flat, native_logits, max_steps)

            ckpt.swap_in_folder(adapter_dir, write_final)
            self.emitter.emit({"type": "trained", "adapterDir": str(adapter_dir), "step": max_steps, "trainableParams": self.trainable_params})

    def train_step(self, method: AdapterMethod, optimizer: torch.optim.Optimizer, parameters: list[torch.nn.Parameter], batch: Batch, step: int) -> tuple[float, float, dict[str, float]]:
        local_sum, local_count, logits, ids, mask = self.batch_loss(method, batch, True)
        # Every rank divides by the whole batch's target count, so summed gradients are the whole batch's.
        count = all_sum(self.world, local_count).clamp(min=1)
        objective = local_sum / count
        values: dict[str, float] = {}
        for term in method.regularizers(batch, ids, mask, logits):
            values[term.name] = float(term.value.detach())
            if term.weight != 0:
                objective = objective + term.weight * term.value / self.world.size
        objective.backward()
        sum_gradients(self.world, parameters)
        loss = float(all_sum(self.world, local_sum.detach()) / count)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(parameters, float(self.t["gradClip"])))
        if not math.isfinite(loss) or not math.isfinite(grad_norm):
            raise EngineError(
                "internal",
                f"Training diverged at step {step}: the loss is {loss} and the gradient norm {grad_norm}. Lower the learning rate or the gradient clip and start again (or resume from the last checkpoint with a lower rate).",
                {"step": step, "loss": loss, "gradNorm": grad_norm},
            )
        self.age_optimizer_state(optimizer)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss, grad_norm, values

    def age_optimizer_state(self, optimizer: torch.optim.Optimizer) -> None:
        """Bias correction by the optimizer's step count, as adamw.ts: torch counts steps per parameter, and a
        parameter without a gradient in some steps (another task's adapter) would lag behind the run's count."""
        self.optimizer_steps += 1
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = optimizer.state[p]
                if not state:
                    state.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format), exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format))
                state["step"].fill_(self.optimizer_steps - 1)

    def write_flattened(self, folder: Path, method: AdapterMethod, flat: FlatLora, native_logits: torch.Tensor, step: int) -> None:
        """The plain LoRA an adapter PEFT cannot hold exports as, with its own probe and what flattening costs on it (flatten.ts)."""
        with method.flat_forward(flat):
            logits = self.probe_logits(method)
        difference = float((logits - native_logits).abs().max())
        cost = difference if math.isfinite(difference) else 1e308
        config = {**{k: v for k, v in self.config.items() if k != "method" and k not in _METHOD_SETTINGS_KEYS}, "method": "lora", "lora": flat.settings}
        sidecar = {**self.sidecar(step), "method": "lora", "config": config, "trainableParams": sum(t.numel() for t in flat.tensors.values()), "flattenedFrom": {"method": self.config["method"], "maxAbsLogitDiff": cost}}
        ckpt.write_adapter_files(folder, flat.tensors, flat.peft_config, sidecar)
        ckpt.write_probe(folder, self.plan["probeInputIds"], logits, "pytorch")
        self.log("info", f"Flattened the {self.config['method']} adapter to a plain PEFT LoRA ({FLATTENED_ADAPTER_DIR}/): its probe logits differ from the native adapter's by up to {cost:.3g}.")
        self.record(step, "flatten/max_logit_diff", cost)
        self.flush()

    # -- checkpoints ------------------------------------------------------------------------
    def rng_state(self) -> dict[str, bytes]:
        state = {"cpu": torch.get_rng_state().numpy().tobytes()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device).numpy().tobytes()
        return state

    def write_checkpoint(self, folder: Path, step: int, method: AdapterMethod, optimizer: torch.optim.Optimizer, trainable: list[Any], rng: list[dict[str, bytes]]) -> None:
        ckpt.write_adapter_files(folder, method.state_dict(), method.peft_config(self.job["modelDir"]), self.sidecar(step))
        moments: dict[str, torch.Tensor] = {}
        optimizer_step = 0
        for p in trainable:
            state = optimizer.state.get(p.parameter, {})
            if "exp_avg" in state:
                moments[f"{p.name}.exp_avg"] = state["exp_avg"].detach().to("cpu", torch.float32).contiguous()
                moments[f"{p.name}.exp_avg_sq"] = state["exp_avg_sq"].detach().to("cpu", torch.float32).contiguous()
                optimizer_step = max(optimizer_step, int(state["step"]))
            else:
                moments[f"{p.name}.exp_avg"] = torch.zeros(p.parameter.shape, dtype=torch.float32)
                moments[f"{p.name}.exp_avg_sq"] = torch.zeros(p.parameter.shape, dtype=torch.float32)
        from safetensors.torch import save_file

        save_file(moments, str(folder / ckpt.OPTIMIZER_FILE), metadata={"step": str(optimizer_step)})
        rng_tensors = {f"rank{r}.{device}": torch.frombuffer(bytearray(data), dtype=torch.uint8) for r, states in enumerate(rng) for device, data in states.items()}
        save_file(rng_tensors, str(folder / ckpt.RNG_STATE_FILE))
        state = {
            "format": "lora-workbench-trainer-state",
            "version": 1,
            "runId": self.job["runId"],
            "step": step,
            "optimizerStep": optimizer_step,
            "batcher": self.plan["steps"][step - 1]["batcher"] if step > 0 else {"epoch": 0, "position": 0},
            "dataset": self.plan["dataset"],
            "probeInputIds": self.plan["probeInputIds"],
            "config": self.config,
            "savedAt": _now_iso(),
        }
        ckpt.write_json(folder / ckpt.TRAINER_STATE_FILE, state)

    def resume(self, folder: Path, method: AdapterMethod, optimizer: torch.optim.Optimizer, trainable: list[Any]) -> int:
        try:
            state = json.loads((folder / ckpt.TRAINER_STATE_FILE).read_text())
        except FileNotFoundError as error:
            raise EngineError("not_found", f"{folder} is not a complete checkpoint (no {ckpt.TRAINER_STATE_FILE}); resume from an earlier one.", {"checkpoint": str(folder)}) from error
        saved = state["config"]
        sections = _SETTINGS_SECTIONS.get(self.config["method"], [])
        if saved["method"] != self.config["method"] or any(saved.get(s) != self.config.get(s) for s in sections):
            raise EngineError("conflict", f"Checkpoint {folder} was trained with other {self.config['method']} settings; start a new run instead of resuming.", {"checkpoint": str(folder)})
        if state["dataset"]["fingerprint"] != self.plan["dataset"]["fingerprint"]:
            self.log("warn", f"The dataset changed since step {state['step']} was saved; the resumed run will draw different batches.")
        method.load_state_dict(ckpt.read_tensors(folder / ckpt.ADAPTER_WEIGHTS_FILE))
        moments = ckpt.read_tensors(folder / ckpt.OPTIMIZER_FILE)
        optimizer_step = int(state["optimizerStep"])
        self.optimizer_steps = optimizer_step
        for p in trainable:
            optimizer.state[p.parameter] = {
                "step": torch.tensor(float(optimizer_step)),
                "exp_avg": moments[f"{p.name}.exp_avg"].to(p.parameter.device, p.parameter.dtype),
                "exp_avg_sq": moments[f"{p.name}.exp_avg_sq"].to(p.parameter.device, p.parameter.dtype),
            }
        rng_file = folder / ckpt.RNG_STATE_FILE
        if rng_file.exists():
            rng = ckpt.read_tensors(rng_file)
            cpu = rng.get(f"rank{self.world.rank}.cpu")
            if cpu is not None:
                torch.set_rng_state(cpu)
            cuda = rng.get(f"rank{self.world.rank}.cuda")
            if cuda is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(cuda, self.device)
        else:
            self.log("info", f"{folder} has no dropout generator state (a tfjs checkpoint): dropout masks from here on are drawn afresh.")
        self.plan["probeInputIds"] = state["probeInputIds"]
        self.log("info", f"Resuming from {folder} at step {state['step'] + 1}.")
        return int(state["step"]) + 1


def transformers_version() -> str:
    return str(transformers.__version__)
