// The embedded default model and sample dataset are what their READMEs claim: the card's hash and
// shape facts match the committed files, the weights carry HF GPT-2 names and shapes, the tokenizer
// encodes like the Python BPE that trained the model, and the sample data regenerates byte for byte.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildSampleRows, toJsonl } from '../../scripts/make-sample-data.ts';
import { findMismatches, loadTokenizer } from '../../scripts/default-model/tokenizer-parity.ts';

const root = path.join(import.meta.dirname, '..', '..');
const modelDir = path.join(root, 'resources', 'models', 'default');
const sampleDir = path.join(root, 'resources', 'datasets', 'sample');
const python = '/usr/bin/python3';

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;

/** The "| key | value |" rows of the card's Facts table, backticks stripped. */
function cardFacts(): Map<string, string> {
  const card = fs.readFileSync(path.join(modelDir, 'README.md'), 'utf8');
  const section = card.split('## Facts')[1]?.split('\n## ')[0];
  if (!section) throw new Error('README.md has no "## Facts" section');
  const facts = new Map<string, string>();
  for (const line of section.split('\n')) {
    const m = /^\| ([^|]+?) \| ([^|]+?) \|$/.exec(line.trim());
    if (m && m[1] !== 'key' && !m[1]!.startsWith('---')) facts.set(m[1]!, m[2]!.replaceAll('`', ''));
  }
  return facts;
}

