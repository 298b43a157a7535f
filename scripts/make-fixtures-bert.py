#!/usr/bin/env python3
"""Writes the BERT reference fixture the engine's encoder tests compare against.

  test/fixtures/bert-tiny/   BertForMaskedLM (2 layers, hidden 32, 4 heads, intermediate 64, post-LN, exact
                             GELU, pooler, MLM head tied to the word embeddings) with a WordPiece
                             tokenizer.json as BertTokenizerFast saves it (BertNormalizer lowercase,
                             BertPreTokenizer, [CLS] A [SEP] template); reference.json holds the token ids of
                             the test texts, a padded batch with its attention mask, the hidden states,
                             mean-pooled embeddings, pooler output and MLM logits of that batch, and the
                             pseudo-log-likelihood of each text.

The reference outputs are transformers' own BertModel / BertForMaskedLM loading the folder, evaluated in
float64 on the float32 weights; the tokenizer reference is BertTokenizer's BasicTokenizer
(lowercase, strip accents, split on whitespace and punctuation) plus greedy longest-match-first WordPiece.
Pseudo-log-likelihood follows Salazar et al. 2020 ("Masked Language Model Scoring"): mask each
non-special token in turn and sum log p(token | rest).
Needs torch and transformers: the repo's .venv.

Run: .venv/bin/python scripts/make-fixtures-bert.py
"""
import importlib.util
import json
import os
import unicodedata

import torch

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
FOLDER = os.path.join(ROOT, 'test', 'fixtures', 'bert-tiny')

_spec = importlib.util.spec_from_file_location('gpt2_fixtures', os.path.join(ROOT, 'scripts', 'make-fixtures-gpt2.py'))
gpt2_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpt2_fixtures)
write_safetensors = gpt2_fixtures.write_safetensors

SPECIAL = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
WORDS = ['the', 'a', 'cat', 'dog', 'sat', 'on', 'mat', 'she', 'he', 'play', 'with', 'big', 'red', 'ball', 'ran', 'in',
         'park', 'and', 'girl', 'boy', 'is', 'was', 'nurse', 'doctor']
SUFFIXES = ['##s', '##ed', '##ing', '##er']
LETTERS = [chr(c) for c in range(ord('a'), ord('z') + 1)]
PUNCT = ['.', ',', '!', '?', "'"]
VOCAB = SPECIAL + PUNCT + LETTERS + ['##' + c for c in LETTERS] + WORDS + SUFFIXES
TEXTS = ['The cat sat on the mat.', 'She played with a big red ball!', 'Dogs ran in the Park', 'Caf\u00e9 zebra?']

CONFIG = {
    'architectures': ['BertForMaskedLM'], 'model_type': 'bert', 'vocab_size': len(VOCAB), 'hidden_size': 32,
    'num_hidden_layers': 2, 'num_attention_heads': 4, 'intermediate_size': 64, 'hidden_act': 'gelu',
    'hidden_dropout_prob': 0.1, 'attention_probs_dropout_prob': 0.1, 'max_position_embeddings': 32,
    'type_vocab_size': 2, 'initializer_range': 0.02, 'layer_norm_eps': 1e-12, 'pad_token_id': 0,
    'position_embedding_type': 'absolute', 'torch_dtype': 'float32',
}


# ---------------------------------------------------------------- tokenizer

def basic_tokenize(text):
    """BasicTokenizer with do_lower_case: lowercase, NFD and drop combining marks, split punctuation."""
    text = ''.join(c for c in unicodedata.normalize('NFD', text.lower()) if unicodedata.category(c) != 'Mn')
    words = []
    for chunk in text.split():
        current = ''
        for c in chunk:
            if unicodedata.category(c).startswith('P'):
                if current:
                    words.append(current)
                words.append(c)
                current = ''
            else:
                current += c
        if current:
            words.append(current)
    return words


def wordpiece(word, vocab):
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else '##' + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            return ['[UNK]']
        pieces.append(piece)
        start = end
    return pieces


