// The compare table: runs as columns, every stored figure as a row (last metric values, the config, the
// adapter's size, each evaluation summary figure of the run's adapter), with the rows that differ marked.
// Pure so test/unit/compare.test.ts can check it.
import { methodSettingsKeys } from '../../src-shared/config.ts';
import { settingsSectionsOf } from '../../src-shared/methods.ts';
import type { Evaluation } from '../../src-shared/eval.ts';
import { headlineFigures } from './eval-view.ts';
import type { Adapter, MetricPoint, Run } from '../../src-shared/runs.ts';

export type Cell = number | string | boolean | null;

export interface CompareRow {
  section: 'Training' | 'Config' | 'Adapter' | 'Evaluation';
  key: string;
  cells: Cell[];
  /** At least two runs have a value and not all values are equal. */
  differs: boolean;
}

export interface CompareInput {
  run: Run;
  metrics: readonly MetricPoint[];
  adapter: Adapter | null;
  /** Every evaluation of this run's adapter (any status: only completed ones count). */
  evaluations: readonly Evaluation[];
}

/** The value at the highest step of each metric name (the last one logged wins on a tie). */
export function lastValues(points: readonly MetricPoint[]): Map<string, number> {
  const last = new Map<string, MetricPoint>();
  for (const p of points) {
    const seen = last.get(p.name);
    if (!seen || p.step >= seen.step) last.set(p.name, p);
  }
  return new Map([...last].map(([name, p]) => [name, p.value]));
}

/** Leaves of a plain object as "a.b.c" → value; arrays are joined (target modules). */
export function flattenConfig(value: unknown, prefix = '', into = new Map<string, Cell>()): Map<string, Cell> {
  if (Array.isArray(value)) into.set(prefix, value.join(', '));
  else if (value !== null && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) flattenConfig(child, prefix ? `${prefix}.${key}` : key, into);
  } else into.set(prefix, value as Cell);
  return into;
}

/** Config keys a run's method reads: training, model, dataset, backend and its own settings sections. */
function relevantConfig(run: Run): Map<string, Cell> {
  const sections = new Set<string>(settingsSectionsOf(run.config.method).map((s) => s.settingsKey));
  const settingsKeys: readonly string[] = methodSettingsKeys;
  return new Map(
    [...flattenConfig(run.config)].filter(([key]) => {
      const head = key.split('.')[0]!;
      return !settingsKeys.includes(head) || sections.has(head);
    }),
  );
}

/** "robustness: curves.typo@0.2.base.accuracy": the suite once, not twice where the summary key repeats it. */
export const figureKey = (suite: string, key: string) => `${suite}: ${key.startsWith(`${suite}.`) ? key.slice(suite.length + 1) : key}`;

/** The latest completed evaluation per suite, its summary keyed "suite: figure". */
function evaluationFigures(evaluations: readonly Evaluation[], headlines: Set<string>): Map<string, number> {
  const latest = new Map<string, Evaluation>();
  for (const e of evaluations) {
    if (e.status !== 'completed' || !e.summary) continue;
    const seen = latest.get(e.suite);
    if (!seen || e.createdAt > seen.createdAt) latest.set(e.suite, e);
  }
  const figures = new Map<string, number>();
  for (const e of latest.values()) {
    for (const [key, value] of Object.entries(e.summary!)) figures.set(figureKey(e.suite, key), value);
    for (const headline of headlineFigures(e)) headlines.add(figureKey(e.suite, headline.key));
  }
  return figures;
}

function differs(cells: readonly Cell[]): boolean {
  const present = cells.filter((c) => c !== null);
  return present.length >= 2 && present.some((c) => c !== present[0]);
}

function rows(section: CompareRow['section'], columns: readonly Map<string, Cell>[], order?: (a: string, b: string) => number): CompareRow[] {
  const keys: string[] = [];
  const seen = new Set<string>();
  for (const column of columns) for (const key of column.keys()) if (!seen.has(key)) seen.add(key), keys.push(key);
  if (order) keys.sort(order);
  return keys.map((key) => {
    const cells = columns.map((c) => (c.has(key) ? c.get(key)! : null));
    return { section, key, cells, differs: differs(cells) };
  });
}

/** Loss first, then the other metrics alphabetically (the order a reader looks for them). */
const metricOrder = (a: string, b: string) => {
  const rank = (k: string) => (k === 'train/loss' ? 0 : k === 'val/loss' ? 1 : 2);
  return rank(a) - rank(b) || a.localeCompare(b);
};

export function buildCompareRows(inputs: readonly CompareInput[]): CompareRow[] {
  const headlines = new Set<string>();
  const figures = inputs.map((i) => evaluationFigures(i.evaluations, headlines));
  // The figures the evaluations list shows come first; the many per-category counts after them.
  const figureOrder = (a: string, b: string) => Number(headlines.has(b)) - Number(headlines.has(a)) || a.localeCompare(b);
  return [
    ...rows(
      'Training',
      inputs.map((i) => lastValues(i.metrics)),
      metricOrder,
    ),
    ...rows(
      'Config',
      inputs.map((i) => relevantConfig(i.run)),
    ),
    ...rows(
      'Adapter',
      inputs.map(
        (i) =>
          new Map<string, Cell>(
            i.adapter
              ? [
                  ['trainable params', i.adapter.trainableParams],
                  ['step', i.adapter.step],
                  ['method', i.adapter.method],
                ]
              : [],
          ),
      ),
    ),
    ...rows('Evaluation', figures, figureOrder),
  ];
}
