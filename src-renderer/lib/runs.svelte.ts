// The runs list, kept current from run events. One instance for the app: the Runs page reads it, and it
// keeps each run's last training loss so the table can show it without reloading every run's metrics.
import type { RunEvent } from '../../src-shared/api.ts';
import type { MetricPoint, Run } from '../../src-shared/runs.ts';
import { workbench } from './workbench.ts';

const LOSS = 'train/loss';

export class RunsStore {
  runs: readonly Run[] = $state.raw([]);
  finalLoss: ReadonlyMap<string, number> = $state.raw(new Map());
  loaded = $state(false);
  error: unknown = $state(null);
  #subscribed = false;

  /** A run the user deleted (deletions send no event). */
  removed(id: string): void {
    this.runs = this.runs.filter((r) => r.id !== id);
  }

  /** Subscribes once, then (re)loads; call again after a reconnect. */
  async load(): Promise<void> {
    if (!this.#subscribed) {
      this.#subscribed = true;
      workbench.onRunEvent((event) => this.apply(event));
    }
    try {
      this.runs = sortRuns(await workbench.runs.list());
      this.error = null;
      this.loaded = true;
    } catch (error) {
      this.error = error;
      return;
    }
    await this.#loadFinalLosses();
  }

  apply(event: RunEvent): void {
    if (event.kind === 'run') {
      const others = this.runs.filter((r) => r.id !== event.run.id);
      this.runs = sortRuns([...others, event.run]);
    } else if (event.kind === 'metrics') {
      const last = lastLoss(event.points);
      if (last !== undefined) this.finalLoss = new Map(this.finalLoss).set(event.runId, last);
    }
  }

  async #loadFinalLosses(): Promise<void> {
    const missing = this.runs.filter((r) => r.status !== 'queued' && !this.finalLoss.has(r.id));
    // One at a time: a list of old runs should not flood the worker-facing main process.
    for (const run of missing) {
      try {
        const last = lastLoss(await workbench.runs.metrics(run.id));
        if (last !== undefined && !this.finalLoss.has(run.id)) this.finalLoss = new Map(this.finalLoss).set(run.id, last);
      } catch {
        // The loss column stays empty for this run; the run page shows the error if it persists.
      }
    }
  }
}

function lastLoss(points: readonly MetricPoint[]): number | undefined {
  let last: MetricPoint | undefined;
  for (const p of points) if (p.name === LOSS && (!last || p.step >= last.step)) last = p;
  return last?.value;
}

function sortRuns(runs: readonly Run[]): Run[] {
  return [...runs].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

export const runsStore = new RunsStore();
