"""The referee side of `npm run test:interop`: logits computed by the real Hugging Face libraries.

Reads a JSON manifest (argv[1]) of cases and writes their logits as JSON (argv[2]):
  {"cases": [{"id": ..., "kind": "peft" | "merged" | "base", "base": MODEL_DIR, "adapter": ADAPTER_DIR | null,
              "input_ids": [[...], ...], "positions": K}]}
  -> {"id": {"shape": [P, K, V], "logits": [flat float list]}}

kind "peft": AutoModelForCausalLM.from_pretrained(base) wrapped by PeftModel.from_pretrained(model, adapter),
which dispatches on adapter_config.json's peft_type (LORA -> LoraModel, PROMPT_TUNING -> the prompt-learning
PeftModelForCausalLM that prepends the virtual tokens); "merged": the adapter's merged model folder loaded by
AutoModelForCausalLM alone; "base": the base model alone. Logits are those of the last K positions: with
prompt tuning PEFT returns the virtual tokens' positions first, so the last K are the real tokens' last K.
Everything runs in float32 on the CPU in eval mode (no dropout), as the app's probe does.
"""
import json
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM


def logits_for(case):
    model = AutoModelForCausalLM.from_pretrained(case['base'], dtype=torch.float32)
    if case['kind'] == 'peft':
        model = PeftModel.from_pretrained(model, case['adapter'])
    model.eval()
    ids = torch.tensor(case['input_ids'], dtype=torch.long)
    with torch.no_grad():
        out = model(input_ids=ids).logits
    k = case['positions']
    return out[:, -k:, :].contiguous()


def main():
    with open(sys.argv[1]) as f:
        manifest = json.load(f)
    results = {}
    for case in manifest['cases']:
        logits = logits_for(case)
        results[case['id']] = {'shape': list(logits.shape), 'logits': logits.flatten().tolist()}
    with open(sys.argv[2], 'w') as f:
        json.dump(results, f)


if __name__ == '__main__':
    main()
