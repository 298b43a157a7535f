#!/usr/bin/env python3
"""Writes the Llama-family reference fixtures the engine's unit tests compare against.

  test/fixtures/llama-tiny/         Llama 2 style: grouped-query attention (4 query heads, 2 kv heads),
                                    untied lm_head, linear rope_scaling (factor 2), a SentencePiece-BPE
                                    tokenizer.json as LlamaTokenizerFast writes it; lora-q_proj-v_proj/ holds
                                    a PEFT adapter on q_proj and v_proj whose effect is in logits.json.
  test/fixtures/llama-tiny-qwen2/   Qwen2ForCausalLM: q/k/v biases, tied embeddings, one kv head for four
                                    query heads, rope_theta 1e6, an embedding padded past the tokenizer's
                                    vocabulary (as Qwen2 checkpoints are); GPT-2 style byte-level tokenizer.
  test/fixtures/llama-tiny-llama3/  Llama 3 style rope_scaling (rope_type llama3) with an original context
                                    short enough that all three frequency bands occur, head_dim 16 with
                                    hidden_size 48 (q_proj is 48 -> 64), and attention_bias / mlp_bias on,
                                    so every optional Llama parameter is exercised.
  test/fixtures/llama2c-tiny/       Karpathy's llama2.c legacy checkpoint (version 0) of a random model,
                                    untied (negative vocab_size, model.bin) and tied (model-tied.bin), a
                                    tokenizer.bin, and reference.json: logits of llama2.c's own forward
                                    (interleaved RoPE pairs) and token ids of run.c's encode() for test texts.

The Hugging Face folders' reference logits are transformers' own LlamaForCausalLM / Qwen2ForCausalLM
loading the folder (adapters through PEFT), in float64 on the float32 weights. transformers has no
llama2.c model, so that one reference is written out in plain torch from the source it copies:
  llama2c_forward    karpathy/llama2.c model.py (complex-pair RoPE on adjacent dimensions, Meta's layout),
                     so the test checks that the importer permutes q/k rows as HF's conversion does;
  llama2c_encode     run.c's encode(): dummy-prefix space, codepoint lookup with byte fallback, then
                     repeatedly merge the adjacent pair whose concatenation has the highest score.
The SentencePiece vocabulary is trained here by a few rounds of BPE on a small text, so its pieces and
scores look like a real one (merges scored -0, -1, ..., then single characters).
Needs torch, transformers and peft: the repo's .venv.

Run: .venv/bin/python scripts/make-fixtures-llama.py
"""
import importlib.util
import json
import math
import os
import shutil
import struct
from collections import Counter

import torch
import torch.nn.functional as F

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
FIXTURES = os.path.join(ROOT, 'test', 'fixtures')

_spec = importlib.util.spec_from_file_location('gpt2_fixtures', os.path.join(ROOT, 'scripts', 'make-fixtures-gpt2.py'))
gpt2_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpt2_fixtures)
write_safetensors = gpt2_fixtures.write_safetensors

SPACE = '\u2581'  # SentencePiece's visible space
CORPUS = ('Once upon a time there was a little girl. She liked to play in the park with her dog. '
          'The dog liked to run and play. One day the girl saw a big red ball in the park. '
          'She wanted to play with the ball and the dog wanted to play too.')
TEST_TEXTS = ['Once upon a time', 'the girl and the dog', 'She saw a big ball.', '  two  spaces', 'line\nbreak',
              'caf\u00e9 \u4e2d \U0001F600', 'Zebra!']


# ---------------------------------------------------------------- SentencePiece-BPE vocabulary

