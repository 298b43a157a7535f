#!/usr/bin/python3
"""Writes the reference fixtures the engine's unit tests compare against.

  test/fixtures/tokenizer/   a GPT-2 style byte-level BPE tokenizer (256 byte symbols, 7 merges,
                             <|endoftext|>), small enough that the expected ids can be derived by hand.
  test/fixtures/gpt2-tiny/   a complete Hugging Face GPT-2 folder (config.json, model.safetensors,
                             tokenizer files) with random weights, logits.json holding input ids with
                             the logits of the base model and of the model with a LoRA adapter on c_attn,
                             and lora-c_attn/ holding that adapter in PEFT's layout.

The reference forward is GPT2LMHeadModel (transformers/models/gpt2/modeling_gpt2.py) written out in
plain torch with Hugging Face's key names and evaluated in float64 on the float32 weights, so the
TypeScript float32 forward can be checked against an answer with no rounding of its own.
Only torch is needed (Debian's python3-torch); safetensors is written by hand to the format spec,
which also makes it an independent check of the TypeScript reader.

Run: /usr/bin/python3 scripts/make-fixtures-gpt2.py
"""
import json
import math
import os
import shutil
import struct

import torch
import torch.nn.functional as F

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


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gpt2_forward(cfg, w, input_ids, lora=None):
    """GPT2LMHeadModel.forward; `lora` = (scale, {module path: (A [r, in], B [out, r])})."""
    n_embd, n_head = cfg['n_embd'], cfg['n_head']
    hs = n_embd // n_head
    B, T = input_ids.shape

    def conv1d(x, path):  # Conv1D: weight [in, out], y = x W + b
        y = x @ w[path + '.weight'] + w[path + '.bias']
        if lora is not None and path in lora[1]:
            a, b = lora[1][path]
            y = y + lora[0] * (x @ a.T @ b.T)
        return y

    def layer_norm(x, path):
        return F.layer_norm(x, (n_embd,), w[path + '.weight'], w[path + '.bias'], cfg['layer_norm_epsilon'])

    x = w['transformer.wte.weight'][input_ids] + w['transformer.wpe.weight'][:T]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(cfg['n_layer']):
        p = f'transformer.h.{i}'
        q, k, v = conv1d(layer_norm(x, p + '.ln_1'), p + '.attn.c_attn').split(n_embd, dim=2)
        q, k, v = (t.view(B, T, n_head, hs).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(~causal, float('-inf')).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, n_embd)
        x = x + conv1d(y, p + '.attn.c_proj')
        x = x + conv1d(gelu_new(conv1d(layer_norm(x, p + '.ln_2'), p + '.mlp.c_fc')), p + '.mlp.c_proj')
    x = layer_norm(x, 'transformer.ln_f')
    return x @ w['transformer.wte.weight'].T  # tied lm_head


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
    w64 = {k: v.double() for k, v in w.items()}
    lora64 = (alpha / r, {k: (a.double(), b.double()) for k, (a, b) in adapter.items()})
    with torch.no_grad():
        logits = gpt2_forward(cfg, w64, input_ids)
        adapted = gpt2_forward(cfg, w64, input_ids, lora64)
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
