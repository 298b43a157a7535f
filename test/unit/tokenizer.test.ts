// The byte-level BPE fixture (scripts/make-fixtures-gpt2.py) has GPT-2's byte table and 7 merges, so
// every id below is derived by hand: GPT-2 orders the 256 byte symbols printable-first, which puts
// ASCII '!'..'~' at ord(c) - 33, bytes 0..32 at 188 + byte (space -> 'Ġ' 220, newline 198), and the
// merges at 256.. in rank order: Ġt 256, he 257, Ġthe 258, ll 259, llo 260, hello 261, Ġw 262;
// <|endoftext|> is 263.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { loadTokenizer, type TextTokenizer } from '../../src-worker/formats/tokenizer.ts';

const fixtureDir = path.join(import.meta.dirname, '..', 'fixtures', 'tokenizer');
const ascii = (c: string) => c.charCodeAt(0) - 33;

describe('loadTokenizer (GPT-2 style byte-level BPE)', () => {
  let tokenizer: TextTokenizer;
  beforeAll(async () => {
    tokenizer = await loadTokenizer(fixtureDir);
  });

  it('reads eos from tokenizer_config.json and pads with eos', () => {
    expect(tokenizer.bosTokenId).toBeNull();
    expect(tokenizer.eosTokenId).toBe(263);
    expect(tokenizer.padTokenId).toBe(263);
    expect(tokenizer.vocabSize).toBe(264);
  });

  it('applies the merges in rank order', () => {
    // "hello": h e l l o -> he l l o -> he ll o -> he llo -> hello; " the": Ġ t h e -> Ġt h e -> Ġt he -> Ġthe
    expect(tokenizer.encode('hello the')).toEqual([261, 258]);
    // " world": only "Ġ w" merges
    expect(tokenizer.encode('hello world')).toEqual([261, 262, ascii('o'), ascii('r'), ascii('l'), ascii('d')]);
    // "the" without a leading space has no Ġ, so only "h e" merges; " hello" is Ġ + hello (no Ġh merge)
    expect(tokenizer.encode('the hello')).toEqual([ascii('t'), 257, 220, 261]);
  });

  it('maps non-ASCII bytes through the byte table', () => {
    // é is C3 A9: 0xC3 sits in the ®..ÿ block (ids 106 + b - 174 = 127), 0xA9 in ¡..¬ (94 + b - 161 = 102)
    expect(tokenizer.encode('é')).toEqual([127, 102]);
    expect(tokenizer.encode('\n')).toEqual([198]);
  });

  it('adds no special tokens but recognizes them in text', () => {
    expect(tokenizer.encode('')).toEqual([]);
    expect(tokenizer.encode('hello<|endoftext|>')).toEqual([261, 263]);
  });

  it('decodes ids to the exact text', () => {
    expect(tokenizer.decode([261, 258])).toBe('hello the');
    expect(tokenizer.decode([])).toBe('');
  });

  it("ignores clean_up_tokenization_spaces (GPT-2's own config sets it), so decoding inverts encoding", async () => {
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'lw-tok-'));
    await fs.promises.copyFile(path.join(fixtureDir, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    const config = JSON.parse(await fs.promises.readFile(path.join(fixtureDir, 'tokenizer_config.json'), 'utf-8'));
    await fs.promises.writeFile(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ ...config, clean_up_tokenization_spaces: true }));
    const gpt2Like = await loadTokenizer(dir);
    expect(gpt2Like.decode(gpt2Like.encode("a , b . it 's"))).toBe("a , b . it 's");
    await fs.promises.rm(dir, { recursive: true });
  });

  it('round-trips arbitrary unicode text', () => {
    const texts = [
      'Grüße, 世界! 🤖🏳️‍🌈\n\ttabs  and   spaces  ',
      "It's 2024: naïve café — ½ ∑ x² ≠ ∞; Ελληνικά, русский, עברית, हिन्दी",
      '\u0000control\u0007 chars\r\n and a lone combining mark \u0301',
    ];
    for (const text of texts) expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
  });
});

describe('BOS tokens', () => {
  const llamaDir = path.join(import.meta.dirname, '..', 'fixtures', 'llama-tiny');

  it('takes BOS from add_bos_token (Llama 2), so training data starts with <s> as in HF', async () => {
    const llama = await loadTokenizer(llamaDir);
    const config = JSON.parse(fs.readFileSync(path.join(llamaDir, 'tokenizer_config.json'), 'utf8')) as { bos_token: string };
    const vocab = (JSON.parse(fs.readFileSync(path.join(llamaDir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } }).model.vocab;
    expect(llama.bosTokenId).toBe(vocab[config.bos_token]);
    expect(llama.encode('hello')[0]).not.toBe(llama.bosTokenId);
  });

  it('honours add_bos_token false and otherwise reads the post-processor', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-bos-'));
    for (const f of ['tokenizer.json', 'config.json']) fs.copyFileSync(path.join(llamaDir, f), path.join(dir, f));
    const config = JSON.parse(fs.readFileSync(path.join(llamaDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ ...config, add_bos_token: false }));
    expect((await loadTokenizer(dir)).bosTokenId).toBeNull();
    const { add_bos_token: _, ...withoutFlag } = config;
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(withoutFlag));
    const tokenizerJson = JSON.parse(fs.readFileSync(path.join(llamaDir, 'tokenizer.json'), 'utf8')) as { post_processor: unknown };
    // Whatever the fixture's post-processor does decides: BOS exactly when it prepends a token.
    const probe = await loadTokenizer(dir);
    expect(probe.bosTokenId === null).toBe(tokenizerJson.post_processor === null || JSON.stringify(tokenizerJson.post_processor).indexOf('<s>') < 0);
  });
});

describe('loadTokenizer errors', () => {
  it('names a missing tokenizer.json', async () => {
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'lw-tok-'));
    const error = await loadTokenizer(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkbenchError);
    expect((error as WorkbenchError).code).toBe('model_invalid');
    expect((error as WorkbenchError).message).toMatch(/tokenizer\.json/);
    await fs.promises.rm(dir, { recursive: true });
  });

  it('takes eos from config.json when tokenizer_config.json has none, and says so when neither has it', async () => {
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'lw-tok-'));
    await fs.promises.copyFile(path.join(fixtureDir, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    await expect(loadTokenizer(dir)).rejects.toThrow(/eos_token/);
    await fs.promises.writeFile(path.join(dir, 'config.json'), JSON.stringify({ eos_token_id: 5, pad_token_id: 7 }));
    const tokenizer = await loadTokenizer(dir);
    expect([tokenizer.eosTokenId, tokenizer.padTokenId]).toEqual([5, 7]);
    await fs.promises.rm(dir, { recursive: true });
  });
});