def encode(text, vocab):
    """[CLS] wordpieces [SEP], as BertTokenizerFast(text) with add_special_tokens=True."""
    return [vocab['[CLS]']] + [vocab[p] for w in basic_tokenize(text) for p in wordpiece(w, vocab)] + [vocab['[SEP]']]


def write_tokenizer(folder, vocab):
    added = [{'id': vocab[t], 'content': t, 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False,
              'special': True} for t in SPECIAL]
    tokenizer = {
        'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': added,
        'normalizer': {'type': 'BertNormalizer', 'clean_text': True, 'handle_chinese_chars': True, 'strip_accents': None,
                       'lowercase': True},
        'pre_tokenizer': {'type': 'BertPreTokenizer'},
        'post_processor': {'type': 'TemplateProcessing',
                           'single': [{'SpecialToken': {'id': '[CLS]', 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}},
                                      {'SpecialToken': {'id': '[SEP]', 'type_id': 0}}],
                           'pair': [{'SpecialToken': {'id': '[CLS]', 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}},
                                    {'SpecialToken': {'id': '[SEP]', 'type_id': 0}}, {'Sequence': {'id': 'B', 'type_id': 1}},
                                    {'SpecialToken': {'id': '[SEP]', 'type_id': 1}}],
                           'special_tokens': {t: {'id': t, 'ids': [vocab[t]], 'tokens': [t]} for t in ('[CLS]', '[SEP]')}},
        'decoder': {'type': 'WordPiece', 'prefix': '##', 'cleanup': True},
        'model': {'type': 'WordPiece', 'unk_token': '[UNK]', 'continuing_subword_prefix': '##',
                  'max_input_chars_per_word': 100, 'vocab': vocab},
    }
    config = {'do_lower_case': True, 'cls_token': '[CLS]', 'sep_token': '[SEP]', 'pad_token': '[PAD]',
              'mask_token': '[MASK]', 'unk_token': '[UNK]', 'model_max_length': 32, 'tokenizer_class': 'BertTokenizer',
              'clean_up_tokenization_spaces': True, 'strip_accents': None, 'tokenize_chinese_chars': True}
    with open(os.path.join(folder, 'tokenizer.json'), 'w', encoding='utf-8') as f:
        json.dump(tokenizer, f, ensure_ascii=False, indent=1)
    with open(os.path.join(folder, 'tokenizer_config.json'), 'w') as f:
        json.dump(config, f, indent=1)


# ---------------------------------------------------------------- reference forward

def transformers_outputs(folder, input_ids, attention_mask):
    """transformers' own classes on the folder, in float64 on the float32 weights: BertModel's last hidden
    states and pooler output (BertForMaskedLM leaves the pooler out), BertForMaskedLM's MLM logits."""
    from transformers import BertForMaskedLM, BertModel
    rng = torch.get_rng_state()  # module construction draws initial weights; later draws must not move
    try:
        encoder = BertModel.from_pretrained(folder, dtype=torch.float64).eval()
        mlm = BertForMaskedLM.from_pretrained(folder, dtype=torch.float64).eval()
        with torch.no_grad():
            out = encoder(input_ids=input_ids, attention_mask=attention_mask)
            logits = mlm(input_ids=input_ids, attention_mask=attention_mask).logits
        return out.last_hidden_state, out.pooler_output, logits
    finally:
        torch.set_rng_state(rng)


def pseudo_log_likelihood(folder, ids, mask_id):
    """Salazar et al. 2020: sum over non-special positions i of log p(ids[i] | ids with i masked)."""
    positions = list(range(1, len(ids) - 1))
    batch = torch.tensor([ids] * len(positions))
    for row, i in enumerate(positions):
        batch[row, i] = mask_id
    _, _, logits = transformers_outputs(folder, batch, torch.ones_like(batch))
    logp = logits.log_softmax(-1)
    return sum(float(logp[row, i, ids[i]]) for row, i in enumerate(positions))


def normal(*shape, std):
    return torch.randn(*shape, dtype=torch.float32) * std


def rounded(t):
    return [float(f'{v:.9g}') for v in t.reshape(-1).tolist()]


