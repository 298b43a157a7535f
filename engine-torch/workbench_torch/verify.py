"""Verification of an adapter folder by PEFT itself, for model families the tfjs export cannot load (T5):
the base model from its folder, the adapter through PeftModel.from_pretrained, and the probe inputs the
trainer saved (probe.safetensors) must give the trainer's logits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import peft
import torch

from .checkpoint import PROBE_FILE, read_tensors
from .models import load_model

#: As the tfjs export's MAX_DIFF_TO_TRAINED: the round trip must be exact up to float noise.
MAX_DIFF_TO_TRAINED = 1e-5


def verify_with_peft(adapter_dir: str, model_dir: str) -> dict[str, Any]:
    loaded = load_model(model_dir, torch.device("cpu"))
    probe = read_tensors(Path(adapter_dir) / PROBE_FILE)
    ids = probe["input_ids"].round().to(torch.long)
    reference = probe["logits"]
    k = reference.shape[1]
    extra = {"decoder_input_ids": ids} if loaded.kind == "seq2seq" else {}
    with torch.no_grad():
        base = loaded.model(input_ids=ids, **extra).logits[:, -k:, :]
        config = peft.PeftConfig.from_pretrained(adapter_dir)
        if loaded.kind == "seq2seq":
            # PeftModelForSeq2SeqLM (chosen by task_type SEQ_2_SEQ_LM) calls a generation helper that
            # transformers 5 removed; the plain PeftModel loads the same LoRA layers and weights.
            config.task_type = None
        adapted = peft.PeftModel.from_pretrained(loaded.model, adapter_dir, config=config).eval()
        logits = adapted(input_ids=ids, **extra).logits[:, -k:, :]
    to_trained = float((logits - reference).abs().max())
    to_base = float((logits - base).abs().max())
    return {"maxAbsDiffToTrained": to_trained, "maxAbsDiffToBase": to_base, "passed": to_trained <= MAX_DIFF_TO_TRAINED and to_base > 1e-4, "verifiedBy": f"PEFT {peft.__version__}"}
