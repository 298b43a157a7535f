// The evaluations list and the adapters they name, kept current from 'eval' events (status and progress),
// and a cache of full results (evals.result) for the panels: a completed result never changes.
import type { RunEvent } from '../../src-shared/api.ts';
import type { EvalResult, Evaluation } from '../../src-shared/eval.ts';
import type { Adapter } from '../../src-shared/runs.ts';
import { workbench } from './workbench.ts';

export class EvaluationsStore {
  evaluations: readonly Evaluation[] = $state.raw([]);
  adapters: readonly Adapter[] = $state.raw([]);
  loaded = $state(false);
  error: unknown = $state(null);
  #subscribed = false;
  #results = new Map<string, Promise<EvalResult>>();

  /** Subscribes once, then (re)loads; call again after a reconnect. */
  async load(): Promise<void> {
    if (!this.#subscribed) {
      this.#subscribed = true;
      workbench.onRunEvent((event) => this.apply(event));
    }
    try {
      const [evaluations, adapters] = await Promise.all([workbench.evals.list(), workbench.adapters.list()]);
      this.evaluations = sortByCreated(evaluations);
      this.adapters = adapters;
      this.error = null;
      this.loaded = true;
    } catch (error) {
      this.error = error;
    }
  }

  apply(event: RunEvent): void {
    if (event.kind === 'eval') {
      const others = this.evaluations.filter((e) => e.id !== event.evaluation.id);
      this.evaluations = sortByCreated([...others, event.evaluation]);
    } else if (event.kind === 'run' && event.run.adapterId && !this.adapters.some((a) => a.id === event.run.adapterId)) {
      // A run just saved its adapter: the form's subject list should offer it without a reload.
      void workbench.adapters.list().then(
        (adapters) => (this.adapters = adapters),
        () => {},
      );
    }
  }

  /** Adds evaluations the caller started (their first event may come before or after the reply). */
  added(started: readonly Evaluation[]): void {
    const ids = new Set(started.map((e) => e.id));
    this.evaluations = sortByCreated([...this.evaluations.filter((e) => !ids.has(e.id)), ...started]);
  }

  /** The list as the server answered a deletion. */
  replaceAll(evaluations: readonly Evaluation[]): void {
    this.evaluations = sortByCreated([...evaluations]);
  }

  get(id: string): Evaluation | undefined {
    return this.evaluations.find((e) => e.id === id);
  }

  adapter(id: string | null): Adapter | undefined {
    return id === null ? undefined : this.adapters.find((a) => a.id === id);
  }

  /** "base model" or the adapter's name: how the panels and the list name what was evaluated. */
  subjectLabel(evaluation: Pick<Evaluation, 'adapterId' | 'model'>): string {
    if (evaluation.adapterId === null) return evaluation.model === 'default' ? 'base model' : `base ${evaluation.model.split(/[\\/]/).pop()}`;
    return this.adapter(evaluation.adapterId)?.name ?? evaluation.adapterId;
  }

  result(id: string): Promise<EvalResult> {
    let pending = this.#results.get(id);
    if (!pending) {
      pending = workbench.evals.result(id);
      this.#results.set(id, pending);
      // A failed read is not cached: the user may fix the file and open the panel again.
      pending.catch(() => this.#results.delete(id));
    }
    return pending;
  }
}

function sortByCreated(evaluations: readonly Evaluation[]): Evaluation[] {
  return [...evaluations].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
}

export const evaluationsStore = new EvaluationsStore();
