// Pure shaping of evaluation results for the panels: bars per category, robustness curves, the items that
// moved between the base model and an adapter, and the headline figures of the list. No Svelte, no API:
// test/unit/eval-view.test.ts checks each against hand-made results.
import type { EvalResult, Evaluation } from '../../src-shared/eval.ts';

type BiasResult = NonNullable<EvalResult['bias']>;
type RobustnessResult = NonNullable<EvalResult['robustness']>;
type CrowsItem = NonNullable<BiasResult['crowsPairs']>['items'][number];
type BbqItem = NonNullable<BiasResult['bbq']>['items'][number];

/** One evaluated subject (the base model, or an adapter) and its full result. */
export interface Subject {
  label: string;
  result: EvalResult;
}

export interface BarSeries {
  label: string;
  values: (number | null)[];
  color: string;
}

export interface BarData {
  labels: string[];
  series: BarSeries[];
}

/** Base model first in grey-blue, adapters after it in distinct hues (colour-blind safe order). */
export const SUBJECT_COLORS = ['#64748b', '#2563eb', '#ea580c', '#16a34a', '#9333ea', '#db2777'];
export const subjectColor = (index: number) => SUBJECT_COLORS[index % SUBJECT_COLORS.length]!;

const OVERALL = 'overall';

/**
 * Bars by category, one series per subject. Categories are the union over subjects, sorted, with
 * "overall" first; a subject that lacks a category gets a gap (null), not a zero bar.
 */
function byCategory(
  subjects: readonly Subject[],
  table: (result: EvalResult) => { overall: number | null; byCategory: Record<string, number | null> } | null,
): BarData {
  const tables = subjects.map((s) => table(s.result));
  const categories = new Set<string>();
  for (const t of tables) if (t) for (const key of Object.keys(t.byCategory)) categories.add(key);
  const labels = [OVERALL, ...[...categories].sort()];
  return {
    labels,
    series: subjects.map((s, i) => {
      const t = tables[i];
      return {
        label: s.label,
        color: subjectColor(i),
        values: labels.map((label) => (t ? (label === OVERALL ? t.overall : (t.byCategory[label] ?? null)) : null)),
      };
    }),
  };
}

const mapValues = <T>(record: Record<string, T>, pick: (value: T) => number | null) =>
  Object.fromEntries(Object.entries(record).map(([key, value]) => [key, pick(value)]));

/** CrowS-Pairs: % of pairs where the more stereotypical sentence is likelier (50 = unbiased). */
export function crowsBars(subjects: readonly Subject[]): BarData {
  return byCategory(subjects, (r) => {
    const crows = r.bias?.crowsPairs;
    return crows ? { overall: crows.overall.stereoPercent, byCategory: mapValues(crows.byBiasType, (s) => s.stereoPercent) } : null;
  });
}

export type StereoSetTask = 'intrasentence' | 'intersentence';
export type StereoSetFigure = 'ss' | 'lms' | 'icat';

export function stereoSetBars(subjects: readonly Subject[], task: StereoSetTask, figure: StereoSetFigure): BarData {
  return byCategory(subjects, (r) => {
    const report = r.bias?.stereoSet?.[task];
    return report ? { overall: report.overall[figure], byCategory: mapValues(report.byBiasType, (s) => s[figure]) } : null;
  });
}

export type BbqCondition = 'ambig' | 'disambig';
export type BbqFigure = 'accuracy' | 'biasScore';

export function bbqBars(subjects: readonly Subject[], condition: BbqCondition, figure: BbqFigure): BarData {
  return byCategory(subjects, (r) => {
    const bbq = r.bias?.bbq;
    return bbq ? { overall: bbq.overall[condition]?.[figure] ?? null, byCategory: mapValues(bbq.byCategory, (s) => s[condition]?.[figure] ?? null) } : null;
  });
}

/** True when at least one bar has a value: a chart of gaps only is not drawn. */
export const hasBars = (data: BarData) => data.series.some((s) => s.values.some((v) => v !== null));

export interface CrowsMove {
  id: number;
  biasType: string;
  direction: CrowsItem['direction'];
  /** logLikMore - logLikLess: > 0 means the more stereotypical sentence is the likelier one. */
  base: number;
  adapter: number;
  change: number;
  /** The sign of the preference flipped (a pair that changed side). */
  flipped: boolean;
}

/** CrowS-Pairs pairs matched by id, largest |change| of the log-likelihood gap first. */
export function crowsMoves(base: EvalResult, adapter: EvalResult, limit = 20): CrowsMove[] {
  const baseItems = new Map((base.bias?.crowsPairs?.items ?? []).map((item) => [item.id, item]));
  const moves: CrowsMove[] = [];
  for (const item of adapter.bias?.crowsPairs?.items ?? []) {
    const before = baseItems.get(item.id);
    if (!before) continue;
    const b = before.logLikMore - before.logLikLess;
    const a = item.logLikMore - item.logLikLess;
    moves.push({ id: item.id, biasType: item.biasType, direction: item.direction, base: b, adapter: a, change: a - b, flipped: b > 0 !== a > 0 });
  }
  return moves.sort((x, y) => Math.abs(y.change) - Math.abs(x.change) || x.id - y.id).slice(0, limit);
}

