// The datasets table, mapped to src-shared's Dataset. A removed dataset that runs trained on keeps its row
// (removed_at set): it leaves every list, but the runs naming its id still resolve to its normalized file.
import type Database from 'better-sqlite3';
import { ColumnMappingSchema, type Dataset } from '../../src-shared/datasets.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { ByIdRepository } from './by-id.ts';
import { camelCased } from './row-fields.ts';

interface DatasetRow {
  id: string;
  name: string;
  source_path: string;
  format: Dataset['format'];
  mapping_json: string;
  sha256: string;
  row_count: number;
  skipped_rows: number;
  normalized_path: string;
  created_at: string;
  removed_at: string | null;
  used_by_runs: number;
}

export type NewDataset = Omit<Dataset, 'usedByRuns'>;

export interface StoredDataset extends Dataset {
  /** When the user removed it; null while it is listed. */
  removedAt: string | null;
}

function toDataset(row: DatasetRow): StoredDataset {
  const { mapping_json, ...columns } = row;
  return { ...camelCased(columns), mapping: ColumnMappingSchema.parse(JSON.parse(mapping_json)) };
}

// Runs keep their whole RunConfig as JSON; a run trained on a registered dataset names its id there.
const SELECT = `SELECT d.*, (SELECT COUNT(*) FROM runs r WHERE json_extract(r.config, '$.dataset') = d.id) AS used_by_runs FROM datasets d`;

export class DatasetRepository extends ByIdRepository<DatasetRow, StoredDataset> {
  private readonly insertStmt: Database.Statement;
  private readonly byNameStmt: Database.Statement;
  private readonly listStmt: Database.Statement;
  private readonly deleteStmt: Database.Statement;
  private readonly hideStmt: Database.Statement;

  constructor(db: Database.Database) {
    // get(id): listed or removed, since runs resolve a removed dataset's id too.
    super(db.prepare(`${SELECT} WHERE d.id = ?`), toDataset, 'dataset');
    this.insertStmt = db.prepare(
      `INSERT INTO datasets (id, name, source_path, format, mapping_json, sha256, row_count, skipped_rows, normalized_path, created_at)
       VALUES (@id, @name, @sourcePath, @format, @mappingJson, @sha256, @rowCount, @skippedRows, @normalizedPath, @createdAt)`,
    );
    this.byNameStmt = db.prepare(`${SELECT} WHERE d.name = ? AND d.removed_at IS NULL`);
    this.listStmt = db.prepare(`${SELECT} WHERE d.removed_at IS NULL ORDER BY d.created_at DESC, d.rowid DESC`);
    this.deleteStmt = db.prepare(`DELETE FROM datasets WHERE id = ?`);
    this.hideStmt = db.prepare(`UPDATE datasets SET removed_at = ? WHERE id = ?`);
  }

  create(dataset: NewDataset): StoredDataset {
    if (this.byName(dataset.name)) {
      throw new WorkbenchError('conflict', `A dataset named "${dataset.name}" is already registered. Pick another name, or remove that one first.`, {
        field: 'name',
      });
    }
    const { mapping, ...rest } = dataset;
    this.insertStmt.run({ ...rest, mappingJson: JSON.stringify(mapping) });
    return this.require(dataset.id);
  }

  byName(name: string): StoredDataset | undefined {
    const row = this.byNameStmt.get(name) as DatasetRow | undefined;
    return row && toDataset(row);
  }

  /** Listed datasets, newest first. */
  list(): StoredDataset[] {
    return (this.listStmt.all() as DatasetRow[]).map(toDataset);
  }

  /**
   * Takes a dataset off the lists. Returns 'deleted' when no run used it (the caller deletes its file),
   * 'kept' when runs did (the row stays, hidden, so they can still be resumed).
   */
  remove(id: string, removedAt: string): 'deleted' | 'kept' {
    const dataset = this.require(id);
    if (dataset.removedAt !== null) throw new WorkbenchError('not_found', `Dataset "${dataset.name}" (${id}) was already removed.`, { id });
    if (dataset.usedByRuns > 0) {
      this.hideStmt.run(removedAt, id);
      return 'kept';
    }
    this.deleteStmt.run(id);
    return 'deleted';
  }
}
