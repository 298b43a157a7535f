// The evaluation panels' data shaping (src-renderer/lib/eval-view.ts): bars per category, the items that
// moved between base model and adapter, robustness curves, and the list's headline figures read from the
// summary the main process really stores (summarize()).
import { describe, expect, it } from 'vitest';
import type { EvalResult, Evaluation } from '../../src-shared/eval.ts';
import { summarize } from '../../src-main/evals.ts';
import {
  ADAPTER_DASH,
  bbqAnswerKind,
  metricBounded,
  bbqBars,
  bbqChanges,
  crowsBars,
  crowsMoves,
  hasBars,
  headlineFigures,
  matchingBase,
  robustnessChangeRows,
  robustnessCurves,
  robustnessMetrics,
  stereoSetBars,
} from '../../src-renderer/lib/eval-view.ts';

const common = {
  modelDir: '/m',
  backend: { name: 'wasm' as const, adapter: 'XNNPACK' },
  seed: 0,
  slices: [],
  startedAt: '2026-01-01T00:00:00.000Z',
  finishedAt: '2026-01-01T00:00:05.000Z',
  durationMs: 5000,
  notes: [],
};
const adapterInfo = { dir: '/a', method: 'lora', runId: 'run-1', step: 10, trainableParams: 100 };
const crowsScores = (stereoPercent: number, count = 2) => ({
  count,
  stereoPercent,
  tiePercent: 0,
  meanLogLikDiff: 1,
  stereoDirectionPercent: null,
  antistereoDirectionPercent: null,
});
const ssScores = (ss: number, lms = 90) => ({ count: 2, lms, ss, icat: (lms * Math.min(ss, 100 - ss)) / 50 });
const bbqCondition = (accuracy: number, biasScore: number) => ({ count: 2, accuracy, biasScore, biasedAnswers: 1, nonUnknownAnswers: 2, withoutTarget: 0 });

type BbqItem = NonNullable<NonNullable<EvalResult['bias']>['bbq']>['items'][number];
const bbqItem = (id: string, prediction: 0 | 1 | 2, extra: Partial<BbqItem> = {}): BbqItem => ({
  id,
  category: 'Age',
  contextCondition: 'ambig',
  questionPolarity: 'neg',
  label: 2,
  prediction,
  unknownIndex: 2,
  stereotypedIndex: 0,
  scores: [-1, -2, -3],
  ...extra,
});

function biasResult(options: { adapter: boolean; crows: Record<string, number>; gaps: [number, number][]; bbqPredictions: (0 | 1 | 2)[] }): EvalResult {
  return {
    ...common,
    suite: 'bias',
    adapter: options.adapter ? adapterInfo : null,
    bias: {
      crowsPairs: {
        overall: crowsScores(60, 4),
        byBiasType: Object.fromEntries(Object.entries(options.crows).map(([k, v]) => [k, crowsScores(v)])),
        biasScore: 0.2,
        items: options.gaps.map(([more, less], id) => ({
          id,
          biasType: id % 2 ? 'gender' : 'age',
          direction: 'stereo' as const,
          logLikMore: more,
          logLikLess: less,
        })),
      },
      stereoSet: {
        intrasentence: { overall: ssScores(55), pooled: ssScores(55), byBiasType: { race: ssScores(60), gender: ssScores(50) } },
        intersentence: null,
        items: [],
      },
      bbq: {
        overall: { ambig: bbqCondition(0.5, 0.25), disambig: null },
        byCategory: { Age: { ambig: bbqCondition(0.5, 0.25), disambig: null } },
        items: options.bbqPredictions.map((p, i) => bbqItem(`Age/${i}`, p)),
      },
      representationShift: options.adapter ? { count: 4, shift: 0.01 } : null,
    },
  };
}