export type BbqAnswerKind = 'correct' | 'unknown' | 'biased' | 'counter-biased' | 'wrong';

/**
 * A wrong answer in BBQ's terms (as the bias score counts it): "unknown", biased (the stereotyped group
 * for a negative question, the other group for a non-negative one), counter-biased, or just wrong when
 * the item's stereotyped group is not known.
 */
export function bbqAnswerKind(item: BbqItem, prediction: BbqItem['prediction']): BbqAnswerKind {
  if (prediction === item.label) return 'correct';
  if (prediction === item.unknownIndex) return 'unknown';
  if (item.stereotypedIndex === null) return 'wrong';
  const choseStereotyped = prediction === item.stereotypedIndex;
  return (item.questionPolarity === 'neg' ? choseStereotyped : !choseStereotyped) ? 'biased' : 'counter-biased';
}

export interface BbqChange {
  id: string;
  category: string;
  contextCondition: BbqItem['contextCondition'];
  questionPolarity: BbqItem['questionPolarity'];
  label: number;
  base: { prediction: number; kind: BbqAnswerKind };
  adapter: { prediction: number; kind: BbqAnswerKind };
}

/** BBQ items (matched by id) whose predicted answer changed; fixes and regressions first, then by id. */
export function bbqChanges(base: EvalResult, adapter: EvalResult): BbqChange[] {
  const baseItems = new Map((base.bias?.bbq?.items ?? []).map((item) => [item.id, item]));
  const changes: BbqChange[] = [];
  for (const item of adapter.bias?.bbq?.items ?? []) {
    const before = baseItems.get(item.id);
    if (!before || before.prediction === item.prediction) continue;
    changes.push({
      id: item.id,
      category: item.category,
      contextCondition: item.contextCondition,
      questionPolarity: item.questionPolarity,
      label: item.label,
      base: { prediction: before.prediction, kind: bbqAnswerKind(before, before.prediction) },
      adapter: { prediction: item.prediction, kind: bbqAnswerKind(item, item.prediction) },
    });
  }
  const rank = (c: BbqChange) => (c.base.kind === 'correct' || c.adapter.kind === 'correct' ? 0 : 1);
  return changes.sort((x, y) => rank(x) - rank(y) || x.id.localeCompare(y.id));
}

export interface CurvePoint {
  x: number;
  y: number;
}

export interface CurveSeries {
  label: string;
  points: CurvePoint[];
  color: string;
  /** Adapter curves are dashed so base and adapter of one family share a colour. */
  dash?: number[];
}

const FAMILY_COLORS = ['#2563eb', '#ea580c', '#16a34a', '#9333ea', '#db2777', '#0891b2', '#ca8a04', '#64748b'];
export const ADAPTER_DASH = [6, 4];

/** Metric names a robustness result reports (accuracy, f1, mcc for QQP; em, f1, … for HotpotQA). */
export function robustnessMetrics(result: RobustnessResult): string[] {
  return Object.keys(result.original.base);
}

/** True when every value of the metric lies in [0, 1] (accuracy, F1, EM): the chart then fixes its axis to that range. */
export function metricBounded(result: RobustnessResult, metric: string): boolean {
  const values = [result.original.base, result.original.adapter, ...result.curves.flatMap((c) => [c.base, c.adapter])]
    .map((m) => m?.[metric])
    .filter((v): v is number => v !== undefined);
  return values.length > 0 && values.every((v) => v >= 0 && v <= 1);
}

/**
 * Metric against perturbation level, one line per family for the base model and, dashed in the same
 * colour, one per family for the adapter. `adapterLabel` names the adapter in the legend.
 */
export function robustnessCurves(result: RobustnessResult, metric: string, adapterLabel = 'adapter'): CurveSeries[] {
  const series: CurveSeries[] = [];
  result.families.forEach((family, i) => {
    const color = FAMILY_COLORS[i % FAMILY_COLORS.length]!;
    const points = result.curves.filter((c) => c.family === family).sort((a, b) => a.level - b.level);
    const line = (pick: (c: (typeof points)[number]) => number | undefined) =>
      points.flatMap((c) => {
        const y = pick(c);
        return y === undefined ? [] : [{ x: c.level, y }];
      });
    series.push({ label: `${family} · base`, color, points: line((c) => c.base[metric]) });
    if (result.original.adapter) {
      series.push({ label: `${family} · ${adapterLabel}`, color, dash: ADAPTER_DASH, points: line((c) => c.adapter?.[metric]) });
    }
  });
  return series.filter((s) => s.points.length > 0);
}

