// Robustness runs on gpt2-tiny: the level-0 points are the unperturbed figures, base and adapter see
// the same perturbed inputs, the worst case is the minimum over families, and the reported
// per-example changes are exactly the examples whose score moved.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoraSettingsSchema } from '../../src-shared/config.ts';
import { perturbationFamilies } from '../../src-shared/eval.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { readQqp, type QqpPair } from '../../src-worker/data/readers/qqp.ts';
import { PERTURBATION_FAMILIES, perturb } from '../../src-worker/eval/perturb.ts';
import { runRobustness } from '../../src-worker/eval/robustness.ts';
import { runQqpSuite, type SuiteContext } from '../../src-worker/eval/suites.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { readSafetensorsFile } from '../../src-worker/formats/safetensors.ts';
import { loadTokenizer } from '../../src-worker/formats/tokenizer.ts';
import { lora } from '../../src-worker/methods/lora.ts';
import type { AdapterModel } from '../../src-worker/methods/types.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
const modelDir = path.join(fixtures, 'gpt2-tiny');

let ctx: SuiteContext;
let adapter: AdapterModel;
let pairs: QqpPair[];

beforeAll(async () => {
  await initBackend('cpu');
  const model = await loadCausalLM(modelDir);
  ctx = { model, tokenizer: await loadTokenizer(modelDir), adapters: null, batchSize: 8 };
  adapter = lora.create(model, LoraSettingsSchema.parse({ r: 4, alpha: 8, dropout: 0, targetModules: ['c_attn'] }), 0);
  adapter.loadStateDict((await readSafetensorsFile(path.join(modelDir, 'lora-c_attn', 'adapter_model.safetensors'))).tensors);
  const base = await readQqp(path.join(fixtures, 'datasets', 'qqp.tsv'));
  pairs = base.filter((p) => p.label !== null);
});
afterAll(() => {
  adapter.dispose();
  ctx.model.dispose();
});

describe('runRobustness', () => {
  it('evaluates base and adapter on the same perturbed inputs at each level', async () => {
    const families = ['typo', 'word-dropout'] as const;
    const progress: number[] = [];
    const r = await runRobustness({
      ...ctx,
      adapters: adapter,
      task: { kind: 'qqp', pairs },
      families: [...families],
      seed: 3,
      onProgress: (d) => progress.push(d),
    });
    expect(r.levels).toEqual([0, 0.1, 0.2, 0.3, 0.4]);
    expect(r.curves).toHaveLength(2 * 5);
    expect(progress.at(-1)).toBe(pairs.length * 2 * (1 + 2 * 4));

    const original = await runQqpSuite({ ...ctx, pairs });
    expect(r.original.base.accuracy).toBeCloseTo(original.scores.accuracy, 9);
    for (const point of r.curves.filter((p) => p.level === 0)) expect(point.base).toEqual(r.original.base);

    // The 0.4 typo point equals scoring the perturbed pairs directly, for base and adapter alike.
    const perturbed = pairs.map((p) => ({ ...p, question1: perturb(p.question1, 'typo', 0.4, 3).text, question2: perturb(p.question2, 'typo', 0.4, 3).text }));
    const direct = await runQqpSuite({ ...ctx, pairs: perturbed });
    const directAdapter = await runQqpSuite({ ...ctx, adapters: adapter, pairs: perturbed });
    const point = r.curves.find((p) => p.family === 'typo' && p.level === 0.4)!;
    expect(point.base.mcc).toBeCloseTo(direct.scores.mcc, 9);
    expect(point.adapter!.accuracy).toBeCloseTo(directAdapter.scores.accuracy, 9);

    // Changes list exactly the examples whose correctness moved.
    const moved = direct.items.filter((item, i) => (item.prediction === item.label) !== (original.items[i]!.prediction === original.items[i]!.label)).length;
    const listed = r.changes.filter((c) => c.family === 'typo' && c.level === 0.4 && c.base.original !== c.base.perturbed).length;
    expect(listed).toBe(moved);

    for (const w of r.worstCase) {
      const values = r.curves.filter((p) => p.level === w.level).map((p) => p.base.accuracy!);
      expect(w.base.value).toBe(Math.min(...values));
      expect(w.adapter).not.toBeNull();
    }
  });

  it('rejects an empty family list and reports base only without an adapter', async () => {
    await expect(runRobustness({ ...ctx, task: { kind: 'qqp', pairs }, families: [], seed: 0 })).rejects.toThrow(/at least one perturbation family/);
    const r = await runRobustness({ ...ctx, task: { kind: 'qqp', pairs }, families: ['synonym'], levels: [0, 0.2], seed: 0, limit: 2 });
    expect(r.count).toBe(2);
    expect(r.curves.map((p) => p.level)).toEqual([0, 0.2]);
    expect(r.curves.every((p) => p.adapter === null)).toBe(true);
  });

  it('offers the same families in the job schema as perturb.ts implements', () => {
    // A literal, so that adding or dropping a family is a deliberate change to this test too.
    const expected = [
      'typo',
      'char-swap',
      'char-drop',
      'char-insert',
      'char-keyboard',
      'misspelling',
      'word-dropout',
      'word-swap',
      'synonym',
      'contraction',
      'expansion',
      'extra-space',
      'filler',
      'name-swap',
      'demographic-swap',
      'dialect',
    ];
    expect([...perturbationFamilies]).toEqual(expected);
    expect([...PERTURBATION_FAMILIES]).toEqual(expected);
  });
});
