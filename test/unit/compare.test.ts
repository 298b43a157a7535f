// The compare table (src-renderer/lib/compare.ts): last metric values, the config a method reads,
// adapter size and evaluation figures as rows, runs as columns, differing rows marked.
import { describe, expect, it } from 'vitest';
import { RunConfigSchema, type RunConfigInput } from '../../src-shared/config.ts';
import type { Evaluation } from '../../src-shared/eval.ts';
import type { Adapter, MetricPoint, Run } from '../../src-shared/runs.ts';
import { buildCompareRows, figureKey, flattenConfig, lastValues, type CompareInput } from '../../src-renderer/lib/compare.ts';

const run = (id: string, config: RunConfigInput): Run => ({
  id,
  name: id,
  config: RunConfigSchema.parse(config),
  status: 'completed',
  backend: null,
  createdAt: '2026-01-01T00:00:00.000Z',
  startedAt: null,
  finishedAt: null,
  error: null,
  progress: null,
  lastCheckpointStep: null,
  adapterId: `ad-${id}`,
});
const adapter = (id: string, trainableParams: number, method = 'lora'): Adapter => ({
  id: `ad-${id}`,
  runId: id,
  name: id,
  method,
  baseModel: 'default',
  path: '/a',
  step: 20,
  trainableParams,
  createdAt: '2026-01-01T00:00:00.000Z',
  description: null,
});
const point = (step: number, name: string, value: number): MetricPoint => ({ step, name, value, time: step });
const evaluation = (id: string, createdAt: string, summary: Record<string, number> | null, status: Evaluation['status'] = 'completed'): Evaluation => ({
  id,
  runId: null,
  adapterId: null,
  suite: 'bias',
  status,
  model: 'default',
  backendChoice: 'wasm',
  backend: null,
  seed: 0,
  limit: 5,
  datasets: {},
  slices: null,
  summary,
  resultPath: null,
  progress: null,
  error: null,
  createdAt,
  finishedAt: null,
});

describe('lastValues', () => {
  it('keeps the value at the highest step of each metric, the later point on a tie (a resumed run)', () => {
    const last = lastValues([
      point(1, 'train/loss', 3),
      point(5, 'train/loss', 2),
      point(5, 'train/loss', 1.5),
      point(3, 'lr', 1e-3),
      point(2, 'train/loss', 9),
    ]);
    expect([...last]).toEqual([
      ['train/loss', 1.5],
      ['lr', 1e-3],
    ]);
  });
});

describe('flattenConfig', () => {
  it('names leaves by their path and joins lists', () => {
    expect([...flattenConfig({ a: { b: 1, c: ['x', 'y'] }, d: null })]).toEqual([
      ['a.b', 1],
      ['a.c', 'x, y'],
      ['d', null],
    ]);
  });
});

describe('buildCompareRows', () => {
  const inputs: CompareInput[] = [
    {
      run: run('r1', { method: 'lora', lora: { r: 8 }, training: { learningRate: 1e-3 } }),
      metrics: [point(10, 'train/loss', 2.5), point(10, 'val/loss', 2.7), point(10, 'grad_norm', 1)],
      adapter: adapter('r1', 1000),
      evaluations: [
        evaluation('e-old', '2026-01-01T00:00:00.000Z', { 'crowsPairs.biasScore': 0.9 }),
        evaluation('e-new', '2026-01-02T00:00:00.000Z', { 'crowsPairs.overall.count': 3, 'crowsPairs.biasScore': 0.4, 'crowsPairs.overall.stereoPercent': 70 }),
        evaluation('e-failed', '2026-01-03T00:00:00.000Z', null, 'failed'),
      ],
    },
    {
      run: run('r2', { method: 'selora', lora: { r: 16 }, training: { learningRate: 1e-3 } }),
      metrics: [point(10, 'train/loss', 2.1), point(10, 'grad_norm', 1), point(10, 'L_sem', 0.3)],
      adapter: adapter('r2', 2500, 'selora'),
      evaluations: [evaluation('e2', '2026-01-02T00:00:00.000Z', { 'crowsPairs.biasScore': 0.4 })],
    },
  ];
  const rows = buildCompareRows(inputs);
  const row = (section: string, key: string) => rows.find((r) => r.section === section && r.key === key);

  it('puts losses first, then the other metrics, with a gap where a run lacks one', () => {
    const training = rows.filter((r) => r.section === 'Training').map((r) => r.key);
    expect(training).toEqual(['train/loss', 'val/loss', 'grad_norm', 'L_sem']);
    expect(row('Training', 'train/loss')).toMatchObject({ cells: [2.5, 2.1], differs: true });
    expect(row('Training', 'grad_norm')).toMatchObject({ cells: [1, 1], differs: false });
    // One value and a gap is not a difference: there is nothing to compare it with.
    expect(row('Training', 'val/loss')).toMatchObject({ cells: [2.7, null], differs: false });
  });

  it('shows the config each method reads and marks what differs', () => {
    expect(row('Config', 'method')).toMatchObject({ cells: ['lora', 'selora'], differs: true });
    expect(row('Config', 'lora.r')).toMatchObject({ cells: [8, 16], differs: true });
    expect(row('Config', 'training.learningRate')).toMatchObject({ cells: [1e-3, 1e-3], differs: false });
    // SeLoRA's settings exist in every stored config but only the SeLoRA run reads them.
    expect(row('Config', 'selora.hiddenSize')?.cells).toEqual([null, 16]);
    expect(row('Config', 'biasAware.lambdaBias')).toBeUndefined();
  });

  it('compares the adapters and the latest completed evaluation figures of each suite', () => {
    expect(row('Adapter', 'trainable params')).toMatchObject({ cells: [1000, 2500], differs: true });
    expect(row('Evaluation', 'bias: crowsPairs.biasScore')).toMatchObject({ cells: [0.4, 0.4], differs: false });
    expect(row('Evaluation', 'bias: crowsPairs.overall.stereoPercent')?.cells).toEqual([70, null]);
  });

  it('lists the headline figures of the evaluations list before the other figures', () => {
    expect(rows.filter((r) => r.section === 'Evaluation').map((r) => r.key)).toEqual([
      'bias: crowsPairs.biasScore',
      'bias: crowsPairs.overall.stereoPercent',
      'bias: crowsPairs.overall.count',
    ]);
    expect(figureKey('robustness', 'robustness.original.base.accuracy')).toBe('robustness: original.base.accuracy');
    expect(figureKey('bias', 'bbq.overall.ambig.accuracy')).toBe('bias: bbq.overall.ambig.accuracy');
  });
});
