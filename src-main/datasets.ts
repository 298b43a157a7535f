// PLACEHOLDER written by the lead to fix the constructor signature; the helper building DatasetRegistry replaces this file.
import type { Worker } from 'node:worker_threads';
import { WorkbenchError } from '../src-shared/errors.ts';
import type { Dataset, DatasetPreview, DatasetPreviewRequestInput, DatasetRegisterRequest } from '../src-shared/datasets.ts';
import type { WorkbenchPaths } from './paths.ts';
import type { Store } from './store/index.ts';

export class DatasetRegistry {
  constructor(_options: { store: Store; paths: WorkbenchPaths; createWorker?: () => Worker }) {}
  private missing(): never {
    throw new WorkbenchError('internal', 'DatasetRegistry is not built yet.');
  }
  async preview(_request: DatasetPreviewRequestInput): Promise<DatasetPreview> {
    return this.missing();
  }
  async register(_request: DatasetRegisterRequest): Promise<Dataset> {
    return this.missing();
  }
  async list(): Promise<Dataset[]> {
    return this.missing();
  }
  async remove(_id: string): Promise<Dataset[]> {
    return this.missing();
  }
  async close(): Promise<void> {}
}
