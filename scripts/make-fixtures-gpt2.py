#!/usr/bin/env python3
"""Writes the reference fixtures the engine's unit tests compare against.

  test/fixtures/tokenizer/   a GPT-2 style byte-level BPE tokenizer (256 byte symbols, 7 merges,
                             <|endoftext|>), small enough that the expected ids can be derived by hand.
  test/fixtures/gpt2-tiny/   a complete Hugging Face GPT-2 folder (config.json, model.safetensors,
                             tokenizer files) with random weights, logits.json holding input ids with
                             the logits of the base model and of the model with a LoRA adapter on c_attn,
                             and lora-c_attn/ holding that adapter in PEFT's layout.

The reference logits are transformers' own GPT2LMHeadModel loading the folder, evaluated in float64 on
the float32 weights so the TypeScript float32 forward is checked against an answer with no rounding of
its own; the adapted logits are that model with lora-c_attn/ loaded by PEFT. safetensors is written by
hand to the format spec, which also makes it an independent check of the TypeScript reader.
Needs torch, transformers and peft: the repo's .venv.

Run: .venv/bin/python scripts/make-fixtures-gpt2.py
"""
import json
import math
import os
import shutil
import struct

import torch

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
TOKENIZER_DIR = os.path.join(ROOT, 'test', 'fixtures', 'tokenizer')
MODEL_DIR = os.path.join(ROOT, 'test', 'fixtures', 'gpt2-tiny')
ADAPTER_DIR = os.path.join(MODEL_DIR, 'lora-c_attn')

EOS = '<|endoftext|>'
# Applied in this order (the rank of a merge is its index). Chosen so that "hello", " the" and
# " w" become single tokens and the test can derive every id by hand.
MERGES = ['Ġ t', 'h e', 'Ġt he', 'l l', 'll o', 'he llo', 'Ġ w']


def bytes_to_unicode():
    """GPT-2's byte -> printable character table (openai/gpt-2 encoder.py); its order is GPT-2's id order."""
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [(b, chr(c)) for b, c in zip(bs, cs)]


def write_tokenizer(folder):
    vocab = {}
    for i, (_, ch) in enumerate(bytes_to_unicode()):
        vocab[ch] = i
    for merge in MERGES:
        vocab[merge.replace(' ', '')] = len(vocab)
    eos_id = len(vocab)
    byte_level = {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True}
    tokenizer = {
        'version': '1.0',
        'truncation': None,
        'padding': None,
        'added_tokens': [{'id': eos_id, 'content': EOS, 'single_word': False, 'lstrip': False, 'rstrip': False,
                          'normalized': True, 'special': True}],
        'normalizer': None,
        'pre_tokenizer': byte_level,
        'post_processor': {**byte_level, 'trim_offsets': False},
        'decoder': byte_level,
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': '',
                  'end_of_word_suffix': '', 'fuse_unk': False, 'byte_fallback': False,
                  'vocab': vocab, 'merges': MERGES},
    }
    config = {'add_prefix_space': False, 'bos_token': EOS, 'eos_token': EOS, 'unk_token': EOS,
              'model_max_length': 32, 'tokenizer_class': 'GPT2Tokenizer', 'clean_up_tokenization_spaces': False}
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'tokenizer.json'), 'w', encoding='utf-8') as f:
        json.dump(tokenizer, f, ensure_ascii=False, indent=1)
    with open(os.path.join(folder, 'tokenizer_config.json'), 'w', encoding='utf-8') as f:
        json.dump(config, f, indent=1)
    return eos_id + 1


def write_safetensors(path, tensors, metadata):
    """The safetensors layout: u64 LE header length, JSON header padded with spaces to 8 bytes, raw data."""
    header = {'__metadata__': metadata}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        data = tensors[name].detach().to(torch.float32).contiguous().numpy().astype('<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(tensors[name].shape), 'data_offsets': [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def transformers_logits(model_dir, input_ids, adapter_dir=None):
    """Logits of transformers' own class for the folder (config.json's architectures), run in float64 on
    the float32 weights so the reference has no rounding of its own; with adapter_dir, the adapter loaded
    by PEFT's PeftModel.from_pretrained as a user would load it."""
    from transformers import AutoModelForCausalLM
    # Building the modules draws initial weights (PEFT's kaiming-uniform lora_A) from torch's global
    # generator: put it back, so the fixtures drawn after this one stay as they were.
    rng = torch.get_rng_state()
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64)
        if adapter_dir is not None:
            from peft import PeftModel
            model = PeftModel.from_pretrained(model, adapter_dir)
        model.eval()
        with torch.no_grad():
            return model(input_ids=input_ids).logits
    finally:
        torch.set_rng_state(rng)


def rounded(t):
    return [float(f'{v:.9g}') for v in t.reshape(-1).tolist()]


