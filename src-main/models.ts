// PLACEHOLDER written by the lead to fix the constructor signature; the helper building ModelService replaces this file.
import type { Worker } from 'node:worker_threads';
import { WorkbenchError } from '../src-shared/errors.ts';
import type { GenerateRequestInput, GenerateResult, ModelInspection, ModelInspectRequest } from '../src-shared/models.ts';
import type { WorkbenchPaths } from './paths.ts';
import type { Store } from './store/index.ts';

export class ModelService {
  constructor(_options: { store: Store; paths: WorkbenchPaths; createWorker?: () => Worker }) {}
  private missing(): never {
    throw new WorkbenchError('internal', 'ModelService is not built yet.');
  }
  async inspect(_request: ModelInspectRequest): Promise<ModelInspection> {
    return this.missing();
  }
  async generate(_request: GenerateRequestInput): Promise<GenerateResult> {
    return this.missing();
  }
  async close(): Promise<void> {}
}
