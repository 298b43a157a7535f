"""A GPT-2-style tokenizer saved the old way, as vocab.json + merges.txt without tokenizer.json (what
older GPT-2 checkpoints ship), for the test that the workbench builds its tokenizer from those files.

  test/fixtures/tokenizer-bpe-files/  vocab.json and merges.txt (the `tokenizers` library's save_model),
                                      tokenizer_config.json naming <|endoftext|> as GPT-2's does, and
                                      reference.json: the ids transformers' GPT2Tokenizer, built from those two
                                      files alone, gives the test texts, and the texts it decodes them to.

The BPE is byte-level, trained by the `tokenizers` library on the short corpus below to 300 entries
(256 bytes, <|endoftext|>, 43 merges), so the files stay small while many merges apply.

Run: .venv/bin/python scripts/make-fixtures-tokenizer-bpe.py
"""
import json
import os

from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Tokenizer

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'tokenizer-bpe-files')
CORPUS = [
    'The cat sat on the mat. The dog sat on the log. Then the cat and the dog ran into the garden.',
    'She said that the weather was fine, and they went out together in the afternoon.',
    'There is nothing the matter with the other ones; they are there, and that is that.',
] * 20
TEXTS = ['The cat sat on the mat.', 'then they went there, together!', '  spaces  and\nnew lines\t', 'caf\u00e9 na\u00efve \u2014 \U0001F600', 'the<|endoftext|>end']


def main():
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=300, min_frequency=2, special_tokens=['<|endoftext|>'], show_progress=False)
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        os.remove(os.path.join(OUT, name))
    bpe.save_model(OUT)  # vocab.json + merges.txt, as GPT-2's original release ships them
    config = {'model_max_length': 1024, 'bos_token': '<|endoftext|>', 'eos_token': '<|endoftext|>', 'unk_token': '<|endoftext|>',
              'add_prefix_space': False, 'tokenizer_class': 'GPT2Tokenizer'}
    with open(os.path.join(OUT, 'tokenizer_config.json'), 'w') as f:
        json.dump(config, f, indent=1)
        f.write('\n')
    # transformers' GPT2Tokenizer built from the two files alone: the reference the workbench must match.
    ref = GPT2Tokenizer(vocab=os.path.join(OUT, 'vocab.json'), merges=os.path.join(OUT, 'merges.txt'), **{k: v for k, v in config.items() if k.endswith('_token')})
    reference = [{'text': t, 'ids': ref.encode(t), 'decoded': ref.decode(ref.encode(t), clean_up_tokenization_spaces=False)} for t in TEXTS]
    with open(os.path.join(OUT, 'reference.json'), 'w') as f:
        json.dump({'vocab_size': len(ref), 'eos_token_id': ref.eos_token_id, 'texts': reference}, f, indent=1, ensure_ascii=False)
        f.write('\n')
    print(f'{OUT}: vocabulary {len(ref)}, {sum(1 for _ in open(os.path.join(OUT, "merges.txt"))) - 1} merges')


if __name__ == '__main__':
    main()
