// A study's figures from its cells' stored results: per x value and series, the mean over seeds and its
// spread; the same numbers as a table and as CSV. Pure, so the page, the CLI and the tests share it.
import { z } from 'zod';
import { figureAxes, StudyCellSchema, StudySchema, type StudyFigure, type StudyMetric, type StudyRecipe } from './studies.ts';

/** What a cell contributes: its levels, its seed, and the stored figures the recipe's figures read. */
export const StudyCellResultSchema = z.object({
  key: z.string(),
  levels: z.record(z.string(), z.string()),
  seed: z.number().int(),
  /** metricId(...) -> value: evaluation summary figures and reduced run metrics. */
  values: z.record(z.string(), z.number()),
  /** Run metric name -> its points, for figures over training steps. */
  curves: z.record(z.string(), z.array(z.object({ step: z.number(), value: z.number() }))),
});
export type StudyCellResult = z.infer<typeof StudyCellResultSchema>;

/** An x value's seeds: their values, and the statistics over them that the error bars draw. */
const PointSchema = z.object({
  x: z.string(),
  n: z.number().int(),
  /** One per seed, in seed order. */
  values: z.array(z.number()),
  mean: z.number(),
  /** Sample standard deviation (n - 1); 0 for one seed. */
  std: z.number(),
  sem: z.number(),
  min: z.number(),
  max: z.number(),
});
export type FigurePoint = z.infer<typeof PointSchema>;

export const FigureDataSchema = z.object({
  id: z.string(),
  title: z.string(),
  redraws: z.string().nullable(),
  kind: z.enum(['bar', 'line']),
  xLabel: z.string(),
  yLabel: z.string(),
  errorBars: z.enum(['std', 'sem', 'range', 'none']),
  xs: z.array(z.string()),
  /** points[i] belongs to xs[i]; null where no finished cell has the value yet. */
  series: z.array(z.object({ label: z.string(), points: z.array(PointSchema.nullable()) })),
  /** What the reader should know: axes averaged over because the figure does not fix them, missing values. */
  notes: z.array(z.string()),
});
export type FigureData = z.infer<typeof FigureDataSchema>;

/** A study as the Studies page shows it: its cells and its figures' data. */
export const StudyDetailSchema = z.object({ study: StudySchema, cells: z.array(StudyCellSchema), figures: z.array(FigureDataSchema) });
export type StudyDetail = z.infer<typeof StudyDetailSchema>;

/** The key a metric's value is kept under in a cell result ("{x}" already replaced). */
export function metricId(metric: StudyMetric, x?: string): string {
  if ('generation' in metric) return `generation:${metric.generation}`;
  if ('evaluation' in metric) return `eval:${metric.evaluation}:${x === undefined ? metric.key : metric.key.replaceAll('{x}', x)}`;
  return `run:${metric.run}:${metric.reduce}`;
}

function metricLabel(metric: StudyMetric): string {
  if (metric.label) return metric.label;
  if ('generation' in metric) return metric.generation;
  return 'evaluation' in metric ? metric.key.split('.').slice(-1)[0]! : metric.run;
}

/** Every stored figure the recipe's figures read: the evaluation summary keys per evaluation id, and the run metrics. */
export function neededMetrics(recipe: StudyRecipe): { evalKeys: Map<string, Set<string>>; runMetrics: Set<string>; curves: Set<string> } {
  const evalKeys = new Map<string, Set<string>>();
  const runMetrics = new Set<string>();
  const curves = new Set<string>();
  for (const figure of recipe.figures) {
    const xs = 'values' in figure.x ? figure.x.values.map(String) : [undefined];
    for (const metric of figureMetrics(figure)) {
      if ('generation' in metric) continue;
      if ('run' in metric) ('steps' in figure.x ? curves : runMetrics).add(metric.run);
      else
        for (const x of xs) {
          const keys = evalKeys.get(metric.evaluation) ?? new Set<string>();
          keys.add(x === undefined ? metric.key : metric.key.replaceAll('{x}', x));
          evalKeys.set(metric.evaluation, keys);
        }
    }
  }
  return { evalKeys, runMetrics, curves };
}

function figureMetrics(figure: StudyFigure): StudyMetric[] {
  return figure.series && 'metrics' in figure.series ? figure.series.metrics : [figure.metric!];
}

export function summarizeValues(values: number[]): Omit<FigurePoint, 'x'> {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { n, values, mean, std, sem: std / Math.sqrt(n), min: Math.min(...values), max: Math.max(...values) };
}

/**
 * One figure's data. Cells are grouped by x value and series; within a group the values of its seeds
 * are summarized. A group that also spans levels of an axis the figure neither draws nor fixes (with
 * `where`) is averaged over it, and a note says so.
 */
