// The evaluations table, mapped to src-shared's Evaluation. The full per-item result lives in a JSON
// file (result_path); rows hold only what lists, comparisons and provenance need.
import type Database from 'better-sqlite3';
import type { BackendChoice } from '../../src-shared/config.ts';
import { ByIdRepository } from './by-id.ts';
import { backendColumns, backendOf, camelCased, markOrphans, parsedJson, patchColumns, updateColumns } from './row-fields.ts';
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
    const { backend, ...fields } = patch;
    updateColumns(this.db, 'evaluations', { ...patchColumns(fields), ...(backend !== undefined ? backendColumns(backend) : {}) }, { id });
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
    return markOrphans(this.db, 'evaluations', isOwnerGone, { status: 'failed', error: message, finished_at: finishedAt, owner_pid: null });
  }
}
