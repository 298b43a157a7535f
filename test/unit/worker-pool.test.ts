// Finding 9 (issue 15): short jobs share one capped pool of reused workers; and finding 1's timeout and
// cancellation (the caller went away) end the job by terminating its worker. Fake workers answer here;
// test/integration/dataset-limits.test.ts drives the real engine through the same pool.
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { InspectDatasetJob } from '../../src-shared/worker-protocol.ts';
import { withCallSignal } from '../../src-main/call-context.ts';
import { WorkerPool } from '../../src-main/worker-pool.ts';

const job = (name: string): InspectDatasetJob => ({ type: 'inspect-dataset', path: `/data/${name}.jsonl`, rows: 5, normalizeTo: null });

/** Answers each inspect-dataset job after `delayMs` with a preview naming the job's path; `hang` never answers. */
class FakeEngine extends EventEmitter {
  jobs: InspectDatasetJob[] = [];
  terminated = false;
  constructor(
    private readonly delayMs: number,
    private readonly hang = false,
  ) {
    super();
  }
  postMessage(message: InspectDatasetJob) {
    this.jobs.push(message);
    if (this.hang) return;
    setTimeout(() => {
      if (this.terminated) return;
      this.emit('message', {
        type: 'dataset-inspected',
        sha256: 'x',
        normalized: null,
        preview: {
          path: message.path,
          format: 'jsonl',
          columns: [],
          rows: [],
          mapped: null,
          rowCount: 0,
          partial: false,
          errors: [],
          errorCount: 0,
          suggestedMapping: null,
        },
      });
    }, this.delayMs);
  }
  async terminate() {
    this.terminated = true;
    queueMicrotask(() => this.emit('exit', 1));
    return 1;
  }
}

describe('WorkerPool', () => {
  it('runs 30 jobs on at most 2 workers, reusing them, each answer for its own job', async () => {
    const engines: FakeEngine[] = [];
    const pool = new WorkerPool({ size: 2, createWorker: () => (engines.push(new FakeEngine(2)), engines.at(-1) as unknown as Worker) });
    const answers = await Promise.all(Array.from({ length: 30 }, (_, k) => pool.run(job(`file-${k}`), 'dataset-inspected', { timeoutMs: 5000 })));
    expect(answers.map((a) => a.preview.path)).toEqual(Array.from({ length: 30 }, (_, k) => `/data/file-${k}.jsonl`));
    expect(engines).toHaveLength(2);
    expect(engines.reduce((n, e) => n + e.jobs.length, 0)).toBe(30);
    expect(pool.workerCount).toBe(2);
    await pool.close();
    expect(engines.every((e) => e.terminated)).toBe(true);
  });

  it('replaces a worker after jobsPerWorker jobs', async () => {
    const engines: FakeEngine[] = [];
    const pool = new WorkerPool({ size: 1, jobsPerWorker: 3, createWorker: () => (engines.push(new FakeEngine(1)), engines.at(-1) as unknown as Worker) });
    for (let k = 0; k < 7; k++) await pool.run(job(`f${k}`), 'dataset-inspected', { timeoutMs: 5000 });
    expect(engines.map((e) => e.jobs.length)).toEqual([3, 3, 1]);
    await pool.close();
  });

  it('ends a job past its timeout by terminating its worker, with a message naming the limit', async () => {
    const hanging = new FakeEngine(0, true);
    const pool = new WorkerPool({ size: 1, createWorker: () => hanging as unknown as Worker });
    const error = await pool.run(job('slow'), 'dataset-inspected', { timeoutMs: 50 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkbenchError);
    expect(error).toMatchObject({ code: 'worker_failed', message: expect.stringMatching(/took longer than 0 s/) });
    expect(hanging.terminated).toBe(true);
    await pool.close();
  });

  it('ends the job when the call it answers is aborted (the WebSocket closed), and a queued one before it starts', async () => {
    const engines: FakeEngine[] = [];
    const pool = new WorkerPool({ size: 1, createWorker: () => (engines.push(new FakeEngine(0, true)), engines.at(-1) as unknown as Worker) });
    const caller = new AbortController();
    const running = withCallSignal(caller.signal, () => pool.run(job('a'), 'dataset-inspected', { timeoutMs: 60_000 }));
    const queued = withCallSignal(caller.signal, () => pool.run(job('b'), 'dataset-inspected', { timeoutMs: 60_000 }));
    await new Promise((resolve) => setTimeout(resolve, 10));
    caller.abort();
    await expect(running).rejects.toMatchObject({ code: 'conflict', message: expect.stringMatching(/cancelled/) });
    await expect(queued).rejects.toMatchObject({ code: 'conflict' });
    expect(engines[0]!.terminated).toBe(true);
    expect(engines[0]!.jobs).toHaveLength(1);
    await pool.close();
  });
});