describe('bars per category', () => {
  const base = { label: 'base model', result: biasResult({ adapter: false, crows: { age: 100, gender: 50 }, gaps: [], bbqPredictions: [] }) };
  const adapter = { label: 'my-adapter', result: biasResult({ adapter: true, crows: { age: 50, religion: 0 }, gaps: [], bbqPredictions: [] }) };

  it('puts overall first, then the union of categories sorted, with a gap where a subject lacks one', () => {
    const data = crowsBars([base, adapter]);
    expect(data.labels).toEqual(['overall', 'age', 'gender', 'religion']);
    expect(data.series.map((s) => s.label)).toEqual(['base model', 'my-adapter']);
    expect(data.series[0]!.values).toEqual([60, 100, 50, null]);
    expect(data.series[1]!.values).toEqual([60, 50, null, 0]);
    expect(data.series[0]!.color).not.toBe(data.series[1]!.color);
  });

  it('reads the StereoSet figure asked for, and leaves a missing task empty', () => {
    const ss = stereoSetBars([base], 'intrasentence', 'icat');
    expect(ss.labels).toEqual(['overall', 'gender', 'race']);
    expect(ss.series[0]!.values).toEqual([81, 90, 72]);
    const inter = stereoSetBars([base], 'intersentence', 'ss');
    expect(hasBars(inter)).toBe(false);
  });

  it('reads BBQ per condition; a condition with no items is a gap, not zero', () => {
    expect(bbqBars([base], 'ambig', 'biasScore').series[0]!.values).toEqual([0.25, 0.25]);
    const disambig = bbqBars([base], 'disambig', 'accuracy');
    expect(disambig.series[0]!.values).toEqual([null, null]);
    expect(hasBars(disambig)).toBe(false);
  });
});

describe('what moved between base model and adapter', () => {
  it('matches CrowS-Pairs pairs by id and sorts by the size of the change of the gap', () => {
    const base = biasResult({
      adapter: false,
      crows: {},
      gaps: [
        [-10, -12],
        [-20, -19],
        [-5, -5.5],
      ],
      bbqPredictions: [],
    });
    const adapter = biasResult({
      adapter: true,
      crows: {},
      gaps: [
        [-10, -11.5],
        [-20, -25],
        [-5, -5.5],
      ],
      bbqPredictions: [],
    });
    // Pair 2 is missing from the base result: it cannot be compared and is left out.
    adapter.bias!.crowsPairs!.items.push({ id: 9, biasType: 'age', direction: 'stereo', logLikMore: 0, logLikLess: -100 });
    const moves = crowsMoves(base, adapter);
    expect(moves.map((m) => m.id)).toEqual([1, 0, 2]);
    expect(moves[0]).toMatchObject({ id: 1, base: -1, adapter: 5, change: 6, flipped: true, biasType: 'gender' });
    expect(moves[1]!.change).toBeCloseTo(-0.5);
    expect(moves[1]!.flipped).toBe(false);
    expect(moves[2]!.change).toBe(0);
    expect(crowsMoves(base, adapter, 1)).toHaveLength(1);
  });

  it('lists the BBQ items whose answer changed, fixes and regressions first', () => {
    const base = biasResult({ adapter: false, crows: {}, gaps: [], bbqPredictions: [2, 0, 1, 0] });
    const adapter = biasResult({ adapter: true, crows: {}, gaps: [], bbqPredictions: [2, 1, 0, 2] });
    const changes = bbqChanges(base, adapter);
    expect(changes.map((c) => c.id)).toEqual(['Age/3', 'Age/1', 'Age/2']);
    expect(changes[0]!.base).toEqual({ prediction: 0, kind: 'biased' });
    expect(changes[0]!.adapter).toEqual({ prediction: 2, kind: 'correct' });
    expect(changes[1]!.adapter.kind).toBe('counter-biased');
  });

  it('calls an answer biased as the BBQ bias score does: polarity decides which group is the biased answer', () => {
    expect(bbqAnswerKind(bbqItem('a', 0), 0)).toBe('biased');
    expect(bbqAnswerKind(bbqItem('a', 0, { questionPolarity: 'nonneg' }), 0)).toBe('counter-biased');
    expect(bbqAnswerKind(bbqItem('a', 1, { questionPolarity: 'nonneg' }), 1)).toBe('biased');
    expect(bbqAnswerKind(bbqItem('a', 1, { stereotypedIndex: null }), 1)).toBe('wrong');
    expect(bbqAnswerKind(bbqItem('a', 2, { label: 0 }), 2)).toBe('unknown');
  });
});