def main():
    torch.manual_seed(1234)
    vocab_size = write_tokenizer(TOKENIZER_DIR)
    cfg = {
        'architectures': ['GPT2LMHeadModel'], 'model_type': 'gpt2', 'activation_function': 'gelu_new',
        'vocab_size': vocab_size, 'n_positions': 32, 'n_ctx': 32, 'n_embd': 32, 'n_layer': 2, 'n_head': 4,
        'layer_norm_epsilon': 1e-5, 'bos_token_id': vocab_size - 1, 'eos_token_id': vocab_size - 1,
        'resid_pdrop': 0.1, 'embd_pdrop': 0.1, 'attn_pdrop': 0.1, 'initializer_range': 0.02,
        'scale_attn_weights': True, 'use_cache': True, 'torch_dtype': 'float32',
    }
    C = cfg['n_embd']
    # Larger than GPT-2's 0.02 init so attention is far from uniform and every term shows in the logits.
    def normal(*shape, std):
        return torch.randn(*shape, dtype=torch.float32) * std
    w = {'transformer.wte.weight': normal(vocab_size, C, std=0.5), 'transformer.wpe.weight': normal(cfg['n_positions'], C, std=0.3)}
    for i in range(cfg['n_layer']):
        p = f'transformer.h.{i}'
        for ln in ('ln_1', 'ln_2'):
            w[f'{p}.{ln}.weight'] = 1 + normal(C, std=0.1)
            w[f'{p}.{ln}.bias'] = normal(C, std=0.1)
        for name, n_in, n_out in (('attn.c_attn', C, 3 * C), ('attn.c_proj', C, C), ('mlp.c_fc', C, 4 * C), ('mlp.c_proj', 4 * C, C)):
            w[f'{p}.{name}.weight'] = normal(n_in, n_out, std=0.2)
            w[f'{p}.{name}.bias'] = normal(n_out, std=0.1)
    w['transformer.ln_f.weight'] = 1 + normal(C, std=0.1)
    w['transformer.ln_f.bias'] = normal(C, std=0.1)

    os.makedirs(MODEL_DIR, exist_ok=True)
    with open(os.path.join(MODEL_DIR, 'config.json'), 'w') as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(MODEL_DIR, 'model.safetensors'), w, {'format': 'pt'})
    for name in ('tokenizer.json', 'tokenizer_config.json'):
        shutil.copyfile(os.path.join(TOKENIZER_DIR, name), os.path.join(MODEL_DIR, name))

    # LoRA on every c_attn: A kaiming-uniform as PEFT, B random (PEFT starts it at zero, which would hide the delta).
    r, alpha = 4, 8
    adapter = {}
    for i in range(cfg['n_layer']):
        bound = 1 / math.sqrt(C)
        a = (torch.rand(r, C, dtype=torch.float32) * 2 - 1) * bound
        b = normal(3 * C, r, std=0.3)
        adapter[f'transformer.h.{i}.attn.c_attn'] = (a, b)
    os.makedirs(ADAPTER_DIR, exist_ok=True)
    write_safetensors(os.path.join(ADAPTER_DIR, 'adapter_model.safetensors'),
                      {f'base_model.model.{path}.lora_{n}.weight': t for path, ab in adapter.items() for n, t in zip('AB', ab)},
                      {'format': 'pt'})
    with open(os.path.join(ADAPTER_DIR, 'adapter_config.json'), 'w') as f:
        json.dump({'peft_type': 'LORA', 'task_type': 'CAUSAL_LM', 'r': r, 'lora_alpha': alpha, 'lora_dropout': 0.0,
                   'target_modules': ['c_attn'], 'fan_in_fan_out': True, 'bias': 'none', 'use_rslora': False,
                   'base_model_name_or_path': 'gpt2-tiny', 'inference_mode': True}, f, indent=2)

    input_ids = torch.randint(0, vocab_size, (2, 8))
    logits = transformers_logits(MODEL_DIR, input_ids)
    adapted = transformers_logits(MODEL_DIR, input_ids, ADAPTER_DIR)
    out = {
        'input_ids': input_ids.tolist(),
        'shape': list(logits.shape),
        'logits': rounded(logits),
        'lora': {'r': r, 'alpha': alpha, 'target_modules': ['c_attn'], 'logits': rounded(adapted)},
    }
    with open(os.path.join(MODEL_DIR, 'logits.json'), 'w') as f:
        json.dump(out, f, separators=(',', ':'))
    print(f'wrote {TOKENIZER_DIR} and {MODEL_DIR}: vocab {vocab_size}, '
          f'max |logit| {logits.abs().max():.3f}, max |lora delta| {(adapted - logits).abs().max():.3f}')


if __name__ == '__main__':
    main()
