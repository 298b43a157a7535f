"""The methods this engine trains, by the ids of src-shared/config.ts methodIds."""

from __future__ import annotations

from typing import Any

from ..models import LoadedModel
from ..protocol import EngineError
from .base import AdapterMethod
from .base_parameters import create_bitfit, create_full
from .bias_aware import BiasAwareMethod
from .houlsby import HoulsbyMethod
from .lora import LoraMethod, LoraPlusMethod
from .prompt_tuning import PromptTuningMethod
from .qlora import QloraMethod
from .selora import SeloraMethod

#: The methods this engine offers today, in src-shared/methods.ts methodDefinitions' order (engineMethods.pytorch);
#: the New run form and `engine status` list them.
SUPPORTED_METHODS = ("lora", "lora-plus", "selora", "bias-aware", "full", "bitfit", "prompt-tuning", "houlsby", "qlora")


def create_method(loaded: LoadedModel, config: dict[str, Any]) -> AdapterMethod:
    method = config["method"]
    seed = int(config["training"]["seed"])
    task_type = "SEQ_2_SEQ_LM" if loaded.kind == "seq2seq" else "CAUSAL_LM"
    if method == "lora":
        return LoraMethod(loaded.model, config["lora"], seed, task_type)
    if method == "lora-plus":
        return LoraPlusMethod(loaded.model, config["lora"], config["loraPlus"], seed, task_type)
    if method == "selora":
        return SeloraMethod(loaded.model, config["lora"], config["selora"], seed, task_type)
    if method == "bias-aware":
        return BiasAwareMethod(loaded.model, config["lora"], config["biasAware"], seed, task_type)
    if method == "full":
        return create_full(loaded.model, config["full"])
    if method == "bitfit":
        return create_bitfit(loaded.model, config["bitfit"], loaded.model_type)
    if method == "prompt-tuning":
        return PromptTuningMethod(loaded.model, config["promptTuning"], seed, loaded.kind)
    if method == "houlsby":
        return HoulsbyMethod(loaded.model, config["houlsby"], seed)
    if method == "qlora":
        # The model was loaded quantized (qlora.load_quantized_model), which refuses machines without CUDA.
        return QloraMethod(loaded.model, config["lora"], config["qlora"], seed)
    raise EngineError(
        "invalid_input",
        f"The pytorch engine does not train {method} yet; it offers {', '.join(SUPPORTED_METHODS)}. Choose the tfjs engine for {method}.",
        {"field": "method", "method": method},
    )
