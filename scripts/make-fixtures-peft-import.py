"""PEFT LoRA adapters made by PEFT itself, for the adapter-import tests (issue 14).

For the tiny GPT-2 and Llama fixtures: get_peft_model with a LoraConfig, lora_B drawn at random (PEFT
initialises it to zero, which would make any comparison vacuous), save_pretrained, and the logits of the
PeftModel on fixed inputs written beside it as reference.safetensors (input_ids [P, T] as float32, logits
[P, K, vocab] of the last K positions). The two adapters cover PEFT's two target_modules forms:
  gpt2-tiny-lora    target_modules ["c_attn", "c_proj"] (a list; GPT-2's Conv1D, fan_in_fan_out), alpha / r
  llama-tiny-rslora target_modules "model\\.layers\\.\\d+\\.self_attn\\.(q|v)_proj|.*down_proj" (a regex,
                    re.fullmatch-ed), use_rslora, alpha / sqrt(r)

Run: .venv/bin/python scripts/make-fixtures-peft-import.py [OUT_DIR]   (default test/fixtures/peft-import;
test/interop/ runs it into a temporary folder to make fresh adapters in the test).
"""
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
POSITIONS = 4
INPUT_IDS = [[5, 17, 40, 99, 3, 150, 7, 61], [200, 12, 9, 33, 250, 1, 88, 14]]

ADAPTERS = {
    'gpt2-tiny-lora': ('gpt2-tiny', dict(r=4, lora_alpha=8, target_modules=['c_attn', 'c_proj'], fan_in_fan_out=True)),
    'llama-tiny-rslora': ('llama-tiny', dict(r=2, lora_alpha=4, use_rslora=True,
                                             target_modules=r'model\.layers\.\d+\.self_attn\.(q|v)_proj|.*down_proj')),
}


def make(out_root, name, family, settings, seed):
    model_dir = os.path.join(ROOT, 'test', 'fixtures', family)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(task_type='CAUSAL_LM', lora_dropout=0.0, **settings))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if 'lora_B' in param_name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    model.eval()
    out = os.path.join(out_root, name)
    # base_model_name_or_path as a repo-relative path, so the committed config names no machine's folder.
    model.peft_config['default'].base_model_name_or_path = os.path.join('test', 'fixtures', family)
    model.save_pretrained(out)
    # save_pretrained adds a model-card template: nothing the tests read.
    os.remove(os.path.join(out, 'README.md'))
    ids = torch.tensor(INPUT_IDS, dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, -POSITIONS:, :].contiguous()
    save_file({'input_ids': ids.to(torch.float32), 'logits': logits}, os.path.join(out, 'reference.safetensors'), metadata={'format': 'pt'})
    print(f'{name}: {sum(1 for k in model.state_dict() if "lora_A" in k)} adapted modules, logits {list(logits.shape)}')


def main():
    out_root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'test', 'fixtures', 'peft-import')
    for seed, (name, (family, settings)) in enumerate(sorted(ADAPTERS.items())):
        make(out_root, name, family, settings, seed + 1)


if __name__ == '__main__':
    main()
