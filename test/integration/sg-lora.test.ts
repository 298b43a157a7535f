// SG-LoRA end to end: two tiny adapters trained by the real worker on test/fixtures/gpt2-tiny, described,
// then generated from through AdapterBank (a real one-shot worker), registered and exported.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunConfigInput } from '../../src-shared/config.ts';
import { AdapterBank } from '../../src-main/adapter-bank.ts';
import { findAppRoot, resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { RunManager } from '../../src-main/runs.ts';
import { Store } from '../../src-main/store/index.ts';
import { maxAbsDiff, readProbe } from '../../src-worker/export/probe.ts';

const appRoot = findAppRoot(path.dirname(fileURLToPath(import.meta.url)));
const modelDir = path.join(appRoot, 'test', 'fixtures', 'gpt2-tiny');

let dataDir: string;
let paths: WorkbenchPaths;
let store: Store;
let manager: RunManager;
let bank: AdapterBank;

function taskFile(name: string, rows: { prompt: string; completion: string }[]): string {
  const file = path.join(dataDir, `${name}.jsonl`);
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

const trainConfig = (name: string, dataset: string, seed: number): RunConfigInput => ({
  name,
  model: modelDir,
  dataset,
  backend: 'cpu',
  lora: { r: 4, alpha: 8, dropout: 0, targetModules: ['c_attn', 'c_proj'] },
  training: {
    maxSteps: 8,
    batchSize: 4,
    maxSeqLen: 32,
    learningRate: 3e-2,
    warmupSteps: 0,
    checkpointEvery: 8,
    evalEvery: 8,
    evalBatches: 1,
    seed,
    validationFraction: 0.1,
  },
});

beforeAll(() => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'lw-sg-lora-'));
  paths = resolvePaths({ dataDir });
  store = Store.open(paths.dbFile);
  manager = new RunManager({ store, paths });
  bank = new AdapterBank({ store, paths });
});
afterAll(async () => {
  await bank?.close();
  await manager?.close();
  store?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('SG-LoRA through the real worker', () => {
  it('generates from two trained experts, registers the adapter and exports it', async () => {
    const words = ['salt', 'bread', 'stone', 'river', 'cloud', 'green', 'apple', 'table', 'chair', 'light', 'night', 'house'];
    const spell = taskFile(
      'spell',
      words.map((w) => ({ prompt: `Spell ${w}:`, completion: ` ${w.split('').join('-')}` })),
    );
    const sentiment = taskFile(
      'sentiment',
      words.map((w, i) => ({ prompt: `The ${w} was ${i % 2 ? 'bad' : 'good'}. Mood:`, completion: i % 2 ? ' negative' : ' positive' })),
    );
    const experts = [];
    for (const [name, file, seed] of [
      ['speller', spell, 1],
      ['sentiment', sentiment, 2],
    ] as const) {
      const run = await manager.waitForRun((await manager.start(trainConfig(name, file, seed))).id);
      expect(run.error).toBeNull();
      experts.push(store.adapters.require(run.adapterId!));
    }
    // Training describes an adapter by its run's name until someone edits it.
    expect(experts.map((a) => a.description)).toEqual(['speller', 'sentiment']);
    await bank.describe({ adapterId: experts[0]!.id, description: 'Spell a word letter by letter with dashes.' });
    await bank.describe({ adapterId: experts[1]!.id, description: 'Say whether a short review is positive or negative.' });

    const merged = await bank.generate({
      name: 'speller-2',
      description: 'Spell each word letter by letter.',
      topK: 2,
      temperature: 0.1,
      r: 4,
      backend: 'cpu',
    });
    expect(merged.generator).toBe('semantic-merge');
    expect(merged.experts.map((e) => e.adapterId).sort()).toEqual(experts.map((a) => a.id).sort());
    expect(merged.experts.reduce((s, e) => s + e.weight, 0)).toBeCloseTo(1, 6);
    for (const e of merged.experts) expect(e.cosine).toBeGreaterThan(-1);
    // Rank 4 from two rank-4 experts: the truncation loses something, and says so.
    expect(merged.truncationError).toBeGreaterThan(0);
    const adapter = store.adapters.require(merged.adapterId);
    expect(adapter).toMatchObject({ method: 'sg-lora', name: 'speller-2', baseModel: modelDir, description: 'Spell each word letter by letter.' });
    expect(store.runs.require(adapter.runId)).toMatchObject({ status: 'completed', adapterId: adapter.id });
    const peft = JSON.parse(readFileSync(path.join(adapter.path, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(peft).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 4, target_modules: ['c_attn', 'c_proj'] });

    const report = await manager.exportAdapter({ adapterId: adapter.id, outDir: path.join(dataDir, 'export-merged') });
    expect(report.verification.passed).toBe(true);

    // k = 1 at the expert's rank reproduces that expert: same probe, same logits.
    const single = await bank.generate({
      name: 'speller-copy',
      description: 'Spell a word letter by letter with dashes.',
      expertIds: experts.map((a) => a.id),
      topK: 1,
      r: 4,
      backend: 'cpu',
    });
    const top = single.experts.find((e) => e.weight === 1)!;
    const source = store.adapters.require(top.adapterId);
    const expected = await readProbe(source.path);
    const got = await readProbe(single.path);
    expect(got!.probe).toEqual(expected!.probe);
    expect(maxAbsDiff(got!.logits.data, expected!.logits.data)).toBeLessThan(1e-4);

    const sampled = await bank.generate({
      name: 'speller-cvae',
      description: 'Spell each word letter by letter.',
      generator: 'cvae',
      samples: 3,
      r: 4,
      backend: 'cpu',
      seed: 3,
    });
    expect(sampled.candidates).toHaveLength(3);
    expect(sampled.candidates!.filter((c) => c.chosen)).toHaveLength(1);
    const chosen = sampled.candidates!.find((c) => c.chosen)!;
    expect(chosen.distanceToMerge).toBe(Math.min(...sampled.candidates!.map((c) => c.distanceToMerge)));
    expect(existsSync(path.join(sampled.path, 'adapter_model.safetensors'))).toBe(true);
  }, 240_000);

  it('refuses experts without a description, naming them', async () => {
    const file = taskFile(
      'plain',
      Array.from({ length: 8 }, (_, i) => ({ prompt: `n ${i}:`, completion: ` ${i}` })),
    );
    const run = await manager.waitForRun((await manager.start({ ...trainConfig('', file, 4) })).id);
    const unnamed = store.adapters.require(run.adapterId!);
    expect(unnamed.description).toBeNull();
    await expect(bank.generate({ name: 'x', description: 'anything', expertIds: [unnamed.id] })).rejects.toThrow(/no task description/);
  }, 120_000);
});