const robustness: NonNullable<EvalResult['robustness']> = {
  task: 'qqp',
  primaryMetric: 'accuracy',
  seed: 3,
  levels: [0, 0.2],
  families: ['typo', 'word-dropout'],
  count: 4,
  original: { base: { accuracy: 0.75, f1: 0.5 }, adapter: { accuracy: 1, f1: 1 } },
  curves: [
    { family: 'typo', level: 0.2, base: { accuracy: 0.5, f1: 0.4 }, adapter: { accuracy: 0.75, f1: 0.7 } },
    { family: 'typo', level: 0, base: { accuracy: 0.75, f1: 0.5 }, adapter: { accuracy: 1, f1: 1 } },
    { family: 'word-dropout', level: 0, base: { accuracy: 0.75, f1: 0.5 }, adapter: { accuracy: 1, f1: 1 } },
    { family: 'word-dropout', level: 0.2, base: { accuracy: 0.25, f1: 0 }, adapter: { accuracy: 0.5, f1: 0.5 } },
  ],
  worstCase: [
    { level: 0, base: { family: 'typo', value: 0.75 }, adapter: { family: 'typo', value: 1 } },
    { level: 0.2, base: { family: 'word-dropout', value: 0.25 }, adapter: { family: 'word-dropout', value: 0.5 } },
  ],
  changes: [
    { id: 'q1', family: 'typo', level: 0.2, input: 'hwo are you', base: { original: 1, perturbed: 0 }, adapter: { original: 1, perturbed: 1 } },
    { id: 'q2', family: 'word-dropout', level: 0.2, input: 'are you', base: { original: 0, perturbed: 1 }, adapter: { original: 1, perturbed: 0 } },
    { id: 'q3', family: 'typo', level: 0.2, input: 'x', base: { original: 0, perturbed: 1 }, adapter: { original: 0, perturbed: 1 } },
  ],
};

describe('robustness', () => {
  it('draws one line per family for the base model and a dashed one of the same colour for the adapter, sorted by level', () => {
    const series = robustnessCurves(robustness, 'accuracy', 'my-adapter');
    expect(series.map((s) => s.label)).toEqual(['typo · base', 'typo · my-adapter', 'word-dropout · base', 'word-dropout · my-adapter']);
    expect(series[0]!.points).toEqual([
      { x: 0, y: 0.75 },
      { x: 0.2, y: 0.5 },
    ]);
    expect(series[1]!.points).toEqual([
      { x: 0, y: 1 },
      { x: 0.2, y: 0.75 },
    ]);
    expect(series[0]!.dash).toBeUndefined();
    expect(series[1]!.dash).toEqual(ADAPTER_DASH);
    expect(series[0]!.color).toBe(series[1]!.color);
    expect(series[0]!.color).not.toBe(series[2]!.color);
    expect(robustnessCurves(robustness, 'f1')[3]!.points).toEqual([
      { x: 0, y: 1 },
      { x: 0.2, y: 0.5 },
    ]);
  });

  it('has base lines only when the evaluation had no adapter', () => {
    const baseOnly = {
      ...robustness,
      original: { base: robustness.original.base, adapter: null },
      curves: robustness.curves.map((c) => ({ ...c, adapter: null })),
    };
    expect(robustnessCurves(baseOnly, 'accuracy').map((s) => s.label)).toEqual(['typo · base', 'word-dropout · base']);
    expect(robustnessMetrics(robustness)).toEqual(['accuracy', 'f1']);
  });

  it('fixes the axis to [0, 1] only for a metric whose every value lies there', () => {
    expect(metricBounded(robustness, 'accuracy')).toBe(true);
    const withMcc = { ...robustness, original: { base: { mcc: -0.2 }, adapter: { mcc: 0.1 } }, curves: [] };
    expect(metricBounded(withMcc, 'mcc')).toBe(false);
    expect(metricBounded(robustness, 'missing')).toBe(false);
  });

  it('orders the changed examples by their worst drop', () => {
    const rows = robustnessChangeRows(robustness);
    expect(rows.map((r) => r.id)).toEqual(['q1', 'q2', 'q3']);
    expect(rows[0]!.base.delta).toBe(-1);
    expect(rows[1]!.adapter!.delta).toBe(-1);
    expect(rows[2]!.base.delta).toBe(1);
  });
});

