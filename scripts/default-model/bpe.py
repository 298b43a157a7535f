"""Byte-level BPE as GPT-2 defines it: a small trainer, an encoder, and the HF tokenizer.json writer.

Standard library only, so the tokenizer parity test can run this file without PyTorch:
  python3 bpe.py encode TOKENIZER_JSON < strings.json   (a JSON list of strings in, a list of id lists out)
"""
import heapq
import json
import re
import sys
import unicodedata
from collections import Counter

EOS = "<|endoftext|>"


def bytes_to_unicode():
    """GPT-2's reversible map from bytes to printable characters (space becomes 'Ġ', newline 'Ċ')."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_ENCODER = bytes_to_unicode()
BYTE_DECODER = {c: b for b, c in BYTE_ENCODER.items()}

# The app tokenizes with @huggingface/tokenizers, whose ByteLevel pre-tokenizer runs GPT-2's pattern
#   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# as a JavaScript /u regex. Python's re has no \p{..}, so the classes are spelled out as code point
# ranges; \s is JavaScript's definition, so Python and JS split text identically.
JS_WHITESPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"


def _class_ranges(predicate):
    parts, start, prev = [], None, None
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if predicate(chr(cp)):
            if start is None:
                start = cp
            prev = cp
        elif start is not None:
            parts.append(re.escape(chr(start)) if start == prev else f"{re.escape(chr(start))}-{re.escape(chr(prev))}")
            start = None
    if start is not None:
        parts.append(f"{re.escape(chr(start))}-{re.escape(chr(prev))}")
    return "".join(parts)


def _gpt2_pattern():
    letters = _class_ranges(lambda c: unicodedata.category(c).startswith("L"))
    numbers = _class_ranges(lambda c: unicodedata.category(c).startswith("N"))
    ws = JS_WHITESPACE
    return re.compile(
        rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{letters}]+| ?[{numbers}]+| ?[^{ws}{letters}{numbers}]+|[{ws}]+(?![^{ws}])|[{ws}]+"
    )


_PATTERN = None


def pre_tokenize(text):
    """Split text as GPT-2 does and map each piece to its byte-level string."""
    global _PATTERN
    if _PATTERN is None:
        _PATTERN = _gpt2_pattern()
    return ["".join(BYTE_ENCODER[b] for b in piece.encode("utf-8")) for piece in _PATTERN.findall(text)]


def train_bpe(texts, vocab_size, min_frequency=2, progress=None):
    """Learn merges until the vocabulary (256 bytes + merges + EOS) reaches vocab_size.

    Pair counts are updated incrementally and the best pair comes from a lazy max-heap, so each
    merge costs time proportional to the words containing that pair, not to the whole corpus.
    Ties go to the lexicographically smallest pair, which keeps training deterministic.
    """
    word_counts = Counter()
    for text in texts:
        word_counts.update(pre_tokenize(text))
    words = [list(w) for w in word_counts]
    counts = list(word_counts.values())

    pair_counts = Counter()
    where = {}
    for i, (w, c) in enumerate(zip(words, counts)):
        for pair in zip(w, w[1:]):
            pair_counts[pair] += c
            where.setdefault(pair, set()).add(i)
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)

    byte_tokens = sorted(BYTE_ENCODER.values())
    vocab = {tok: i for i, tok in enumerate(byte_tokens)}
    merges = []
    target = vocab_size - 1  # the last id is EOS
    while len(vocab) < target and heap:
        neg, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -neg:
            continue  # stale heap entry
        if -neg < min_frequency:
            break
        a, b = pair
        merged = a + b
        merges.append(pair)
        if merged not in vocab:
            vocab[merged] = len(vocab)
        changed = set()
        for i in where.pop(pair, ()):
            w, c = words[i], counts[i]
            for p in zip(w, w[1:]):
                pair_counts[p] -= c
                changed.add(p)
            out, j = [], 0
            while j < len(w):
                if j < len(w) - 1 and w[j] == a and w[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for p in zip(out, out[1:]):
                pair_counts[p] += c
                where.setdefault(p, set()).add(i)
                changed.add(p)
        for p in changed:
            c = pair_counts.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_counts.pop(p, None)
                where.pop(p, None)
        if progress and len(merges) % 500 == 0:
            progress(f"bpe: {len(merges)} merges, vocab {len(vocab)}")
    vocab[EOS] = len(vocab)
    return vocab, merges


class Tokenizer:
    def __init__(self, vocab, merges):
        self.vocab = vocab
        self.id_to_token = {i: t for t, i in vocab.items()}
        self.ranks = {tuple(m): r for r, m in enumerate(merges)}
        self.eos_id = vocab[EOS]
        self.cache = {}

    @classmethod
    def from_file(cls, path):
        with open(path, encoding="utf-8") as f:
            model = json.load(f)["model"]
        merges = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
        return cls(model["vocab"], merges)

    def _bpe(self, piece):
        cached = self.cache.get(piece)
        if cached is not None:
            return cached
        word = list(piece)
        while len(word) > 1:
            # Merge every occurrence of the lowest-ranked pair, left to right (GPT-2's encoder; the same
            # result as the JS library's priority queue, which the parity test checks).
            pair = min(zip(word, word[1:]), key=lambda p: self.ranks.get(p, 1 << 30))
            if pair not in self.ranks:
                break
            a, b = pair
            out, j = [], 0
            while j < len(word):
                if j < len(word) - 1 and word[j] == a and word[j + 1] == b:
                    out.append(a + b)
                    j += 2
                else:
                    out.append(word[j])
                    j += 1
            word = out
        ids = [self.vocab[t] for t in word]
        self.cache[piece] = ids
        return ids

    def encode(self, text):
        """EOS written literally in text is the special token, as in the JS tokenizer."""
        ids = []
        for k, part in enumerate(text.split(EOS)):
            if k:
                ids.append(self.eos_id)
            for piece in pre_tokenize(part):
                ids.extend(self._bpe(piece))
        return ids

    def decode(self, ids):
        data = bytes(b for i in ids for b in (self.id_to_token[i].encode("utf-8") if i == self.eos_id
                                              else (BYTE_DECODER[ch] for ch in self.id_to_token[i])))
        return data.decode("utf-8", errors="replace")


def tokenizer_json(vocab, merges):
    """The HF tokenizer.json of a GPT-2 tokenizer (same component settings as openai-community/gpt2)."""
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": vocab[EOS], "content": EOS, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": True, "special": True}],
        "normalizer": None,
        "pre_tokenizer": byte_level,
        "post_processor": {**byte_level, "trim_offsets": False},
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }


def tokenizer_config_json(eos_id, model_max_length):
    return {"add_bos_token": False, "add_prefix_space": False, "bos_token": EOS, "eos_token": EOS, "unk_token": EOS,
            "pad_token": None, "clean_up_tokenization_spaces": False, "model_max_length": model_max_length,
            "tokenizer_class": "GPT2Tokenizer",
            "added_tokens_decoder": {str(eos_id): {"content": EOS, "lstrip": False, "normalized": True, "rstrip": False,
                                                   "single_word": False, "special": True}}}


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "encode":
        sys.exit("usage: bpe.py encode TOKENIZER_JSON < strings.json")
    tok = Tokenizer.from_file(sys.argv[2])
    json.dump([tok.encode(s) for s in json.load(sys.stdin)], sys.stdout)