def train_sentencepiece_bpe(text, merges):
    """Pieces in id order with scores, as a SentencePiece BPE model lists them (llama2.c tokenizer.py)."""
    words = Counter(SPACE + w for w in text.split(' '))
    seqs = {w: list(w) for w in words}
    learned = []
    for _ in range(merges):
        pairs = Counter()
        for w, n in words.items():
            s = seqs[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += n
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        learned.append(a + b)
        for w in words:
            s, out, i = seqs[w], [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    chars = sorted(set(''.join(words)), key=lambda c: (-sum(n * w.count(c) for w, n in words.items()), c))
    pieces = [('<unk>', 0.0), ('<s>', 0.0), ('</s>', 0.0)] + [(f'<0x{b:02X}>', 0.0) for b in range(256)]
    pieces += [(p, -float(i)) for i, p in enumerate(learned)]
    pieces += [(c, -float(len(learned) + i)) for i, c in enumerate(c for c in chars if c not in learned)]
    return pieces


def write_tokenizer_bin(path, pieces):
    """llama2.c's tokenizer.bin: int32 max_token_length, then per token float32 score, int32 length, bytes."""
    encoded = []
    for i, (p, score) in enumerate(pieces):
        text = {1: '\n<s>\n', 2: '\n</s>\n'}.get(i, p.replace(SPACE, ' '))
        encoded.append((score, text.encode('utf-8')))
    with open(path, 'wb') as f:
        f.write(struct.pack('<i', max(len(b) for _, b in encoded)))
        for score, b in encoded:
            f.write(struct.pack('<fi', score, len(b)))
            f.write(b)


def llama2c_encode(pieces, text, bos=True):
    """run.c encode() with the .bin's pieces (spaces as ' ', BOS/EOS as '\\n<s>\\n' / '\\n</s>\\n')."""
    strs = [{1: '\n<s>\n', 2: '\n</s>\n'}.get(i, p.replace(SPACE, ' ')) for i, (p, _) in enumerate(pieces)]
    lookup = {s: i for i, s in enumerate(strs)}
    scores = [s for _, s in pieces]
    tokens = [1] if bos else []
    if text:
        tokens.append(lookup[' '])
    for ch in text:
        if ch in lookup:
            tokens.append(lookup[ch])
        else:
            tokens.extend(b + 3 for b in ch.encode('utf-8'))
    while True:
        best = (-1e10, -1, -1)
        for i in range(len(tokens) - 1):
            merged = lookup.get(strs[tokens[i]] + strs[tokens[i + 1]], -1)
            if merged != -1 and scores[merged] > best[0]:
                best = (scores[merged], merged, i)
        if best[2] == -1:
            return tokens
        tokens[best[2]:best[2] + 2] = [best[1]]


def sentencepiece_merges(pieces):
    """transformers' SentencePieceExtractor.extract: every split of a piece into two pieces, by piece score."""
    vocab = {p: i for i, (p, _) in enumerate(pieces)}
    merges = []
    for piece, score in pieces:
        local = [(piece[:k], piece[k:], score) for k in range(1, len(piece)) if piece[:k] in vocab and piece[k:] in vocab]
        merges.extend(sorted(local, key=lambda m: (vocab[m[0]], vocab[m[1]])))
    merges.sort(key=lambda m: m[2], reverse=True)
    return [f'{a} {b}' for a, b, _ in merges]


def write_llama_tokenizer(folder, pieces, max_length):
    """tokenizer.json + tokenizer_config.json as LlamaTokenizerFast (legacy) saves them for Llama 2."""
    special = [{'id': i, 'content': p, 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False,
                'special': True} for i, (p, _) in enumerate(pieces[:3])]
    tokenizer = {
        'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': special,
        'normalizer': {'type': 'Sequence', 'normalizers': [{'type': 'Prepend', 'prepend': SPACE},
                                                           {'type': 'Replace', 'pattern': {'String': ' '}, 'content': SPACE}]},
        'pre_tokenizer': None,
        'post_processor': {'type': 'TemplateProcessing',
                           'single': [{'SpecialToken': {'id': '<s>', 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}}],
                           'pair': [{'SpecialToken': {'id': '<s>', 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}},
                                    {'SpecialToken': {'id': '<s>', 'type_id': 1}}, {'Sequence': {'id': 'B', 'type_id': 1}}],
                           'special_tokens': {'<s>': {'id': '<s>', 'ids': [1], 'tokens': ['<s>']}}},
        'decoder': {'type': 'Sequence', 'decoders': [{'type': 'Replace', 'pattern': {'String': SPACE}, 'content': ' '},
                                                     {'type': 'ByteFallback'}, {'type': 'Fuse'},
                                                     {'type': 'Strip', 'content': ' ', 'start': 1, 'stop': 0}]},
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': '<unk>', 'continuing_subword_prefix': None,
                  'end_of_word_suffix': None, 'fuse_unk': True, 'byte_fallback': True,
                  'vocab': {p: i for i, (p, _) in enumerate(pieces)}, 'merges': sentencepiece_merges(pieces)},
    }
    config = {'add_bos_token': True, 'add_eos_token': False, 'bos_token': '<s>', 'eos_token': '</s>', 'unk_token': '<unk>',
              'pad_token': None, 'clean_up_tokenization_spaces': False, 'legacy': True, 'model_max_length': max_length,
              'tokenizer_class': 'LlamaTokenizer'}
    with open(os.path.join(folder, 'tokenizer.json'), 'w', encoding='utf-8') as f:
        json.dump(tokenizer, f, ensure_ascii=False, indent=1)
    with open(os.path.join(folder, 'tokenizer_config.json'), 'w') as f:
        json.dump(config, f, indent=1)


# ---------------------------------------------------------------- reference forwards

def rms_norm(x, weight, eps):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def llama2c_forward(p, w, input_ids):
    """llama2.c model.py Transformer.forward (Meta's layout: RoPE on adjacent pairs as complex numbers)."""
    dim, nh, nkv = p['dim'], p['n_heads'], p['n_kv_heads']
    hd = dim // nh
    B, T = input_ids.shape
    freqs = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float64)[: hd // 2] / hd))
    angles = torch.outer(torch.arange(T, dtype=torch.float64), freqs)
    fcos, fsin = angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]

    def rope(x):  # x (B, T, H, hd)
        xr, xi = x.reshape(x.shape[:-1] + (-1, 2)).unbind(-1)
        return torch.stack([xr * fcos - xi * fsin, xr * fsin + xi * fcos], dim=-1).flatten(3)

    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    x = w['tok_embeddings'][input_ids]
    for l in range(p['n_layers']):
        h = rms_norm(x, w['rms_att'][l], 1e-5)
        xq = (h @ w['wq'][l].T).view(B, T, nh, hd)
        xk = (h @ w['wk'][l].T).view(B, T, nkv, hd)
        xv = (h @ w['wv'][l].T).view(B, T, nkv, hd)
        xq, xk = rope(xq), rope(xk)
        rep = nh // nkv
        xk = xk[:, :, :, None, :].expand(B, T, nkv, rep, hd).reshape(B, T, nh, hd)
        xv = xv[:, :, :, None, :].expand(B, T, nkv, rep, hd).reshape(B, T, nh, hd)
        q, k, v = xq.transpose(1, 2), xk.transpose(1, 2), xv.transpose(1, 2)
        att = ((q @ k.transpose(2, 3)) / math.sqrt(hd)).masked_fill(~causal, float('-inf')).softmax(dim=-1)
        x = x + (att @ v).transpose(1, 2).reshape(B, T, dim) @ w['wo'][l].T
        h = rms_norm(x, w['rms_ffn'][l], 1e-5)
        x = x + (F.silu(h @ w['w1'][l].T) * (h @ w['w3'][l].T)) @ w['w2'][l].T
    x = rms_norm(x, w['rms_final'], 1e-5)
    return x @ w.get('wcls', w['tok_embeddings']).T


