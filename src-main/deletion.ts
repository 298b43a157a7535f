// Deleting what piles up (issue 15, finding 6): runs with their folders, adapters, evaluations, and the
// size of the data folder they take. Files are removed only inside the data folder: an adapter or a result
// recorded at a path elsewhere (an import, an older layout) loses its row, never the user's own files.
// Anything a worker is using right now is refused with `conflict`.
import { lstatSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { WorkbenchError } from '../src-shared/errors.ts';
import type { Evaluation } from '../src-shared/eval.ts';
import type { Adapter, Run } from '../src-shared/runs.ts';
import type { DataUsage } from '../src-shared/api.ts';
import type { WorkbenchPaths } from './paths.ts';
import type { Store } from './store/index.ts';

export interface DeletionOptions {
  store: Store;
  paths: WorkbenchPaths;
  /** True while a worker trains this run (RunManager.isActive). */
  isTraining: (runId: string) => boolean;
}

const busyEvaluation = (e: Evaluation) => e.status === 'queued' || e.status === 'running';

/** Bytes of the regular files under `target` (symbolic links are not followed). */
export function folderBytes(target: string): number {
  let info;
  try {
    info = lstatSync(target);
  } catch {
    return 0;
  }
  if (info.isFile()) return info.size;
  if (!info.isDirectory()) return 0;
  let total = 0;
  for (const name of readdirSync(target)) total += folderBytes(path.join(target, name));
  return total;
}

export class Deletion {
  constructor(private readonly options: DeletionOptions) {}

  async deleteRun(id: string): Promise<Run[]> {
    const { store, paths } = this.options;
    const run = store.runs.require(id);
    if (this.options.isTraining(id) || run.status === 'running' || run.status === 'queued') {
      throw new WorkbenchError('conflict', `Run ${id} is ${run.status}; stop it before deleting it.`, { status: run.status });
    }
    const adapters = store.adapters.list().filter((a) => a.runId === id);
    this.refuseIfEvaluating(
      adapters.map((a) => a.id),
      `run ${id}`,
    );
    store.runs.delete(id);
    for (const adapter of adapters) this.removeInsideDataDir(adapter.path);
    this.removeInsideDataDir(paths.runDir(id));
    return store.runs.list();
  }

  async deleteAdapter(id: string): Promise<Adapter[]> {
    const { store } = this.options;
    const adapter = store.adapters.require(id);
    this.refuseIfEvaluating([id], `adapter ${id}`);
    store.adapters.delete(id);
    this.removeInsideDataDir(adapter.path);
    return store.adapters.list();
  }

  async deleteEvaluation(id: string): Promise<Evaluation[]> {
    const { store } = this.options;
    const evaluation = store.evaluations.require(id);
    if (busyEvaluation(evaluation))
      throw new WorkbenchError('conflict', `Evaluation ${id} is ${evaluation.status}; stop it before deleting it.`, { status: evaluation.status });
    store.evaluations.delete(id);
    if (evaluation.resultPath) this.removeInsideDataDir(evaluation.resultPath);
    return store.evaluations.list();
  }

  /** The data folder's size, and the part each kind of thing takes. */
  async usage(): Promise<DataUsage> {
    const { dataDir } = this.options.paths;
    let names: string[] = [];
    try {
      names = readdirSync(dataDir);
    } catch {
      // A data folder not created yet takes no room.
    }
    const parts = names.map((name) => ({ name, bytes: folderBytes(path.join(dataDir, name)) })).sort((a, b) => b.bytes - a.bytes);
    return { dataDir, bytes: parts.reduce((sum, p) => sum + p.bytes, 0), parts };
  }

  private refuseIfEvaluating(adapterIds: string[], what: string): void {
    const busy = this.options.store.evaluations.list().find((e) => busyEvaluation(e) && e.adapterId !== null && adapterIds.includes(e.adapterId));
    if (busy)
      throw new WorkbenchError('conflict', `Evaluation ${busy.id} is scoring ${what}; stop it or wait for it before deleting.`, { evaluationId: busy.id });
  }

  private removeInsideDataDir(target: string): void {
    const relative = path.relative(this.options.paths.dataDir, path.resolve(target));
    if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) return;
    rmSync(target, { recursive: true, force: true });
  }
}