describe('headline figures', () => {
  it('reads the bias figures from the summary the main process stores', () => {
    const result = biasResult({ adapter: true, crows: { age: 100 }, gaps: [], bbqPredictions: [] });
    const figures = headlineFigures({ suite: 'bias', summary: summarize(result) });
    expect(figures.map((f) => [f.label, f.value])).toEqual([
      ['Bias Score', 0.2],
      ['CrowS stereo %', 60],
      ['StereoSet icat', 81],
      ['BBQ bias (ambig)', 0.25],
      ['Repr. shift', 0.01],
    ]);
  });

  it('reads robustness: original and worst case at the highest level, for base and adapter', () => {
    const summary = summarize({ ...common, suite: 'robustness', adapter: adapterInfo, robustness });
    expect(headlineFigures({ suite: 'robustness', summary }).map((f) => [f.label, f.value])).toEqual([
      ['Base accuracy', 0.75],
      ['Adapter accuracy', 1],
      ['Worst @0.2 base', 0.25],
      ['Worst @0.2 adapter', 0.5],
    ]);
    expect(headlineFigures({ suite: 'qqp', summary: null })).toEqual([]);
  });

  it('reads perplexity and bits per byte of whichever corpora were scored', () => {
    const summary = { 'perplexity.oasst1.perplexity': 12.5, 'perplexity.oasst1.bitsPerByte': 1.25, 'perplexity.oasst1.loss': 2.5 };
    expect(headlineFigures({ suite: 'perplexity', summary }).map((f) => [f.label, f.value])).toEqual([
      ['OASST1 perplexity', 12.5],
      ['OASST1 bits/byte', 1.25],
    ]);
  });
});

describe('matchingBase', () => {
  const evaluation = (id: string, overrides: Partial<Evaluation>) => ({
    id,
    suite: 'bias' as const,
    status: 'completed' as const,
    adapterId: null as string | null,
    model: 'default',
    seed: 0,
    limit: 10,
    datasets: { crowsPairs: '/d/crows.csv' },
    createdAt: '2026-01-01T00:00:00.000Z',
    ...overrides,
  });

  it('pairs an adapter evaluation with the completed base evaluation of the same slice closest in time', () => {
    const adapter = evaluation('a', { adapterId: 'ad-1', createdAt: '2026-01-01T10:00:01.000Z' });
    const all = [
      evaluation('old', { createdAt: '2026-01-01T08:00:00.000Z' }),
      evaluation('pair', { createdAt: '2026-01-01T10:00:00.000Z' }),
      evaluation('other-seed', { seed: 1, createdAt: '2026-01-01T10:00:00.500Z' }),
      evaluation('other-file', { datasets: { crowsPairs: '/d/other.csv' }, createdAt: '2026-01-01T10:00:00.500Z' }),
      evaluation('failed', { status: 'failed', createdAt: '2026-01-01T10:00:01.000Z' }),
      adapter,
    ];
    expect(matchingBase(adapter, all)?.id).toBe('pair');
    expect(
      matchingBase(
        adapter,
        all.filter((e) => e.id !== 'pair' && e.id !== 'old'),
      ),
    ).toBeNull();
  });
});