# ---------------------------------------------------------------- writers

def normal(*shape, std):
    return torch.randn(*shape, dtype=torch.float32) * std


def rounded(t):
    return [float(f'{v:.9g}') for v in t.reshape(-1).tolist()]


def random_hf_weights(cfg):
    C, nh = cfg['hidden_size'], cfg['num_attention_heads']
    nkv = cfg.get('num_key_value_heads', nh)
    hd = cfg.get('head_dim', C // nh)
    I, V = cfg['intermediate_size'], cfg['vocab_size']
    qkv_bias = cfg['model_type'] == 'qwen2' or cfg.get('attention_bias', False)
    w = {'model.embed_tokens.weight': normal(V, C, std=0.5)}
    for i in range(cfg['num_hidden_layers']):
        p = f'model.layers.{i}'
        w[p + '.input_layernorm.weight'] = 1 + normal(C, std=0.1)
        w[p + '.post_attention_layernorm.weight'] = 1 + normal(C, std=0.1)
        for name, n_in, n_out, bias in (('self_attn.q_proj', C, nh * hd, qkv_bias), ('self_attn.k_proj', C, nkv * hd, qkv_bias),
                                        ('self_attn.v_proj', C, nkv * hd, qkv_bias),
                                        ('self_attn.o_proj', nh * hd, C, cfg.get('attention_bias', False)),
                                        ('mlp.gate_proj', C, I, cfg.get('mlp_bias', False)), ('mlp.up_proj', C, I, cfg.get('mlp_bias', False)),
                                        ('mlp.down_proj', I, C, cfg.get('mlp_bias', False))):
            # Larger than the 0.02 init so attention is far from uniform and every term shows in the logits.
            w[f'{p}.{name}.weight'] = normal(n_out, n_in, std=0.3 if 'q_proj' in name or 'k_proj' in name else 0.2)
            if bias:
                w[f'{p}.{name}.bias'] = normal(n_out, std=0.1)
    w['model.norm.weight'] = 1 + normal(C, std=0.1)
    if not cfg.get('tie_word_embeddings'):
        w['lm_head.weight'] = normal(V, C, std=0.3)
    return w


def write_hf_fixture(name, cfg, tokenizer_writer, seq_len=10, lora_targets=None):
    folder = os.path.join(FIXTURES, name)
    os.makedirs(folder, exist_ok=True)
    w = random_hf_weights(cfg)
    with open(os.path.join(folder, 'config.json'), 'w') as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(folder, 'model.safetensors'), w, {'format': 'pt'})
    tokenizer_writer(folder)
    input_ids = torch.randint(0, cfg['vocab_size'], (2, seq_len))
    logits = gpt2_fixtures.transformers_logits(folder, input_ids)
    out = {'input_ids': input_ids.tolist(), 'shape': list(logits.shape), 'logits': rounded(logits)}
    summary = f'max |logit| {logits.abs().max():.3f}'
    if lora_targets:
        r, alpha = 4, 8
        C = cfg['hidden_size']
        adapter = {}
        for i in range(cfg['num_hidden_layers']):
            for target in lora_targets:
                path = f'model.layers.{i}.self_attn.{target}'
                n_out = w[path + '.weight'].shape[0]
                a = (torch.rand(r, C, dtype=torch.float32) * 2 - 1) / math.sqrt(C)  # PEFT's kaiming-uniform bound
                adapter[path] = (a, normal(n_out, r, std=0.3))  # B random: PEFT's zero would hide the delta
        adapter_dir = os.path.join(folder, 'lora-' + '-'.join(lora_targets))
        os.makedirs(adapter_dir, exist_ok=True)
        write_safetensors(os.path.join(adapter_dir, 'adapter_model.safetensors'),
                          {f'base_model.model.{p}.lora_{n}.weight': t for p, ab in adapter.items() for n, t in zip('AB', ab)},
                          {'format': 'pt'})
        with open(os.path.join(adapter_dir, 'adapter_config.json'), 'w') as f:
            json.dump({'peft_type': 'LORA', 'task_type': 'CAUSAL_LM', 'r': r, 'lora_alpha': alpha, 'lora_dropout': 0.0,
                       'target_modules': lora_targets, 'fan_in_fan_out': False, 'bias': 'none', 'use_rslora': False,
                       'base_model_name_or_path': name, 'inference_mode': True}, f, indent=2)
        adapted = gpt2_fixtures.transformers_logits(folder, input_ids, adapter_dir)
        out['lora'] = {'r': r, 'alpha': alpha, 'target_modules': lora_targets, 'logits': rounded(adapted)}
        summary += f', max |lora delta| {(adapted - logits).abs().max():.3f}'
    with open(os.path.join(folder, 'logits.json'), 'w') as f:
        json.dump(out, f, separators=(',', ':'))
    print(f'wrote {folder}: {summary}')


