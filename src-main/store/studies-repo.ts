// The studies and study_cells tables. A cell names its run and evaluations by id: they are ordinary
// rows of runs and evaluations, which the cell tags with the study and its point of the grid.
import type Database from 'better-sqlite3';
import { z } from 'zod';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { orNotFound } from './by-id.ts';
import { camelCased, markOrphans, patchColumns, updateColumns } from './row-fields.ts';
import { StudyRecipeSchema, type StudyCell, type StudyRecipe, type StudyStatus } from '../../src-shared/studies.ts';

interface StudyRow {
  id: string;
  name: string;
  title: string;
  recipe: string;
  digest: string;
  source: string | null;
  status: StudyStatus;
  error: string | null;
  owner_pid: number | null;
  created_at: string;
  finished_at: string | null;
}

interface CellRow {
  study_id: string;
  cell_key: string;
  position: number;
  levels: string;
  seed: number;
  status: StudyCell['status'];
  run_id: string | null;
  evaluations: string;
  error: string | null;
  started_at: string | null;
  finished_at: string | null;
}

/** A study's row; the API's Study adds its progress. */
export interface StoredStudy {
  id: string;
  name: string;
  title: string;
  recipe: StudyRecipe;
  digest: string;
  source: string | null;
  status: StudyStatus;
  error: string | null;
  ownerPid: number | null;
  createdAt: string;
  finishedAt: string | null;
}

export interface StudyPatch {
  /** Only with the same grid (digest): new figures, titles and claims. */
  recipe?: StudyRecipe;
  title?: string;
  status?: StudyStatus;
  error?: string | null;
  ownerPid?: number | null;
  finishedAt?: string | null;
}

export interface CellPatch {
  status?: StudyCell['status'];
  runId?: string | null;
  evaluations?: Record<string, string>;
  error?: string | null;
  startedAt?: string | null;
  finishedAt?: string | null;
}

const StringMap = z.record(z.string(), z.string());

function toStudy(row: StudyRow): StoredStudy {
  return { ...camelCased(row), recipe: StudyRecipeSchema.parse(JSON.parse(row.recipe)) };
}

function toCell(row: CellRow): StudyCell {
  // study_id is the key the cell is read by, not part of a StudyCell.
  const { study_id, cell_key, levels, evaluations, ...columns } = row;
  return { ...camelCased(columns), key: cell_key, levels: StringMap.parse(JSON.parse(levels)), evaluations: StringMap.parse(JSON.parse(evaluations)) };
}

export class StudyRepository {
  constructor(private readonly db: Database.Database) {}

  create(
    study: Omit<StoredStudy, 'status' | 'error' | 'finishedAt'>,
    cells: Omit<StudyCell, 'status' | 'runId' | 'evaluations' | 'error' | 'startedAt' | 'finishedAt'>[],
  ): StoredStudy {
    const insertStudy = this.db.prepare(
      `INSERT INTO studies (id, name, title, recipe, digest, source, status, owner_pid, created_at) VALUES (@id, @name, @title, @recipe, @digest, @source, 'queued', @ownerPid, @createdAt)`,
    );
    const insertCell = this.db.prepare(
      `INSERT INTO study_cells (study_id, cell_key, position, levels, seed, status) VALUES (@studyId, @key, @position, @levels, @seed, 'pending')`,
    );
    this.db.transaction(() => {
      insertStudy.run({ ...study, recipe: JSON.stringify(study.recipe) });
      for (const cell of cells)
        insertCell.run({ studyId: study.id, key: cell.key, position: cell.position, levels: JSON.stringify(cell.levels), seed: cell.seed });
    })();
    return this.require(study.id);
  }

  get(id: string): StoredStudy | undefined {
    const row = this.db.prepare(`SELECT * FROM studies WHERE id = ?`).get(id) as StudyRow | undefined;
    return row && toStudy(row);
  }

  require(id: string): StoredStudy {
    return orNotFound(this.get(id), id, 'study', 'List studies (lora-workbench study status)');
  }

  list(): StoredStudy[] {
    return (this.db.prepare(`SELECT * FROM studies ORDER BY created_at DESC, rowid DESC`).all() as StudyRow[]).map(toStudy);
  }

  /** The newest study of this grid: running the recipe again continues (or redraws) it. */
  latestWithDigest(digest: string): StoredStudy | undefined {
    const row = this.db.prepare(`SELECT * FROM studies WHERE digest = ? ORDER BY created_at DESC, rowid DESC LIMIT 1`).get(digest) as StudyRow | undefined;
    return row && toStudy(row);
  }

  update(id: string, patch: StudyPatch): StoredStudy {
    updateColumns(this.db, 'studies', patchColumns(patch), { id });
    return this.require(id);
  }

  cells(studyId: string): StudyCell[] {
    return (this.db.prepare(`SELECT * FROM study_cells WHERE study_id = ? ORDER BY position`).all(studyId) as CellRow[]).map(toCell);
  }

  updateCell(studyId: string, key: string, patch: CellPatch): StudyCell {
    updateColumns(this.db, 'study_cells', patchColumns(patch), { study_id: studyId, cell_key: key });
    const row = this.db.prepare(`SELECT * FROM study_cells WHERE study_id = ? AND cell_key = ?`).get(studyId, key) as CellRow | undefined;
    if (!row) throw new WorkbenchError('not_found', `Study ${studyId} has no cell "${key}".`);
    return toCell(row);
  }

  /** Studies left 'running' or 'queued' by a process that is gone become 'interrupted' (continue them to go on). */
  markInterrupted(isOwnerGone: (pid: number | null) => boolean, message: string): string[] {
    return markOrphans(this.db, 'studies', isOwnerGone, { status: 'interrupted', error: message, owner_pid: null });
  }
}
