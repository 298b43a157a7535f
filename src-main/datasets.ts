// The user's datasets: a JSONL / CSV / TSV file previewed and mapped in a worker (inspect-dataset), then
// registered in SQLite with its hash and counts, and written once as the workbench's own JSONL under
// <dataDir>/datasets/<id>.jsonl. Runs name a registered dataset by id and train on that file, so a later
// edit of the user's original changes nothing about the runs made from it (its sha256 says which bytes).
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { DatasetUploadRequestSchema, type CatalogEntry, type DatasetUploadRequest } from '../src-shared/api.ts';
import {
  DatasetPreviewRequestSchema,
  DatasetRegisterRequestSchema,
  type ColumnMapping,
  type Dataset,
  type DatasetPreview,
  type DatasetPreviewRequestInput,
  type DatasetRegisterRequest,
} from '../src-shared/datasets.ts';
import { validate, WorkbenchError } from '../src-shared/errors.ts';
import type { InspectDatasetJob } from '../src-shared/worker-protocol.ts';
import type { WorkbenchPaths } from './paths.ts';
import { newId } from './jobs.ts';
import type { StoredDataset, Store } from './store/index.ts';
import { WorkerPool } from './worker-pool.ts';

const ID_PREFIX = 'ds-';
/** A preview reads 4 MB at most (src-worker/data/inspect-dataset.ts); past this something is wrong with the disk. */
const PREVIEW_TIMEOUT_MS = 60_000;
/** Registering reads and rewrites up to 500 MB on a slow machine. */
const REGISTER_TIMEOUT_MS = 15 * 60_000;

/** Registered dataset ids look like `ds-20250101-120000-a1b2c3` (runs.ts newId); anything else in RunConfig.dataset is a path. */
export function isDatasetId(value: string): boolean {
  return /^ds-\d{8}-\d{6}-[0-9a-f]{6}$/.test(value);
}

export function datasetsDir(paths: Pick<WorkbenchPaths, 'dataDir'>): string {
  return path.join(paths.dataDir, 'datasets');
}

/** "prompt ← question, completion ← answer": how the columns feed training, for lists and the catalog. */
export function describeMapping(mapping: ColumnMapping): string {
  return (['prompt', 'input', 'completion', 'text', 'task'] as const)
    .filter((field) => mapping[field] !== undefined)
    .map((field) => `${field} ← ${mapping[field]}`)
    .join(', ');
}

/** How a registered dataset appears in the New run page's dataset picker. */
export function catalogEntry(dataset: Dataset): CatalogEntry {
  const skipped = dataset.skippedRows > 0 ? `, ${dataset.skippedRows} bad row${dataset.skippedRows === 1 ? '' : 's'} left out` : '';
  return {
    id: dataset.id,
    name: dataset.name,
    path: dataset.normalizedPath,
    description: `${dataset.rowCount} rows from ${path.basename(dataset.sourcePath)} (${dataset.format}${skipped}); ${describeMapping(dataset.mapping)}.`,
  };
}

function publicDataset({ removedAt: _removedAt, ...dataset }: StoredDataset): Dataset {
  return dataset;
}

export class DatasetRegistry {
  private readonly store: Store;
  private readonly paths: WorkbenchPaths;
  private readonly pool: WorkerPool;
  /** A pool given by createServices is shared and closed there; one made here is closed here. */
  private readonly ownsPool: boolean;
  private closed = false;

  constructor(options: { store: Store; paths: WorkbenchPaths; createWorker?: () => Worker; pool?: WorkerPool }) {
    this.store = options.store;
    this.paths = options.paths;
    this.ownsPool = options.pool === undefined;
    this.pool = options.pool ?? new WorkerPool({ createWorker: options.createWorker });
  }

  /** Columns, first rows, bad rows with their lines and a suggested mapping; with a mapping, the rows as training will see them. */
  async preview(input: DatasetPreviewRequestInput): Promise<DatasetPreview> {
    this.assertOpen();
    const request = validate(DatasetPreviewRequestSchema, input, 'dataset preview request');
    const { preview } = await this.inspect(
      { type: 'inspect-dataset', path: path.resolve(request.path), format: request.format, mapping: request.mapping, rows: request.rows, normalizeTo: null },
      PREVIEW_TIMEOUT_MS,
    );
    return preview;
  }