export function figureData(recipe: StudyRecipe, figure: StudyFigure, cells: readonly StudyCellResult[]): FigureData {
  const notes: string[] = [];
  const axes = figureAxes(recipe);
  const axisLevels = (name: string) => {
    const axis = axes.find((a) => a.name === name)!;
    return axis.values.map((_, i) => axis.labels?.[i] ?? (typeof axis.values[i] === 'string' ? (axis.values[i] as string) : JSON.stringify(axis.values[i])));
  };
  const selected = cells.filter((c) => Object.entries(figure.where).every(([axis, label]) => c.levels[axis] === label));
  const metrics = figureMetrics(figure);
  const seriesAxis = figure.series && 'axis' in figure.series ? figure.series.axis : null;
  const seriesDefs: { label: string; metric: StudyMetric; level: string | null }[] = seriesAxis
    ? axisLevels(seriesAxis).map((level) => ({ label: level, metric: figure.metric!, level }))
    : metrics.map((metric) => ({ label: metricLabel(metric), metric, level: null }));

  let xs: string[];
  let valueAt: (cell: StudyCellResult, x: string, metric: StudyMetric) => number | undefined;
  let xLabel: string;
  if ('axis' in figure.x) {
    const axisName = figure.x.axis;
    xs = axisLevels(axisName);
    xLabel = axisName;
    valueAt = (cell, x, metric) => (cell.levels[axisName] === x ? cell.values[metricId(metric)] : undefined);
  } else if ('values' in figure.x) {
    xs = figure.x.values.map(String);
    xLabel = figure.x.label;
    valueAt = (cell, x, metric) => cell.values[metricId(metric, x)];
  } else {
    const steps = new Set<number>();
    for (const cell of selected) for (const m of metrics) for (const p of cell.curves['run' in m ? m.run : ''] ?? []) steps.add(p.step);
    xs = [...steps].sort((a, b) => a - b).map(String);
    xLabel = 'step';
    valueAt = (cell, x, metric) => ('run' in metric ? cell.curves[metric.run]?.find((p) => String(p.step) === x)?.value : undefined);
  }

  const drawn = new Set([...('axis' in figure.x ? [figure.x.axis] : []), ...(seriesAxis ? [seriesAxis] : []), ...Object.keys(figure.where)]);
  const averagedOver = axes.filter((a) => !drawn.has(a.name) && a.values.length > 1).map((a) => a.name);
  if (averagedOver.length > 0)
    notes.push(
      `Averaged over ${averagedOver.join(', ')} as well as the seeds: fix ${averagedOver.length > 1 ? 'them' : 'it'} with "where" to compare one level.`,
    );

  const series = seriesDefs.map((def) => ({
    label: def.label,
    points: xs.map((x) => {
      const values = selected
        .filter((c) => def.level === null || c.levels[seriesAxis!] === def.level)
        .sort((a, b) => a.seed - b.seed)
        .map((c) => valueAt(c, x, def.metric))
        .filter((v): v is number => v !== undefined && Number.isFinite(v));
      return values.length === 0 ? null : { x, ...summarizeValues(values) };
    }),
  }));
  const missing = series.reduce((a, s) => a + s.points.filter((p) => p === null).length, 0);
  if (missing > 0 && cells.length > 0) notes.push(`${missing} of ${series.length * xs.length} points have no finished value yet.`);
  return {
    id: figure.id,
    title: figure.title,
    redraws: figure.redraws ?? null,
    kind: figure.kind,
    xLabel,
    yLabel: figure.metric ? metricLabel(figure.metric) : 'value',
    errorBars: figure.errorBars,
    xs,
    series,
    notes,
  };
}

/** The spread the figure draws around the mean: [low, high]. */
export function errorRange(point: FigurePoint, kind: FigureData['errorBars']): [number, number] {
  if (kind === 'std') return [point.mean - point.std, point.mean + point.std];
  if (kind === 'sem') return [point.mean - point.sem, point.mean + point.sem];
  if (kind === 'range') return [point.min, point.max];
  return [point.mean, point.mean];
}

function csvCell(value: string | number): string {
  const text = String(value);
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One row per point: figure, series, x, n, mean, std, sem, min, max, and the per-seed values. */
export function figuresCsv(figures: readonly FigureData[]): string {
  const rows: (string | number)[][] = [['figure', 'series', 'x', 'n', 'mean', 'std', 'sem', 'min', 'max', 'values']];
  for (const figure of figures) {
    for (const s of figure.series) {
      s.points.forEach((p, i) => {
        if (p) rows.push([figure.id, s.label, figure.xs[i]!, p.n, p.mean, p.std, p.sem, p.min, p.max, p.values.join(';')]);
      });
    }
  }
  return `${rows.map((r) => r.map(csvCell).join(',')).join('\n')}\n`;
}

/** mean ± spread, as the table beside a figure shows it. */
export function formatPoint(point: FigurePoint | null, kind: FigureData['errorBars']): string {
  if (!point) return '–';
  const digits = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(1) : Math.abs(v) >= 1 ? v.toFixed(3) : v.toPrecision(3));
  if (point.n === 1 || kind === 'none') return digits(point.mean);
  if (kind === 'range') return `${digits(point.mean)} [${digits(point.min)}, ${digits(point.max)}]`;
  return `${digits(point.mean)} ± ${digits(kind === 'sem' ? point.sem : point.std)}`;
}
