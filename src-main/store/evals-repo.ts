// The evaluations table, mapped to src-shared's Evaluation. The full per-item result lives in a JSON
// file (result_path); rows hold only what lists, comparisons and provenance need.
import type Database from 'better-sqlite3';
import type { BackendChoice } from '../../src-shared/config.ts';
import { ByIdRepository } from './by-id.ts';
import { backendOf, camelCased, parsedJson } from './row-fields.ts';
import {
  DatasetSliceSchema,
  EvalDatasetsSchema,
  EvalProgressSchema,
  type DatasetSlice,
  type EvalDatasets,
  type EvalSuite,
  type Evaluation,
  type EvaluationStatus,
} from '../../src-shared/eval.ts';
import type { BackendInfo } from '../../src-shared/runs.ts';
import { z } from 'zod';

interface EvaluationRow {
  id: string;
  run_id: string | null;
  adapter_id: string | null;
  suite: EvalSuite;
  status: EvaluationStatus;
  model: string;
  backend_choice: BackendChoice;
  backend_name: BackendInfo['name'] | null;
  backend_adapter: string | null;
  seed: number;
  item_limit: number | null;
  datasets: string;
  slices: string | null;
  summary: string | null;
  result_path: string | null;
  progress: string | null;
  error: string | null;
  owner_pid: number | null;
  created_at: string;
  finished_at: string | null;
}

export interface NewEvaluation {
  id: string;
  runId: string | null;
  adapterId: string | null;
  suite: EvalSuite;
  model: string;
  backendChoice: BackendChoice;
  seed: number;
  limit: number | null;
  datasets: EvalDatasets;
  createdAt: string;
  ownerPid: number | null;
}

export interface EvaluationPatch {
  status?: EvaluationStatus;
  backend?: BackendInfo | null;
  slices?: DatasetSlice[] | null;
  summary?: Record<string, number> | null;
  resultPath?: string | null;
  progress?: { done: number; total: number } | null;
  error?: string | null;
  finishedAt?: string | null;
  ownerPid?: number | null;
}

const SummarySchema = z.record(z.string(), z.number());

function toEvaluation(row: EvaluationRow): Evaluation {
  // owner_pid is the store's own bookkeeping, not part of an Evaluation.
  const { backend_name, backend_adapter, item_limit, datasets, slices, summary, progress, owner_pid, ...columns } = row;
  return {
    ...camelCased(columns),
    backend: backendOf(backend_name, backend_adapter),
    limit: item_limit,
    datasets: EvalDatasetsSchema.parse(JSON.parse(datasets)),
    slices: parsedJson(z.array(DatasetSliceSchema), slices),
    summary: parsedJson(SummarySchema, summary),
    progress: parsedJson(EvalProgressSchema, progress),
  };
}

export class EvaluationRepository extends ByIdRepository<EvaluationRow, Evaluation> {
  private readonly insertStmt: Database.Statement;
  private readonly listStmt: Database.Statement;

  constructor(private readonly db: Database.Database) {
    super(db.prepare(`SELECT * FROM evaluations WHERE id = ?`), toEvaluation, 'evaluation');
    this.insertStmt = db.prepare(
      `INSERT INTO evaluations (id, run_id, adapter_id, suite, status, model, backend_choice, seed, item_limit, datasets, owner_pid, created_at)
       VALUES (@id, @runId, @adapterId, @suite, 'queued', @model, @backendChoice, @seed, @limit, @datasets, @ownerPid, @createdAt)`,
    );
    this.listStmt = db.prepare(`SELECT * FROM evaluations ORDER BY created_at DESC, rowid DESC`);
  }

  create(evaluation: NewEvaluation): Evaluation {
    this.insertStmt.run({ ...evaluation, datasets: JSON.stringify(evaluation.datasets) });
    return this.require(evaluation.id);
  }

  list(): Evaluation[] {
    return (this.listStmt.all() as EvaluationRow[]).map(toEvaluation);
  }

  update(id: string, patch: EvaluationPatch): Evaluation {
    const columns: Record<string, unknown> = {};
    if (patch.status !== undefined) columns.status = patch.status;
    if (patch.backend !== undefined) {
      columns.backend_name = patch.backend?.name ?? null;
      columns.backend_adapter = patch.backend?.adapter ?? null;
    }
    if (patch.slices !== undefined) columns.slices = patch.slices && JSON.stringify(patch.slices);
    if (patch.summary !== undefined) columns.summary = patch.summary && JSON.stringify(patch.summary);
    if (patch.resultPath !== undefined) columns.result_path = patch.resultPath;
    if (patch.progress !== undefined) columns.progress = patch.progress && JSON.stringify(patch.progress);
    if (patch.error !== undefined) columns.error = patch.error;
    if (patch.finishedAt !== undefined) columns.finished_at = patch.finishedAt;
    if (patch.ownerPid !== undefined) columns.owner_pid = patch.ownerPid;
    const names = Object.keys(columns);
    if (names.length > 0) {
      const result = this.db.prepare(`UPDATE evaluations SET ${names.map((n) => `${n} = @${n}`).join(', ')} WHERE id = @id`).run({ ...columns, id });
      if (result.changes === 0) this.require(id);
    }
    return this.require(id);
  }

  delete(id: string): void {
    this.require(id);
    this.db.prepare(`DELETE FROM evaluations WHERE id = ?`).run(id);
  }

  /**
   * Marks evaluations still 'queued' or 'running' whose owning process is gone as failed: an
   * evaluation keeps nothing half-done, so there is nothing to resume (unlike a run).
   */
  markInterrupted(isOwnerGone: (pid: number | null) => boolean, message: string, finishedAt: string): string[] {
    const select = this.db.prepare(`SELECT id, owner_pid FROM evaluations WHERE status IN ('queued', 'running')`);
    const mark = this.db.prepare(`UPDATE evaluations SET status = 'failed', error = ?, finished_at = ?, owner_pid = NULL WHERE id = ?`);
    return this.db
      .transaction(() => {
        const candidates = select.all() as { id: string; owner_pid: number | null }[];
        const orphans = candidates.filter((c) => isOwnerGone(c.owner_pid)).map((c) => c.id);
        for (const id of orphans) mark.run(message, finishedAt, id);
        return orphans;
      })
      .immediate();
  }
}