def write_llama2c_fixture(pieces):
    folder = os.path.join(FIXTURES, 'llama2c-tiny')
    os.makedirs(folder, exist_ok=True)
    p = {'dim': 32, 'hidden_dim': 64, 'n_layers': 2, 'n_heads': 4, 'n_kv_heads': 2, 'vocab_size': len(pieces), 'seq_len': 32}
    dim, L, hd = p['dim'], p['n_layers'], p['dim'] // p['n_heads']
    kv_dim = p['n_kv_heads'] * hd
    w = {
        'tok_embeddings': normal(p['vocab_size'], dim, std=0.5),
        'rms_att': 1 + normal(L, dim, std=0.1),
        'wq': normal(L, dim, dim, std=0.3), 'wk': normal(L, kv_dim, dim, std=0.3), 'wv': normal(L, kv_dim, dim, std=0.2),
        'wo': normal(L, dim, dim, std=0.2), 'rms_ffn': 1 + normal(L, dim, std=0.1),
        'w1': normal(L, p['hidden_dim'], dim, std=0.2), 'w2': normal(L, dim, p['hidden_dim'], std=0.2),
        'w3': normal(L, p['hidden_dim'], dim, std=0.2), 'rms_final': 1 + normal(dim, std=0.1),
    }
    angles = torch.outer(torch.arange(p['seq_len']).float(), 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd)))
    wcls = normal(p['vocab_size'], dim, std=0.3)
    order = ['tok_embeddings', 'rms_att', 'wq', 'wk', 'wv', 'wo', 'rms_ffn', 'w1', 'w2', 'w3', 'rms_final']

    def write_bin(path, shared):
        header = [p['dim'], p['hidden_dim'], p['n_layers'], p['n_heads'], p['n_kv_heads'],
                  p['vocab_size'] if shared else -p['vocab_size'], p['seq_len']]
        tensors = [w[k] for k in order] + [angles.cos(), angles.sin()] + ([] if shared else [wcls])
        with open(path, 'wb') as f:
            f.write(struct.pack('<7i', *header))
            for t in tensors:
                f.write(t.contiguous().numpy().astype('<f4').tobytes())

    write_bin(os.path.join(folder, 'model.bin'), shared=False)
    write_bin(os.path.join(folder, 'model-tied.bin'), shared=True)
    write_tokenizer_bin(os.path.join(folder, 'tokenizer.bin'), pieces)
    input_ids = torch.randint(0, p['vocab_size'], (2, 10))
    w64 = {k: v.double() for k, v in w.items()}
    with torch.no_grad():
        untied = llama2c_forward(p, {**w64, 'wcls': wcls.double()}, input_ids)
        tied = llama2c_forward(p, w64, input_ids)
    reference = {
        'params': p, 'input_ids': input_ids.tolist(), 'shape': list(untied.shape),
        'logits': rounded(untied), 'tied_logits': rounded(tied),
        'encodings': [{'text': t, 'ids': llama2c_encode(pieces, t)} for t in TEST_TEXTS],
    }
    with open(os.path.join(folder, 'reference.json'), 'w') as f:
        json.dump(reference, f, separators=(',', ':'), ensure_ascii=False)
    print(f'wrote {folder}: vocab {len(pieces)}, max |logit| {untied.abs().max():.3f}')