interface TensorInfo {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

function safetensorsHeader(file: string): { tensors: Map<string, TensorInfo>; metadata: unknown; dataBytes: number } {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const { __metadata__: metadata, ...rest } = header;
  return { tensors: new Map(Object.entries(rest as Record<string, TensorInfo>)), metadata, dataBytes: buf.length - 8 - n };
}

describe('default model card', () => {
  const facts = cardFacts();
  const config = readJson(path.join(modelDir, 'config.json'));
  const weights = path.join(modelDir, 'model.safetensors');

  it('states the SHA-256 and size of the committed model.safetensors', () => {
    const bytes = fs.readFileSync(weights);
    expect(facts.get('model.safetensors SHA-256')).toBe(sha256(bytes));
    expect(Number(facts.get('model.safetensors bytes'))).toBe(bytes.length);
    expect(bytes.length).toBeLessThanOrEqual(20 * 1024 * 1024);
  });

  it('describes the shape config.json has, in HF GPT-2 form', () => {
    for (const key of ['n_embd', 'n_layer', 'n_head', 'n_positions', 'vocab_size']) {
      expect(config[key], key).toBe(Number(facts.get(key)));
    }
    expect(config).toMatchObject({
      model_type: 'gpt2',
      architectures: ['GPT2LMHeadModel'],
      activation_function: 'gelu_new',
      layer_norm_epsilon: 1e-5,
      tie_word_embeddings: true,
      torch_dtype: 'float32',
      n_ctx: config.n_positions,
    });
    expect(config.bos_token_id).toBe(config.eos_token_id);
  });

  it('stores HF GPT-2 tensors whose shapes follow the config and add up to the stated parameter count', () => {
    const { tensors, metadata, dataBytes } = safetensorsHeader(weights);
    const e = config.n_embd as number;
    const expected = new Map<string, number[]>([
      ['transformer.wte.weight', [config.vocab_size as number, e]],
      ['transformer.wpe.weight', [config.n_positions as number, e]],
      ['transformer.ln_f.weight', [e]],
      ['transformer.ln_f.bias', [e]],
    ]);
    for (let i = 0; i < (config.n_layer as number); i++) {
      const p = `transformer.h.${i}.`;
      for (const ln of ['ln_1', 'ln_2']) {
        expected.set(`${p}${ln}.weight`, [e]);
        expected.set(`${p}${ln}.bias`, [e]);
      }
      // Conv1D layout: [in, out].
      expected.set(`${p}attn.c_attn.weight`, [e, 3 * e]).set(`${p}attn.c_attn.bias`, [3 * e]);
      expected.set(`${p}attn.c_proj.weight`, [e, e]).set(`${p}attn.c_proj.bias`, [e]);
      expected.set(`${p}mlp.c_fc.weight`, [e, 4 * e]).set(`${p}mlp.c_fc.bias`, [4 * e]);
      expected.set(`${p}mlp.c_proj.weight`, [4 * e, e]).set(`${p}mlp.c_proj.bias`, [e]);
    }
    expect(new Set(tensors.keys())).toEqual(new Set(expected.keys())); // lm_head is tied, so absent
    let params = 0;
    const spans: Array<[number, number]> = [];
    for (const [name, info] of tensors) {
      expect(info.dtype, name).toBe('F32');
      expect(info.shape, name).toEqual(expected.get(name));
      const numel = info.shape.reduce((a, b) => a * b, 1);
      expect(info.data_offsets[1] - info.data_offsets[0], name).toBe(4 * numel);
      params += numel;
      spans.push(info.data_offsets);
    }
    spans.sort((a, b) => a[0] - b[0]);
    spans.forEach(([start], i) => expect(start).toBe(i === 0 ? 0 : spans[i - 1]![1]));
    expect(spans.at(-1)![1]).toBe(dataBytes);
    expect(params).toBe(Number(facts.get('parameters')));
    expect(metadata).toEqual({ format: 'pt' });
  });

  it('reports validation perplexity and the three sample generations', () => {
    const card = fs.readFileSync(path.join(modelDir, 'README.md'), 'utf8');
    const ppl = [...card.matchAll(/^\| (King James|WordNet)[^|]*\| \d+ \| ([\d.]+) \|$/gm)].map((m) => Number(m[2]));
    expect(ppl).toHaveLength(2);
    for (const p of ppl) expect(p).toBeGreaterThan(1);
    for (const prompt of ['"And God said"', '"Question: What is the opposite of hot?\\nAnswer:"', '"The man"']) {
      expect(card).toContain(`prompt \`${prompt}\``);
    }
  });
});

describe('default model tokenizer', () => {
  const tokenizer = loadTokenizer(modelDir);
  const config = readJson(path.join(modelDir, 'config.json'));
  const rows = fs
    .readFileSync(path.join(sampleDir, 'train.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { prompt: string; completion: string });

  it('has a vocabulary of vocab_size with <|endoftext|> as the eos id', () => {
    const vocab = (readJson(path.join(modelDir, 'tokenizer.json')).model as { vocab: Record<string, number> }).vocab;
    expect(Object.keys(vocab)).toHaveLength(config.vocab_size as number);
    expect(tokenizer.encode('<|endoftext|>', { add_special_tokens: false }).ids).toEqual([config.eos_token_id]);
    expect(tokenizer.encode('Question: What is the opposite of hot?\nAnswer: cold').ids.length).toBeLessThan(20);
  });

  it('lists merges in training order: each merge makes a token no later than itself, from earlier tokens', () => {
    const model = readJson(path.join(modelDir, 'tokenizer.json')).model as { vocab: Record<string, number>; merges: string[] };
    const byteTokens = Object.entries(model.vocab)
      .filter(([, id]) => id < 256)
      .map(([t]) => t);
    expect(byteTokens.every((t) => [...t].length === 1)).toBe(true);
    model.merges.forEach((merge, i) => {
      const [a, b] = merge.split(' ') as [string, string];
      const id = model.vocab[a + b]!;
      expect(id, merge).toBeLessThanOrEqual(256 + i);
      expect(Math.max(model.vocab[a]!, model.vocab[b]!), merge).toBeLessThan(id);
    });
    expect(model.merges).toHaveLength((config.vocab_size as number) - 257);
  });

  it.skipIf(!fs.existsSync(python))('encodes a few hundred strings exactly as the Python BPE that trained the model', () => {
    const texts = [
      ...rows.slice(0, 300).map((r) => r.prompt + r.completion),
      'In the beginning God created the heaven and the earth.',
      "Don't  stop\t\tnow 1234 ...",
      'café 中文 🙂',
      ' ',
      '',
    ];
    const res = spawnSync(python, [path.join(root, 'scripts', 'default-model', 'bpe.py'), 'encode', path.join(modelDir, 'tokenizer.json')], {
      input: JSON.stringify(texts),
      encoding: 'utf8',
    });
    expect(res.status, res.stderr).toBe(0);
    const ids = JSON.parse(res.stdout) as number[][];
    const mismatches = findMismatches(
      tokenizer,
      texts.map((text, i) => ({ text, ids: ids[i]! })),
    );
    expect(mismatches).toEqual([]);
  });
});

describe('sample dataset', () => {
  const jsonl = fs.readFileSync(path.join(sampleDir, 'train.jsonl'), 'utf8');
  const readme = fs.readFileSync(path.join(sampleDir, 'README.md'), 'utf8');

  it('is what scripts/make-sample-data.ts generates, byte for byte', () => {
    expect(toJsonl(buildSampleRows())).toBe(jsonl);
  });

  it('has the row count and SHA-256 its README states, and only prompt/completion string rows', () => {
    const lines = jsonl.trim().split('\n');
    expect(readme).toContain(`- Rows: ${lines.length}`);
    expect(readme).toContain(`- SHA-256 of train.jsonl: \`${sha256(jsonl)}\``);
    expect(lines.length).toBeGreaterThanOrEqual(1000);
    expect(lines.length).toBeLessThanOrEqual(3000);
    const prompts = new Set<string>();
    for (const line of lines) {
      const row = JSON.parse(line) as Record<string, unknown>;
      expect(Object.keys(row).sort()).toEqual(['completion', 'prompt']);
      expect(typeof row.prompt === 'string' && typeof row.completion === 'string').toBe(true);
      expect((row.completion as string).startsWith(' ')).toBe(true);
      prompts.add(row.prompt as string);
    }
    expect(prompts.size).toBe(lines.length);
  });
});
