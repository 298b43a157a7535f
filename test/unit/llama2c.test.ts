// llama2.c import: scripts/make-fixtures-llama.py writes random llama2.c checkpoints (untied and tied,
// GQA) with the logits of llama2.c's own forward (RoPE on adjacent pairs, Meta's layout), and token ids
// of run.c's encode() for a tiny SentencePiece vocabulary. The imported HF folder must reproduce both:
// the logits only if q/k rows are permuted to HF's rotate_half layout, the ids only if the merges
// derived from the scores rank pairs as run.c does.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { importLlama2c, mergesFromScores, parseLlama2cTokenizer, permuteForRotateHalf } from '../../src-worker/formats/llama2c.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { readSafetensorsHeader } from '../../src-worker/formats/safetensors.ts';
import { loadTokenizer } from '../../src-worker/formats/tokenizer.ts';
import { tf } from '../../src-worker/tf.ts';
import { maxAbsDiff } from '../../src-worker/export/probe.ts';

const fixtureDir = path.join(import.meta.dirname, '..', 'fixtures', 'llama2c-tiny');
const reference = JSON.parse(fs.readFileSync(path.join(fixtureDir, 'reference.json'), 'utf-8')) as {
  params: { dim: number; hidden_dim: number; n_layers: number; n_heads: number; n_kv_heads: number; vocab_size: number; seq_len: number };
  input_ids: number[][];
  shape: number[];
  logits: number[];
  tied_logits: number[];
  encodings: { text: string; ids: number[] }[];
};
const tokenizerBin = path.join(fixtureDir, 'tokenizer.bin');
const temps: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'lw-llama2c-'));
  temps.push(dir);
  return dir;
}

/** A fresh, not yet existing folder for an import. */
async function outDir(): Promise<string> {
  return path.join(await tempDir(), 'model');
}

async function expectError(promise: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  const error = await promise.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(WorkbenchError);
  expect((error as WorkbenchError).code).toBe(code);
  expect((error as WorkbenchError).message).toMatch(pattern);
}

afterEach(async () => {
  for (const dir of temps.splice(0)) await fs.promises.rm(dir, { recursive: true, force: true });
});

afterAll(async () => {
  await initBackend('cpu');
});

describe.each(['cpu', 'wasm'] as const)('imported llama2.c checkpoints on %s', (backend) => {
  it.each([
    ['model.bin', 'logits'],
    ['model-tied.bin', 'tied_logits'],
  ] as const)('%s: logits match llama2.c within 1e-4', async (bin, key) => {
    await initBackend(backend);
    const dir = await outDir();
    const result = await importLlama2c(path.join(fixtureDir, bin), tokenizerBin, dir);
    expect(result.params.sharedClassifier).toBe(bin === 'model-tied.bin');
    const model = await loadCausalLM(dir);
    const ids = tf.tensor2d(reference.input_ids, undefined, 'int32');
    const logits = model.forward(ids);
    expect(logits.shape).toEqual(reference.shape);
    expect(maxAbsDiff(logits.dataSync(), reference[key])).toBeLessThan(1e-4);
    tf.dispose([ids, logits]);
    model.dispose();
    await initBackend('cpu');
  });
});