def random_weights(cfg):
    V, C, I, P = cfg['vocab_size'], cfg['hidden_size'], cfg['intermediate_size'], cfg['max_position_embeddings']
    e = 'bert.embeddings'
    w = {e + '.word_embeddings.weight': normal(V, C, std=0.5), e + '.position_embeddings.weight': normal(P, C, std=0.3),
         e + '.token_type_embeddings.weight': normal(cfg['type_vocab_size'], C, std=0.3)}

    def lin(path, n_in, n_out, std=0.2):
        # Larger than the 0.02 init so attention is far from uniform and every term shows in the outputs.
        w[path + '.weight'] = normal(n_out, n_in, std=std)
        w[path + '.bias'] = normal(n_out, std=0.1)

    def norm(path):
        w[path + '.weight'] = 1 + normal(C, std=0.1)
        w[path + '.bias'] = normal(C, std=0.1)

    norm(e + '.LayerNorm')
    for i in range(cfg['num_hidden_layers']):
        p = f'bert.encoder.layer.{i}'
        for n in ('query', 'key'):
            lin(f'{p}.attention.self.{n}', C, C, std=0.4)
        lin(p + '.attention.self.value', C, C)
        lin(p + '.attention.output.dense', C, C)
        norm(p + '.attention.output.LayerNorm')
        lin(p + '.intermediate.dense', C, I)
        lin(p + '.output.dense', I, C)
        norm(p + '.output.LayerNorm')
    lin('bert.pooler.dense', C, C)
    lin('cls.predictions.transform.dense', C, C)
    norm('cls.predictions.transform.LayerNorm')
    w['cls.predictions.bias'] = normal(V, std=0.1)
    return w


def main():
    torch.manual_seed(20240612)
    os.makedirs(FOLDER, exist_ok=True)
    vocab = {t: i for i, t in enumerate(VOCAB)}
    w = random_weights(CONFIG)
    with open(os.path.join(FOLDER, 'config.json'), 'w') as f:
        json.dump(CONFIG, f, indent=2)
    # As save_pretrained writes BertForMaskedLM: the tied decoder weight is left out (it is the embedding),
    # cls.predictions.decoder.bias is the same tensor as cls.predictions.bias and saved once.
    write_safetensors(os.path.join(FOLDER, 'model.safetensors'), w, {'format': 'pt'})
    write_tokenizer(FOLDER, vocab)

    encodings = [{'text': t, 'ids': encode(t, vocab)} for t in TEXTS]
    batch_texts = encodings[:2] + encodings[2:3]
    T = max(len(e['ids']) for e in batch_texts)
    input_ids = torch.tensor([e['ids'] + [vocab['[PAD]']] * (T - len(e['ids'])) for e in batch_texts])
    attention_mask = torch.tensor([[1] * len(e['ids']) + [0] * (T - len(e['ids'])) for e in batch_texts])
    hidden, pooled, logits = transformers_outputs(FOLDER, input_ids, attention_mask)
    m = attention_mask.double()[:, :, None]
    mean_pooled = (hidden * m).sum(1) / m.sum(1)
    plls = [pseudo_log_likelihood(FOLDER, e['ids'], vocab['[MASK]']) for e in encodings]
    reference = {
        'encodings': encodings, 'input_ids': input_ids.tolist(), 'attention_mask': attention_mask.tolist(),
        'hidden_states': rounded(hidden), 'hidden_shape': list(hidden.shape), 'mean_pooled': rounded(mean_pooled),
        'pooler_output': rounded(pooled), 'mlm_logits': rounded(logits), 'logits_shape': list(logits.shape),
        'pseudo_log_likelihood': plls,
    }
    with open(os.path.join(FOLDER, 'reference.json'), 'w') as f:
        json.dump(reference, f, separators=(',', ':'), ensure_ascii=False)
    print(f'wrote {FOLDER}: vocab {len(VOCAB)}, batch {list(input_ids.shape)}, max |logit| {logits.abs().max():.3f}, '
          f'PLL {[round(p, 3) for p in plls]}')


if __name__ == '__main__':
    main()
