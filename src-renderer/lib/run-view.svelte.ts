// One run as its page shows it: the run record, its metric curves and its log, loaded once and then kept
// current from run events. Events that arrive while the initial load is in flight are held back and
// replayed after it, so nothing is lost between runs.metrics(id) and the first live point.
import type { RunEvent } from '../../src-shared/api.ts';
import { resumableStatuses, type ExportFormat, type ExportReport, type Run } from '../../src-shared/runs.ts';
import { MetricStore } from './metrics.svelte.ts';
import { runsStore } from './runs.svelte.ts';
import { workbench } from './workbench.ts';

export interface LogLine {
  level: 'info' | 'warn' | 'error';
  message: string;
  time: number;
}

const MAX_LOG_LINES = 500;

type Action = 'stop' | 'resume' | 'export' | 'delete';

export class RunView {
  readonly id: string;
  run: Run | null = $state.raw(null);
  loadError: unknown = $state(null);
  readonly metrics = new MetricStore();
  logs: readonly LogLine[] = $state.raw([]);
  /** The action in progress, if any: its button shows busy and the others wait. */
  busy: Action | null = $state(null);
  actionError: unknown = $state(null);
  report: ExportReport | null = $state.raw(null);
  /** One of exportFormats (runs.ts): the select beside the export button. */
  exportFormat: ExportFormat = $state('peft');

  readonly canStop = $derived(this.run?.status === 'running' || this.run?.status === 'queued');
  readonly canResume = $derived(this.run !== null && resumableStatuses.includes(this.run.status) && this.run.lastCheckpointStep !== null);
  /** A finished run exports its adapter; one that stopped early exports its last checkpoint. */
  readonly canExport = $derived(
    this.run !== null &&
      ((this.run.status === 'completed' && this.run.adapterId !== null) ||
        (resumableStatuses.includes(this.run.status) && this.run.lastCheckpointStep !== null)),
  );

  #held: RunEvent[] | null = null;

  constructor(id: string) {
    this.id = id;
  }

  /** Starts listening; returns the function that stops it. */
  subscribe(): () => void {
    const unsubscribe = workbench.onRunEvent((event) => this.#receive(event));
    return () => {
      unsubscribe();
      this.metrics.dispose();
    };
  }

  async load(): Promise<void> {
    this.#held = [];
    try {
      const [run, points] = await Promise.all([workbench.runs.get(this.id), workbench.runs.metrics(this.id)]);
      this.run = run;
      this.metrics.reset(points);
      this.loadError = null;
    } catch (error) {
      this.loadError = error;
    }
    const held = this.#held;
    this.#held = null;
    for (const event of held) this.#apply(event);
  }

  stop = () => this.#act('stop', async () => (this.run = await workbench.runs.stop(this.id)));
  resume = () => this.#act('resume', async () => (this.run = await workbench.runs.resume(this.id)));
  export = () =>
    this.#act('export', async () => {
      this.report = null;
      this.report = await workbench.exports.create({ runId: this.id, format: this.exportFormat });
    });

  /** After the user confirmed: deletes the run with its folder and adapters, then shows the runs list. */
  delete = (onDeleted: () => void) =>
    this.#act('delete', async () => {
      await workbench.runs.delete(this.id);
      runsStore.removed(this.id);
      onDeleted();
    });

  async #act(action: Action, work: () => Promise<unknown>): Promise<void> {
    this.busy = action;
    this.actionError = null;
    try {
      await work();
    } catch (error) {
      this.actionError = error;
    } finally {
      this.busy = null;
    }
  }

  #receive(event: RunEvent): void {
    // Evaluation and engine set-up events belong to other views, not to a run's.
    if (event.kind === 'eval' || event.kind === 'engine-setup') return;
    const runId = event.kind === 'run' ? event.run.id : event.runId;
    if (runId !== this.id) return;
    if (this.#held) this.#held.push(event);
    else this.#apply(event);
  }

  #apply(event: RunEvent): void {
    switch (event.kind) {
      case 'run':
        this.run = event.run;
        break;
      case 'metrics':
        this.metrics.append(event.points);
        break;
      case 'log':
        this.logs = [...this.logs, { level: event.level, message: event.message, time: Date.now() }].slice(-MAX_LOG_LINES);
        break;
    }
  }
}