def main():
    torch.manual_seed(20240611)
    pieces = train_sentencepiece_bpe(CORPUS, 40)
    write_llama2c_fixture(pieces)

    def sentencepiece_tokenizer(folder):
        write_llama_tokenizer(folder, pieces, 64)

    def byte_level_tokenizer(folder):  # Qwen2 and Llama 3 use GPT-2 style byte-level BPE
        for name in ('tokenizer.json', 'tokenizer_config.json'):
            shutil.copyfile(os.path.join(FIXTURES, 'tokenizer', name), os.path.join(folder, name))

    common = {'hidden_act': 'silu', 'initializer_range': 0.02, 'use_cache': True, 'torch_dtype': 'float32'}
    write_hf_fixture('llama-tiny', {
        'architectures': ['LlamaForCausalLM'], 'model_type': 'llama', 'vocab_size': len(pieces), 'hidden_size': 32,
        'intermediate_size': 88, 'num_hidden_layers': 2, 'num_attention_heads': 4, 'num_key_value_heads': 2,
        'max_position_embeddings': 64, 'rms_norm_eps': 1e-5, 'rope_theta': 10000.0,
        'rope_scaling': {'type': 'linear', 'factor': 2.0}, 'attention_bias': False, 'mlp_bias': False,
        'tie_word_embeddings': False, 'bos_token_id': 1, 'eos_token_id': 2, **common,
    }, sentencepiece_tokenizer, lora_targets=['q_proj', 'v_proj'])
    write_hf_fixture('llama-tiny-qwen2', {
        'architectures': ['Qwen2ForCausalLM'], 'model_type': 'qwen2', 'vocab_size': 272, 'hidden_size': 32,
        'intermediate_size': 64, 'num_hidden_layers': 2, 'num_attention_heads': 4, 'num_key_value_heads': 1,
        'max_position_embeddings': 64, 'rms_norm_eps': 1e-6, 'rope_theta': 1000000.0, 'rope_scaling': None,
        'use_sliding_window': False, 'sliding_window': 32, 'max_window_layers': 2,
        'tie_word_embeddings': True, 'bos_token_id': 263, 'eos_token_id': 263, **common,
    }, byte_level_tokenizer)
    write_hf_fixture('llama-tiny-llama3', {
        'architectures': ['LlamaForCausalLM'], 'model_type': 'llama', 'vocab_size': 264, 'hidden_size': 48, 'head_dim': 16,
        'intermediate_size': 96, 'num_hidden_layers': 2, 'num_attention_heads': 4, 'num_key_value_heads': 2,
        'max_position_embeddings': 256, 'rms_norm_eps': 1e-5, 'rope_theta': 500000.0,
        'rope_scaling': {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
                         'original_max_position_embeddings': 64},
        'attention_bias': True, 'mlp_bias': True, 'tie_word_embeddings': False, 'bos_token_id': 263, 'eos_token_id': 263, **common,
    }, byte_level_tokenizer)


if __name__ == '__main__':
    main()
