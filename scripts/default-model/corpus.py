"""The pretraining corpus, extracted at build time from Debian packages (nothing here is committed).

- King James Bible (package bible-kjv-text, read through the `bible` program of bible-kjv): public domain.
- WordNet 3.0 (package wordnet-base): its example sentences and definitions rendered as plain sentences.
- The sample dataset's rows (resources/datasets/sample/train.jsonl), minus a held-out eighth.

Validation text is chosen by stable rules (chapter number, synset offset, prompt hash), so the same
text is held out on every build.
"""
import hashlib
import json
import os
import re
import subprocess

BIBLE_RANGE = "Gen1:1-Rev22:21"
WORDNET_DIR = "/usr/share/wordnet"
WORDNET_FILES = {"noun": "data.noun", "verb": "data.verb", "adj": "data.adj"}
LICENSE_FILES = {"bible-kjv-text": "/usr/share/doc/bible-kjv-text/copyright",
                 "wordnet-base": "/usr/share/doc/wordnet-base/copyright"}

_VERSE = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.+)$")


def kjv_chapters(bible_bin="bible"):
    """[(book, chapter, text)] with the verses of each chapter joined into running prose."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run([bible_bin, "-f", BIBLE_RANGE], check=True, capture_output=True, text=True, env=env).stdout
    chapters, verses = [], 0
    for line in out.splitlines():
        if not line.strip():
            continue
        m = _VERSE.match(line)
        if not m:
            raise RuntimeError(f"unexpected line from `bible -f`: {line[:80]!r}")
        book, chapter, text = m.group(1), int(m.group(2)), m.group(4).strip()
        if chapters and chapters[-1][0] == book and chapters[-1][1] == chapter:
            chapters[-1][2].append(text)
        else:
            chapters.append((book, chapter, [text]))
        verses += 1
    if verses != 31102:
        raise RuntimeError(f"expected the 31,102 verses of the KJV, got {verses}")
    return [(b, c, " ".join(v)) for b, c, v in chapters]


def _sentence(text):
    text = text.strip().strip('"').strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def _article(word):
    return "An" if word[0].lower() in "aeiou" else "A"


def _tagged_synsets(pos):
    """Offsets of synsets that are a sense of some lemma attested in WordNet's tagged corpus (SemCor).

    index.<pos> lines read: lemma pos synset_cnt p_cnt [ptr...] sense_cnt tagsense_cnt offset...,
    with a lemma's senses in frequency order, so the first tagsense_cnt offsets are the attested ones.
    """
    tagged = set()
    with open(os.path.join(WORDNET_DIR, f"index.{pos}"), encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  "):
                continue
            parts = line.split()
            p_cnt = int(parts[3])
            tagsense_cnt = int(parts[5 + p_cnt])
            tagged.update(parts[6 + p_cnt:6 + p_cnt + tagsense_cnt])
    return tagged


def wordnet_entries():
    """[(offset_key, [sentences])] per synset: its definition as a sentence, then its example sentences.

    Nouns read "A lighthouse is a tower with a light that gives warning of shoals to passing ships.",
    verbs "To modernize is to become technologically advanced.", adjectives "Hot means ...".
    Definitions of a proper noun, or ones that do not start like a noun phrase, are left out so the
    rendered sentence stays grammatical; so are those of rare senses (see below).
    """
    entries = []
    for pos, name in WORDNET_FILES.items():
        tagged = _tagged_synsets(pos)
        with open(os.path.join(WORDNET_DIR, name), encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue  # license header
                fields, gloss = line.split("|", 1)
                parts = fields.split()
                lemma = parts[4].replace("_", " ")
                lemma = re.sub(r"\(.*\)$", "", lemma)  # adjective markers such as "(a)"
                chunks = [c.strip() for c in gloss.strip().split(";") if c.strip()]
                definitions = [c for c in chunks if not c.startswith('"')]
                definition = definitions[0] if definitions else ""
                examples = [_sentence(c) for c in re.findall(r'"([^"]+)"', gloss)]
                sentences = []
                # Definitions of rare senses (never seen in SemCor) and of multi-word lemmas ("sword knot")
                # would outweigh the Bible text without making the English any better.
                if definition and not definition.startswith("(") and " " not in lemma and parts[0] in tagged:
                    if pos == "noun" and lemma[0].islower() and re.match(r"(a|an|the|any|one|someone|something) ", definition):
                        sentences.append(f"{_article(lemma)} {lemma} is {definition}.")
                    elif pos == "verb":
                        sentences.append(f"To {lemma} is to {definition}.")
                    elif pos == "adj" and lemma[0].islower():
                        sentences.append(f"{lemma[0].upper() + lemma[1:]} means {definition}.")
                sentences += [s for s in examples if len(s.split()) >= 4]
                if sentences:
                    entries.append((f"{pos}:{parts[0]}", sentences))
    return entries


def sample_rows(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def is_held_out_row(row):
    """The sample rows kept out of pretraining: SHA-256 of the prompt starts with hex 0 or 1 (1/8)."""
    return hashlib.sha256(row["prompt"].encode("utf-8")).hexdigest()[0] in "01"


def _held_out_key(key, fraction_in_64):
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:4], 16) % 64 < fraction_in_64


def build_corpus(sample_path, bible_bin="bible", wordnet_docs_of=24):
    """Documents for training and validation, plus the corpus text (for its hash) and statistics.

    About 1/32 of the Bible chapters and of the WordNet documents are held out.
    """
    train, val = {"kjv": [], "wordnet": []}, {"kjv": [], "wordnet": []}
    for book, chapter, text in kjv_chapters(bible_bin):
        (val if _held_out_key(f"{book}{chapter}", 2) else train)["kjv"].append(text)
    entries = wordnet_entries()
    # Consecutive synsets share a lexicographer file (topic), so grouping them gives topical paragraphs.
    for i in range(0, len(entries), wordnet_docs_of):
        group = entries[i:i + wordnet_docs_of]
        doc = " ".join(s for _, sentences in group for s in sentences)
        (val if _held_out_key(group[0][0], 2) else train)["wordnet"].append(doc)
    rows = sample_rows(sample_path)
    train["sample"] = [r["prompt"] + r["completion"] for r in rows if not is_held_out_row(r)]
    val["sample"] = [r for r in rows if is_held_out_row(r)]
    corpus_text = "\n\n".join(train["kjv"] + val["kjv"] + train["wordnet"] + val["wordnet"])
    stats = {
        "kjv_chapters": len(train["kjv"]) + len(val["kjv"]),
        "wordnet_synsets": len(entries),
        "words": {k: sum(len(d.split()) for d in train[k]) for k in ("kjv", "wordnet")},
        "val_words": {k: sum(len(d.split()) for d in val[k]) for k in ("kjv", "wordnet")},
        "sample_rows": {"train": len(train["sample"]), "held_out": len(val["sample"])},
        "corpus_sha256": hashlib.sha256(corpus_text.encode("utf-8")).hexdigest(),
    }
    return train, val, stats