  /**
   * Writes the mapped rows to <dataDir>/datasets/<id>.jsonl and records the dataset. Bad rows are left out and
   * counted (skippedRows); a file with no usable row, or a mapping naming a missing column, is refused.
   */
  async register(input: DatasetRegisterRequest): Promise<Dataset> {
    this.assertOpen();
    const request = validate(DatasetRegisterRequestSchema, input, 'dataset registration');
    const name = request.name.trim();
    if (name === '') throw new WorkbenchError('invalid_input', 'Give the dataset a name.', { field: 'name' });
    if (this.store.datasets.byName(name)) {
      throw new WorkbenchError('conflict', `A dataset named "${name}" is already registered. Pick another name, or remove that one first.`, { field: 'name' });
    }
    const id = newId(ID_PREFIX);
    const dir = datasetsDir(this.paths);
    mkdirSync(dir, { recursive: true });
    const normalizedPath = path.join(dir, `${id}.jsonl`);
    const sourcePath = path.resolve(request.path);
    const result = await this.inspect(
      { type: 'inspect-dataset', path: sourcePath, format: request.format, mapping: request.mapping, rows: 5, normalizeTo: normalizedPath },
      REGISTER_TIMEOUT_MS,
    ).catch((error: unknown) => {
      rmSync(`${normalizedPath}.partial`, { force: true });
      throw error;
    });
    const { preview } = result;
    const written = result.normalized ?? 0;
    if (written === 0) {
      rmSync(normalizedPath, { force: true });
      const shown = preview.errors
        .slice(0, 3)
        .map((e) => `line ${e.line}: ${e.message}`)
        .join('; ');
      throw new WorkbenchError(
        'dataset_invalid',
        preview.rowCount === 0
          ? `${sourcePath} has no rows to train on. A CSV/TSV needs a header and at least one row; a JSONL file one object per line.`
          : `None of the ${preview.rowCount} rows of ${sourcePath} can be used with this mapping (${shown}${preview.errorCount > 3 ? `, and ${preview.errorCount - 3} more` : ''}). Fix the file or map other columns.`,
        { field: 'path', errors: preview.errors, errorCount: preview.errorCount },
      );
    }
    try {
      return publicDataset(
        this.store.datasets.create({
          id,
          name,
          sourcePath,
          format: preview.format,
          mapping: request.mapping,
          sha256: result.sha256,
          rowCount: written,
          skippedRows: preview.errorCount,
          normalizedPath,
          createdAt: new Date().toISOString(),
        }),
      );
    } catch (error) {
      rmSync(normalizedPath, { force: true });
      throw error;
    }
  }

  /** Browser mode's drop zone: the file's text under <dataDir>/uploads/, by a new name, for preview and registration by path. */
  async upload(input: DatasetUploadRequest): Promise<{ path: string }> {
    this.assertOpen();
    const request = validate(DatasetUploadRequestSchema, input, 'dataset upload');
    const base = path
      .basename(request.name)
      .replace(/[^\w.-]+/g, '-')
      .replace(/^[.-]+/, '');
    if (!/\.(jsonl|ndjson|json|csv|tsv|tab)$/i.test(base)) {
      throw new WorkbenchError('invalid_input', `${request.name} is not a dataset file the workbench reads: drop a .jsonl, .csv or .tsv file.`, {
        field: 'name',
      });
    }
    const dir = path.join(this.paths.dataDir, 'uploads');
    mkdirSync(dir, { recursive: true });
    const target = path.join(dir, `${newId()}-${base}`);
    writeFileSync(`${target}.partial`, request.content, 'utf8');
    renameSync(`${target}.partial`, target);
    return { path: target };
  }

  async list(): Promise<Dataset[]> {
    return this.store.datasets.list().map(publicDataset);
  }

  /**
   * Takes a dataset off the list. Its normalized file is deleted unless runs trained on it (usedByRuns): then
   * the file and the id stay so those runs can still be resumed, and only the listing goes.
   */
  async remove(id: string): Promise<Dataset[]> {
    this.assertOpen();
    const dataset = this.store.datasets.require(id);
    if (this.store.datasets.remove(id, new Date().toISOString()) === 'deleted' && existsSync(dataset.normalizedPath)) {
      rmSync(dataset.normalizedPath, { force: true });
    }
    return this.list();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsPool) await this.pool.close();
  }

  private async inspect(job: InspectDatasetJob, timeoutMs: number) {
    return this.pool.run(job, 'dataset-inspected', { timeoutMs });
  }

  private assertOpen(): void {
    if (this.closed) throw new WorkbenchError('conflict', 'The dataset registry is closed (the workbench is shutting down).');
  }
}
