// The whole bias suite on the embedded default model (resources/models/default) with the wasm
// backend, on 100-item slices of the real CrowS-Pairs, StereoSet and BBQ files in ../shared/data:
// the figures must be well formed (percentages in range, counts matching the slices, every
// category of the slice reported) and the slices recorded with their hashes.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { EvalJobSchema, type EvalResult } from '../../src-shared/eval.ts';
import { readBbq } from '../../src-worker/data/readers/bbq.ts';
import { readCrowsPairs } from '../../src-worker/data/readers/crows-pairs.ts';
import { runEvalJob, hashDatasetPath } from '../../src-worker/eval/job.ts';
import { evenSlice } from '../../src-worker/eval/suites.ts';

const repoRoot = join(import.meta.dirname, '..', '..');
const DATA = join(repoRoot, '..', 'shared', 'data');
/** BIAS_SUITE_LIMIT runs a smaller slice for a quick check. */
const LIMIT = Number(process.env.BIAS_SUITE_LIMIT ?? 100);
const paths = {
  crowsPairs: join(DATA, 'crows-pairs', 'crows_pairs_anonymized.csv'),
  stereoSet: join(DATA, 'stereoset'),
  bbq: join(DATA, 'bbq'),
};

let result: EvalResult;

beforeAll(async () => {
  if (!existsSync(DATA)) throw new Error(`The shared datasets are not at ${DATA}; npm run test:shared needs them there.`);
  const job = EvalJobSchema.parse({
    type: 'eval',
    modelDir: join(repoRoot, 'resources', 'models', 'default'),
    adapterDir: null,
    suite: 'bias',
    datasets: paths,
    limit: LIMIT,
    seed: 0,
    backend: 'wasm',
    batchSize: 16,
  });
  result = await runEvalJob(job);
}, 600_000);

const inRange = (v: number, lo: number, hi: number) => {
  expect(Number.isFinite(v)).toBe(true);
  expect(v).toBeGreaterThanOrEqual(lo);
  expect(v).toBeLessThanOrEqual(hi);
};

describe('bias suite on the default model', () => {
  it('records backend, slices and hashes', async () => {
    expect(result.backend.name).toBe('wasm');
    expect(result.adapter).toBeNull();
    expect(result.slices.map((s) => [s.dataset, s.count, s.limit])).toEqual([
      ['crows-pairs', LIMIT, LIMIT],
      ['stereoset', LIMIT, LIMIT],
      ['bbq', LIMIT, LIMIT],
    ]);
    expect(result.slices[2]!.sha256).toBe(await hashDatasetPath(paths.bbq));
  });

  it('CrowS-Pairs: per-category and overall percentages, mean difference and Bias Score', async () => {
    const c = result.bias!.crowsPairs!;
    expect(c.overall.count).toBe(LIMIT);
    expect(c.items).toHaveLength(LIMIT);
    const slice = evenSlice(await readCrowsPairs(paths.crowsPairs), LIMIT);
    const expected: Record<string, number> = {};
    for (const p of slice) expected[p.biasType] = (expected[p.biasType] ?? 0) + 1;
    expect(Object.fromEntries(Object.entries(c.byBiasType).map(([k, v]) => [k, v.count]))).toEqual(expected);
    for (const s of [c.overall, ...Object.values(c.byBiasType)]) {
      inRange(s.stereoPercent, 0, 100);
      inRange(s.stereoPercent + s.tiePercent, 0, 100);
      expect(Number.isFinite(s.meanLogLikDiff)).toBe(true);
    }
    inRange(c.biasScore, 0, 1);
    // Log-likelihoods of real sentences are negative and finite.
    for (const i of c.items) expect(i.logLikMore < 0 && i.logLikLess < 0 && Number.isFinite(i.logLikMore)).toBe(true);
  });

  it('StereoSet: lms, ss and icat in range for the intrasentence files', () => {
    const s = result.bias!.stereoSet!;
    expect(s.items).toHaveLength(LIMIT);
    const intra = s.intrasentence!;
    expect(intra.overall.count + (s.intersentence?.overall.count ?? 0)).toBe(LIMIT);
    for (const v of [intra.overall, intra.pooled, ...Object.values(intra.byBiasType)]) {
      inRange(v.lms, 0, 100);
      inRange(v.ss, 0, 100);
      inRange(v.icat, 0, 100);
    }
    expect(Object.keys(intra.byBiasType).sort()).toEqual(['race', 'religion']);
  });

  it('Counterfactual fairness: BBQ items against their term-swapped twins, over the items the swap changed', async () => {
    const cf = result.bias!.counterfactual!;
    expect(cf.total).toBe(LIMIT);
    expect(cf.count).toBe(cf.items.length);
    expect(cf.count).toBeGreaterThan(0);
    inRange(cf.accuracyGap!, -1, 1);
    inRange(cf.meanAbsProbabilityGap!, 0, 1);
    inRange(cf.flipRate!, 0, 1);
    expect(cf.maxAbsProbabilityGap!).toBeGreaterThanOrEqual(cf.meanAbsProbabilityGap!);
  });

  it('BBQ: accuracy and bias score per context condition and category', async () => {
    const b = result.bias!.bbq!;
    const slice = evenSlice(await readBbq(paths.bbq), LIMIT);
    expect(b.items).toHaveLength(LIMIT);
    expect(Object.keys(b.byCategory).sort()).toEqual([...new Set(slice.map((e) => e.category))].sort());
    expect(b.overall.ambig!.count).toBe(slice.filter((e) => e.contextCondition === 'ambig').length);
    expect(b.overall.disambig!.count).toBe(slice.filter((e) => e.contextCondition === 'disambig').length);
    for (const scores of [b.overall, ...Object.values(b.byCategory)]) {
      for (const c of [scores.ambig, scores.disambig]) {
        if (!c) continue;
        inRange(c.accuracy, 0, 1);
        inRange(c.biasScore, -1, 1);
        expect(c.biasedAnswers).toBeLessThanOrEqual(c.nonUnknownAnswers);
        expect(c.nonUnknownAnswers + c.withoutTarget).toBeLessThanOrEqual(c.count);
      }
    }
  });
});
