// One run's metric curves, as the charts read them. Points arrive in bursts from run events; they are
// merged once per animation frame and each changed series is replaced whole ($state.raw), so a chart sees
// at most one change per frame and can append just the new tail.
import type { MetricPoint } from '../../src-shared/runs.ts';

export interface XY {
  readonly x: number;
  readonly y: number;
}

type Series = ReadonlyMap<string, readonly XY[]>;

/** Adds points (sorted by step) to a series. A step at or before the last one means the run went back to a
 * checkpoint (resume): the points from that step on are replaced by the new ones. */
function merge(series: readonly XY[], points: readonly XY[]): XY[] {
  const merged = series.slice();
  for (const point of points) {
    let end = merged.length;
    while (end > 0 && merged[end - 1]!.x >= point.x) end--;
    merged.length = end;
    merged.push(point);
  }
  return merged;
}

function groupByName(points: readonly MetricPoint[]): Map<string, XY[]> {
  const groups = new Map<string, XY[]>();
  for (const p of points) {
    let group = groups.get(p.name);
    if (!group) groups.set(p.name, (group = []));
    group.push({ x: p.step, y: p.value });
  }
  for (const group of groups.values()) group.sort((a, b) => a.x - b.x);
  return groups;
}

export class MetricStore {
  series: Series = $state.raw(new Map());
  #pending: MetricPoint[] = [];
  #frame: number | null = null;

  /** Replaces everything, e.g. with runs.metrics(id). */
  reset(points: readonly MetricPoint[]): void {
    this.#pending = [];
    this.series = groupByName(points);
  }

  append(points: readonly MetricPoint[]): void {
    this.#pending.push(...points);
    this.#frame ??= requestAnimationFrame(() => this.#flush());
  }

  get(name: string): readonly XY[] {
    return this.series.get(name) ?? [];
  }

  /** Names present, in the order first seen. */
  get names(): string[] {
    return [...this.series.keys()];
  }

  last(name: string): number | undefined {
    const series = this.series.get(name);
    return series?.[series.length - 1]?.y;
  }

  dispose(): void {
    if (this.#frame !== null) cancelAnimationFrame(this.#frame);
    this.#frame = null;
    this.#pending = [];
  }

  #flush(): void {
    this.#frame = null;
    const pending = this.#pending;
    this.#pending = [];
    if (pending.length === 0) return;
    const next = new Map(this.series);
    for (const [name, points] of groupByName(pending)) next.set(name, merge(next.get(name) ?? [], points));
    this.series = next;
  }
}

/** One line (or point set) of a chart. */
export interface ChartSeries {
  label: string;
  points: readonly XY[];
  color: string;
  /** false draws markers only (validation loss, measured every few steps). */
  line?: boolean;
  /** A dash pattern (e.g. [6, 4]) tells apart two lines of one colour, such as base and adapter. */
  dash?: number[];
}