describe('the imported folder', () => {
  it('is an HF Llama folder: config.json, generation_config.json, tensors, tokenizer files', async () => {
    const dir = await outDir();
    const { files } = await importLlama2c(path.join(fixtureDir, 'model.bin'), tokenizerBin, dir);
    expect(files.sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const config = JSON.parse(await fs.promises.readFile(path.join(dir, 'config.json'), 'utf-8'));
    const p = reference.params;
    expect(config).toMatchObject({
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      vocab_size: p.vocab_size,
      hidden_size: p.dim,
      intermediate_size: p.hidden_dim,
      num_hidden_layers: p.n_layers,
      num_attention_heads: p.n_heads,
      num_key_value_heads: p.n_kv_heads,
      max_position_embeddings: p.seq_len,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: false,
      bos_token_id: 1,
      eos_token_id: 2,
    });
    const header = await readSafetensorsHeader(path.join(dir, 'model.safetensors'));
    expect(header.metadata).toEqual({ format: 'pt' });
    const shapes = Object.fromEntries([...header.entries].map(([k, e]) => [k, e.shape]));
    expect(Object.keys(shapes)).toHaveLength(1 + 9 * p.n_layers + 2);
    expect(shapes['lm_head.weight']).toEqual([p.vocab_size, p.dim]);
    expect(shapes['model.layers.1.self_attn.k_proj.weight']).toEqual([16, 32]);
    expect(shapes['model.layers.0.mlp.down_proj.weight']).toEqual([32, 64]);

    const tokenizerConfig = JSON.parse(await fs.promises.readFile(path.join(dir, 'tokenizer_config.json'), 'utf-8'));
    expect(tokenizerConfig).toMatchObject({ add_bos_token: true, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', model_max_length: p.seq_len });
    const tokenizer = JSON.parse(await fs.promises.readFile(path.join(dir, 'tokenizer.json'), 'utf-8'));
    expect(tokenizer.model).toMatchObject({ type: 'BPE', byte_fallback: true, fuse_unk: true, unk_token: '<unk>' });
    expect(tokenizer.model.vocab['<0x0A>']).toBe(13);
    expect(tokenizer.model.vocab['\u2581the']).toBeGreaterThan(258);
    expect(tokenizer.added_tokens.map((t: { content: string }) => t.content)).toEqual(['<unk>', '<s>', '</s>']);

    const tied = await outDir();
    await importLlama2c(path.join(fixtureDir, 'model-tied.bin'), tokenizerBin, tied);
    expect(JSON.parse(await fs.promises.readFile(path.join(tied, 'config.json'), 'utf-8')).tie_word_embeddings).toBe(true);
    expect((await readSafetensorsHeader(path.join(tied, 'model.safetensors'))).entries.has('lm_head.weight')).toBe(false);
  });

  it('tokenizes as run.c encode() does and decodes back to the text', async () => {
    const dir = await outDir();
    await importLlama2c(path.join(fixtureDir, 'model.bin'), tokenizerBin, dir);
    const tokenizer = await loadTokenizer(dir);
    expect(tokenizer.eosTokenId).toBe(2);
    for (const { text, ids } of reference.encodings) {
      // run.c puts BOS first; the workbench's encode adds no special tokens.
      expect([1, ...tokenizer.encode(text)], JSON.stringify(text)).toEqual(ids);
      expect(tokenizer.decode(ids.slice(1))).toBe(text);
    }
    // Not vacuous: merges happen, and unknown characters fall back to bytes (<0x0A> is id 13).
    expect(reference.encodings.some((e) => e.ids.length < e.text.length)).toBe(true);
    expect(reference.encodings.find((e) => e.text.includes('\n'))!.ids).toContain(13);
  });
});

describe('conversion pieces', () => {
  it('permutes q/k rows of each head from pairs (2i, 2i+1) to halves (i, i + hs/2)', () => {
    // 2 heads of size 4, one column: row r holds r.
    const w = Float32Array.from({ length: 8 }, (_, r) => r);
    expect(Array.from(permuteForRotateHalf(w, 2, 8, 1))).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
    const wide = Float32Array.from({ length: 4 * 3 }, (_, i) => i);
    expect(Array.from(permuteForRotateHalf(wide, 1, 4, 3))).toEqual([0, 1, 2, 6, 7, 8, 3, 4, 5, 9, 10, 11]);
  });

  it('ranks merges by the merged piece score, splits of one piece by the halves ids', () => {
    const pieces = [
      '<unk>',
      '<s>',
      '</s>',
      ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`),
      '\u2581t',
      'he',
      'the',
      '\u2581the',
      '\u2581',
      't',
      'h',
      'e',
    ];
    const scores = [...new Array<number>(259).fill(0), -0, -1, -2, -3, -4, -5, -6, -7];
    expect(mergesFromScores({ pieces, scores })).toEqual([
      ['\u2581', 't'],
      ['h', 'e'],
      ['t', 'he'],
      ['\u2581t', 'he'],
      ['\u2581', 'the'],
    ]);
  });
});

describe('import errors', () => {
  const modelBytes = () => fs.readFileSync(path.join(fixtureDir, 'model.bin'));

  it('names a truncated checkpoint, a version 1/2 export, and a tokenizer of another model', async () => {
    const dir = await tempDir();
    const truncated = path.join(dir, 'truncated.bin');
    fs.writeFileSync(truncated, modelBytes().subarray(0, 1000));
    await expectError(
      importLlama2c(truncated, tokenizerBin, await outDir()),
      'format_invalid',
      /is 1000 bytes but a version-0 llama2\.c checkpoint with dim 32, .* \(untied\), seq_len 32 has \d+/,
    );

    const v1 = Buffer.from(modelBytes());
    v1.writeUInt32LE(0x616b3432, 0);
    fs.writeFileSync(path.join(dir, 'v1.bin'), v1);
    await expectError(importLlama2c(path.join(dir, 'v1.bin'), tokenizerBin, await outDir()), 'format_invalid', /version 1\/2 llama2\.c export.*--version 0/);

    await expectError(
      Promise.resolve().then(() => parseLlama2cTokenizer(fs.readFileSync(tokenizerBin), reference.params.vocab_size - 1, 'tok.bin')),
      'format_invalid',
      /tok\.bin: holds more than the model's 323 tokens/,
    );
    await expectError(
      importLlama2c(path.join(fixtureDir, 'model.bin'), path.join(dir, 'missing.bin'), await outDir()),
      'not_found',
      /Cannot read .*missing\.bin/,
    );
  });

  it('refuses to write into a non-empty folder', async () => {
    const dir = await tempDir();
    fs.writeFileSync(path.join(dir, 'keep.txt'), 'x');
    await expectError(importLlama2c(path.join(fixtureDir, 'model.bin'), tokenizerBin, dir), 'invalid_input', /already exists and is not empty/);
    expect(fs.readdirSync(dir)).toEqual(['keep.txt']);
  });
});
