// How many workers a tfjs run trains with (train/data-parallel.ts chooseWorkers): one per core on the
// single-core backends for a large model, bounded by the batch and the RAM; training.workers honoured
// or refused with the field named and a setting that would work.
import { describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { AUTO_MIN_PARAMETERS, chooseWorkers } from '../../src-worker/train/data-parallel.ts';

const GB = 1e9;
const base = {
  requested: null,
  backend: 'wasm' as const,
  batchSize: 8,
  parameterCount: 124e6,
  trainsBaseParameters: false,
  bytesPerWorker: 3 * GB,
  ramBytes: 24 * GB,
  cores: 2,
};

describe('chooseWorkers', () => {
  it('unset: one worker per core on wasm and cpu for a model of real size', () => {
    expect(chooseWorkers(base)).toMatchObject({ workers: 2, reason: 'one per core (2)' });
    expect(chooseWorkers({ ...base, backend: 'cpu', cores: 16 })).toMatchObject({ workers: 8, reason: 'one per row of the batch of 8' });
    expect(chooseWorkers({ ...base, cores: 16, ramBytes: 10 * GB })).toMatchObject({ workers: 3, reason: 'as many as the RAM holds (3.00 GB each)' });
  });

  it('unset: one worker for a small model, a method that trains the base weights, or a parallel backend', () => {
    expect(chooseWorkers({ ...base, parameterCount: AUTO_MIN_PARAMETERS - 1 }).workers).toBe(1);
    expect(chooseWorkers({ ...base, trainsBaseParameters: true }).workers).toBe(1);
    expect(chooseWorkers({ ...base, backend: 'webgpu' }).workers).toBe(1);
    expect(chooseWorkers({ ...base, backend: 'tensorflow' }).workers).toBe(1);
    expect(chooseWorkers({ ...base, batchSize: 1 }).workers).toBe(1);
  });

  it('training.workers is honoured up to one worker per row, whatever the model size', () => {
    expect(chooseWorkers({ ...base, requested: 3, parameterCount: 1e5 })).toMatchObject({ workers: 3, reason: 'training.workers' });
    expect(chooseWorkers({ ...base, requested: 4, batchSize: 2 })).toMatchObject({ workers: 2 });
    expect(chooseWorkers({ ...base, requested: 1 }).workers).toBe(1);
  });

  it('refuses workers on a backend that computes in parallel, and more workers than the RAM holds, naming the field', () => {
    const onGpu = () => chooseWorkers({ ...base, backend: 'webgpu', requested: 2 });
    expect(onGpu).toThrow(WorkbenchError);
    expect(onGpu).toThrow(/training\.workers 2: the webgpu backend .* Leave training\.workers unset/);
    const tooMany = () => chooseWorkers({ ...base, requested: 4, ramBytes: 10 * GB });
    expect(tooMany).toThrow(
      /training\.workers 4: each worker holds .* \(3\.00 GB\), and the machine has 10\.00 GB available: set training\.workers to 3 or less/,
    );
  });
});