export interface RobustnessChangeRow {
  id: string;
  family: string;
  level: number;
  input: string;
  base: { original: number; perturbed: number; delta: number };
  adapter: { original: number; perturbed: number; delta: number } | null;
}

/** Per-example changes, the largest drop (base or adapter) first. */
export function robustnessChangeRows(result: RobustnessResult, limit = 50): RobustnessChangeRow[] {
  const withDelta = (s: { original: number; perturbed: number }) => ({ ...s, delta: s.perturbed - s.original });
  const rows = result.changes.map((c) => ({
    id: c.id,
    family: c.family,
    level: c.level,
    input: c.input,
    base: withDelta(c.base),
    adapter: c.adapter ? withDelta(c.adapter) : null,
  }));
  const worst = (r: RobustnessChangeRow) => Math.min(r.base.delta, r.adapter?.delta ?? Infinity);
  return rows.sort((x, y) => worst(x) - worst(y) || x.level - y.level || x.id.localeCompare(y.id)).slice(0, limit);
}

export interface Headline {
  label: string;
  key: string;
  value: number;
}

/** The few figures the evaluations list shows per suite, read from the flat summary. */
export function headlineFigures(evaluation: Pick<Evaluation, 'suite' | 'summary'>): Headline[] {
  const summary = evaluation.summary;
  if (!summary) return [];
  const pick = (label: string, key: string): Headline[] => (summary[key] === undefined ? [] : [{ label, key, value: summary[key]! }]);
  switch (evaluation.suite) {
    case 'bias':
      return [
        ...pick('Bias Score', 'crowsPairs.biasScore'),
        ...pick('CrowS stereo %', 'crowsPairs.overall.stereoPercent'),
        ...pick('StereoSet icat', 'stereoSet.intrasentence.overall.icat'),
        ...pick('BBQ bias (ambig)', 'bbq.overall.ambig.biasScore'),
        ...pick('Repr. shift', 'representationShift.shift'),
      ];
    case 'qqp':
      return [...pick('Accuracy', 'qqp.scores.accuracy'), ...pick('F1', 'qqp.scores.f1'), ...pick('MCC', 'qqp.scores.mcc')];
    case 'hotpotqa':
      return [...pick('EM', 'hotpotqa.report.overall.em'), ...pick('F1', 'hotpotqa.report.overall.f1')];
    case 'perplexity':
      return [
        ...pick('Text perplexity', 'perplexity.text.perplexity'),
        ...pick('Text bits/byte', 'perplexity.text.bitsPerByte'),
        ...pick('OASST1 perplexity', 'perplexity.oasst1.perplexity'),
        ...pick('OASST1 bits/byte', 'perplexity.oasst1.bitsPerByte'),
      ];
    case 'robustness': {
      const levels = Object.keys(summary)
        .map((key) => /^robustness\.worstCase@([\d.]+)\.base$/.exec(key)?.[1])
        .filter((level): level is string => level !== undefined)
        .sort((a, b) => Number(a) - Number(b));
      const top = levels[levels.length - 1];
      const metric = ['accuracy', 'f1', 'em'].find((m) => summary[`robustness.original.base.${m}`] !== undefined);
      return [
        ...(metric ? pick(`Base ${metric}`, `robustness.original.base.${metric}`) : []),
        ...(metric ? pick(`Adapter ${metric}`, `robustness.original.adapter.${metric}`) : []),
        ...(top ? pick(`Worst @${top} base`, `robustness.worstCase@${top}.base`) : []),
        ...(top ? pick(`Worst @${top} adapter`, `robustness.worstCase@${top}.adapter`) : []),
      ];
    }
  }
}

type Comparable = Pick<Evaluation, 'id' | 'suite' | 'status' | 'adapterId' | 'model' | 'seed' | 'limit' | 'datasets' | 'createdAt'>;

const sameDatasets = (a: Comparable['datasets'], b: Comparable['datasets']) => {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)] as (keyof Comparable['datasets'])[]);
  return [...keys].every((key) => (a[key] ?? null) === (b[key] ?? null));
};

/**
 * The base-model evaluation an adapter evaluation compares against: same suite, model, seed, limit and
 * dataset files, completed, the one created closest before it (the form starts the pair together).
 */
export function matchingBase<E extends Comparable>(adapterEval: E, all: readonly E[]): E | null {
  let best: E | null = null;
  for (const e of all) {
    if (e.adapterId !== null || e.status !== 'completed' || e.suite !== adapterEval.suite) continue;
    if (e.model !== adapterEval.model || e.seed !== adapterEval.seed || e.limit !== adapterEval.limit) continue;
    if (!sameDatasets(e.datasets, adapterEval.datasets)) continue;
    if (
      !best ||
      Math.abs(Date.parse(e.createdAt) - Date.parse(adapterEval.createdAt)) < Math.abs(Date.parse(best.createdAt) - Date.parse(adapterEval.createdAt))
    )
      best = e;
  }
  return best;
}
