#!/usr/bin/python3
"""PyTorch side of the PEFT parity fixture (issue 5): the logits of the tiny GPT-2 and Llama fixtures
with each adapter in test/fixtures/peft-parity/<family>-<method>/ applied as PEFT's LoRA layer does
(peft/tuners/lora/layer.py), written to reference.safetensors beside it.

The adapters are the app's own exports (scripts/make-fixtures-peft.ts trains and exports them). PEFT is
not installed here, so its LoRA layer is written out by hand:
  - target_modules: a list matches a module whose name equals an entry or ends with "." + entry, a
    string is re.fullmatch-ed (peft/tuners/tuners_utils.py check_target_module_exists);
  - scaling = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora;
  - unmerged forward (inference, no dropout): y = base(x) + lora_B(lora_A(x)) * scaling;
  - merged: W += transpose(B @ A, fan_in_fan_out) * scaling (get_delta_weight; GPT-2's Conv1D stores
    W as [in, out], hence fan_in_fan_out). Both are computed and must agree.
Evaluated in float64 on the float32 weights, with the reference forwards of make-fixtures-gpt2.py and
make-fixtures-llama.py.

Run (from anywhere): node --import tsx scripts/make-fixtures-peft.ts && /usr/bin/python3 scripts/make-fixtures-peft.py
"""
import importlib.util
import json
import math
import os
import re
import struct

import torch

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
PARITY_DIR = os.path.join(ROOT, 'test', 'fixtures', 'peft-parity')
POSITIONS = 4  # logits kept for the last few positions: enough to see every adapted layer act


def load_script(name):
    spec = importlib.util.spec_from_file_location(name.replace('-', '_'), os.path.join(ROOT, 'scripts', name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_safetensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        if e['dtype'] != 'F32':
            raise SystemExit(f'{path}: {name} is {e["dtype"]}; this script reads F32 only')
        begin, end = e['data_offsets']
        data = torch.frombuffer(bytearray(raw[8 + n + begin:8 + n + end]), dtype=torch.float32)
        out[name] = data.reshape(e['shape']).clone()
    return out


def matches(module, target_modules):
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, module) is not None
    return any(module == t or module.endswith('.' + t) for t in target_modules)


def main():
    gpt2 = load_script('make-fixtures-gpt2')
    llama = load_script('make-fixtures-llama')
    for name in sorted(os.listdir(PARITY_DIR)):
        folder = os.path.join(PARITY_DIR, name)
        if not os.path.isfile(os.path.join(folder, 'adapter_config.json')):
            continue
        family = 'gpt2-tiny' if name.startswith('gpt2-tiny') else 'llama-tiny'
        model_dir = os.path.join(ROOT, 'test', 'fixtures', family)
        with open(os.path.join(model_dir, 'config.json')) as f:
            cfg = json.load(f)
        with open(os.path.join(folder, 'adapter_config.json')) as f:
            peft = json.load(f)
        w = {k: v.double() for k, v in read_safetensors(os.path.join(model_dir, 'model.safetensors')).items()}
        tensors = read_safetensors(os.path.join(folder, 'adapter_model.safetensors'))

        # The modules PEFT would wrap: every weight matrix whose module name target_modules matches.
        linear = sorted(k[:-len('.weight')] for k, v in w.items() if k.endswith('.weight') and v.dim() == 2
                        and not k.endswith(('wte.weight', 'wpe.weight', 'embed_tokens.weight', 'lm_head.weight')))
        targeted = [m for m in linear if matches(m, peft['target_modules'])]
        stored = sorted({k[len('base_model.model.'):-len('.lora_A.weight')] for k in tensors if k.endswith('.lora_A.weight')})
        if targeted != stored:
            raise SystemExit(f'{name}: target_modules select {targeted}, the weights hold {stored}')
        r, alpha = peft['r'], peft['lora_alpha']
        scaling = alpha / math.sqrt(r) if peft['use_rslora'] else alpha / r
        adapter = {m: (tensors[f'base_model.model.{m}.lora_A.weight'].double(), tensors[f'base_model.model.{m}.lora_B.weight'].double()) for m in stored}
        for m, (a, b) in adapter.items():
            assert a.shape[0] == r and b.shape[1] == r, f'{name}: {m} is not rank {r}'

        merged = dict(w)
        for m, (a, b) in adapter.items():
            delta = (b @ a) * scaling
            merged[m + '.weight'] = w[m + '.weight'] + (delta.T if peft['fan_in_fan_out'] else delta)

        vocab = cfg['vocab_size']
        input_ids = torch.tensor([[(i * 37 + 11 * row + 3) % vocab for i in range(8)] for row in range(2)])
        forward = gpt2.gpt2_forward if family == 'gpt2-tiny' else llama.hf_llama_forward
        with torch.no_grad():
            unmerged = forward(cfg, w, input_ids, (scaling, adapter))
            folded = forward(cfg, merged, input_ids)
            base = forward(cfg, w, input_ids)
        gap = (unmerged - folded).abs().max().item()
        assert gap < 1e-9, f'{name}: merged and unmerged PEFT forwards differ by {gap}'
        logits = unmerged[:, -POSITIONS:, :]
        gpt2.write_safetensors(os.path.join(folder, 'reference.safetensors'),
                               {'input_ids': input_ids.float(), 'logits': logits.float()},
                               {'format': 'pt', 'positions': f'last {POSITIONS}', 'scaling': repr(scaling)})
        print(f'{name}: scaling {scaling:.4f}, {len(stored)} modules, max |adapted - base| '
              f'{(unmerged - base).abs().max().item():.4f}')


if __name__ == '__main__':
    main()
