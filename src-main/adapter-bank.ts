// PLACEHOLDER written by the lead to fix the constructor signature; the helper building AdapterBank replaces this file.
import type { Worker } from 'node:worker_threads';
import { WorkbenchError } from '../src-shared/errors.ts';
import type { Adapter } from '../src-shared/runs.ts';
import type { AdapterGenerateReport, AdapterGenerateRequestInput } from '../src-shared/sg-lora.ts';
import type { WorkbenchPaths } from './paths.ts';
import type { Store } from './store/index.ts';

export class AdapterBank {
  constructor(_options: { store: Store; paths: WorkbenchPaths; createWorker?: () => Worker }) {}
  private missing(): never {
    throw new WorkbenchError('internal', 'AdapterBank is not built yet.');
  }
  async describe(_request: { adapterId: string; description: string }): Promise<Adapter> {
    return this.missing();
  }
  async generate(_request: AdapterGenerateRequestInput): Promise<AdapterGenerateReport> {
    return this.missing();
  }
  async close(): Promise<void> {}
}
