#!/usr/bin/env python3
"""PyTorch side of the PEFT parity fixture (issue 5): the logits of the tiny GPT-2 and Llama fixtures
with each adapter in test/fixtures/peft-parity/<family>-<method>/ applied by PEFT itself
(PeftModel.from_pretrained over transformers' own model class, in float64 on the float32 weights),
written to reference.safetensors beside it (input_ids [P, T], logits of the last POSITIONS positions).

The adapters are the app's own exports (scripts/make-fixtures-peft.ts trains and exports them).
Needs torch, transformers and peft: the repo's .venv.

Run (from anywhere): node --import tsx scripts/make-fixtures-peft.ts && .venv/bin/python scripts/make-fixtures-peft.py
"""
import importlib.util
import json
import os

import torch

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
PARITY_DIR = os.path.join(ROOT, 'test', 'fixtures', 'peft-parity')
POSITIONS = 4  # logits kept for the last few positions: enough to see every adapted layer act


def load_script(name):
    spec = importlib.util.spec_from_file_location(name.replace('-', '_'), os.path.join(ROOT, 'scripts', name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    gpt2 = load_script('make-fixtures-gpt2')
    for name in sorted(os.listdir(PARITY_DIR)):
        folder = os.path.join(PARITY_DIR, name)
        if not os.path.isfile(os.path.join(folder, 'adapter_config.json')):
            continue
        family = 'gpt2-tiny' if name.startswith('gpt2-tiny') else 'llama-tiny'
        model_dir = os.path.join(ROOT, 'test', 'fixtures', family)
        with open(os.path.join(model_dir, 'config.json')) as f:
            vocab = json.load(f)['vocab_size']
        input_ids = torch.tensor([[(i * 37 + 11 * row + 3) % vocab for i in range(8)] for row in range(2)])
        adapted = gpt2.transformers_logits(model_dir, input_ids, folder)
        base = gpt2.transformers_logits(model_dir, input_ids)
        logits = adapted[:, -POSITIONS:, :]
        gpt2.write_safetensors(os.path.join(folder, 'reference.safetensors'),
                               {'input_ids': input_ids.float(), 'logits': logits.float()},
                               {'format': 'pt', 'positions': f'last {POSITIONS}'})
        print(f'{name}: max |adapted - base| {(adapted - base).abs().max().item():.4f}')


if __name__ == '__main__':
    main()
