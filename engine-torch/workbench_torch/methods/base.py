"""What the training loop needs from a method (the Python side of src-worker/methods/types.ts)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

from ..plan import Batch


@dataclass(frozen=True)
class Trainable:
    #: The tensor's key in the saved adapter (PEFT's key for LoRA tensors), also its optimizer-state name.
    name: str
    #: Optimizer parameter group ("lora_A", "lora_B", "weights", "bias"...): metrics report lr/<group>.
    group: str
    parameter: torch.nn.Parameter


@dataclass(frozen=True)
class FlatLora:
    """The plain PEFT LoRA an adapter PEFT cannot hold as it is exports as (flattened/): src-worker/export/flatten.ts."""

    #: lora_A / lora_B tensors under PEFT's keys.
    tensors: dict[str, torch.Tensor]
    #: Its own LoRA settings (a multi-task merge has rank T r).
    settings: dict[str, Any]
    #: adapter_config.json for it.
    peft_config: dict[str, Any]


@dataclass(frozen=True)
class Regularizer:
    name: str
    weight: float
    value: torch.Tensor


class AdapterMethod:
    method: str = ""
    #: Full fine-tuning and BitFit train base parameters: they add nothing to the model's size.
    trains_base_parameters: bool = False
    #: False where PEFT has no adapter type (Houlsby, BitFit, full): no adapter_config.json is written.
    peft_loadable: bool = True

    def trainable(self) -> list[Trainable]:
        raise NotImplementedError

    def forward(self, input_ids: torch.Tensor, training: bool, **extra: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, V] of the adapted model; `training` turns the adapter's dropout on; `extra`: an
        encoder-decoder's attention_mask and labels (or decoder_input_ids)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The saved tensors, float32 on the CPU, keyed and laid out as the tfjs engine saves them."""
        return {t.name: t.parameter.detach().to("cpu", torch.float32).contiguous() for t in self.trainable()}

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        own = {t.name: t.parameter for t in self.trainable()}
        missing = sorted(set(own) - set(tensors))
        unexpected = sorted(set(tensors) - set(own))
        if missing or unexpected:
            from ..protocol import EngineError

            raise EngineError(
                "format_invalid",
                f"The saved tensors do not match this {self.method} configuration: missing {missing[:4]}, unexpected {unexpected[:4]}.",
                {"missing": missing, "unexpected": unexpected},
            )
        with torch.no_grad():
            for name, parameter in own.items():
                value = tensors[name]
                if tuple(value.shape) != tuple(parameter.shape):
                    from ..protocol import EngineError

                    raise EngineError("format_invalid", f"Tensor {name} has shape {list(value.shape)}, expected {list(parameter.shape)}.", {"tensor": name})
                parameter.copy_(value.to(parameter.device, parameter.dtype))

    def peft_config(self, base_model_name_or_path: str) -> dict[str, Any] | None:
        return None

    def learning_rate_scale(self, group: str, learning_rate: float) -> float:
        return 1.0

    def fit(self, plan: dict[str, Any]) -> None:
        """Called once after creation, before a resume loads saved tensors: methods initialised from the data (prompt tuning's init text)."""

    def prepare(self, batch: Batch, training: bool) -> None:
        """Called before every forward with the batch (methods conditioned on the prompt)."""

    def regularizers(self, batch: Batch, input_ids: torch.Tensor, loss_mask: torch.Tensor, logits: torch.Tensor) -> list[Regularizer]:
        return []

    def startup_notes(self) -> list[str]:
        return []

    def fit(self, plan: dict[str, Any]) -> None:
        """Called once before training with the data plan (SeLoRA's mean semantic vector, the task mixture)."""

    def select_task(self, task: int | None) -> None:
        """Multi-task methods: the task the next training step's batch was drawn for; None: the mixture."""

    def flat_forward(self, flat: FlatLora) -> AbstractContextManager[None]:
        """Forwards inside use `flat` in place of the adapter (for its probe logits); methods with a flattened form only."""
        raise NotImplementedError

    def flattened(self, base_model_name_or_path: str) -> FlatLora | None:
        """The plain LoRA this adapter exports as when PEFT cannot hold it as it is; None when it can."""
        return None
