// The lifecycle every long worker job shares (src-main/jobs.ts), on a fake worker: one end per job,
// whichever way it ends, and the job kind's own words where the user reads them.
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { MainToWorker, WorkerToMain } from '../../src-shared/worker-protocol.ts';
import { type TrackedJob, WorkerJobs } from '../../src-main/jobs.ts';

class FakeWorker extends EventEmitter {
  readonly posted: MainToWorker[] = [];
  terminations = 0;
  postMessage(message: MainToWorker): void {
    this.posted.push(message);
  }
  terminate(): Promise<number> {
    if (this.terminations++ === 0) setImmediate(() => this.emit('exit', 1));
    return Promise.resolve(1);
  }
}

function setup() {
  const worker = new FakeWorker();
  const ends: { status: string; error: string | null }[] = [];
  const handled: WorkerToMain[] = [];
  const jobs = new WorkerJobs<TrackedJob>(() => worker as unknown as Worker, {
    noun: 'training',
    afterCrash: 'Resume it.',
    handle: (job, message) => {
      handled.push(message);
      if (message.type === 'stopped') jobs.settle(job, () => ends.push({ status: 'stopped', error: null }));
    },
    end: (_job, outcome) => ends.push(outcome),
    notRunning: (id) => new WorkbenchError('conflict', `${id} is not running`),
  });
  // What the job asks the worker to do does not matter to its lifecycle.
  const job = jobs.launch(
    (base) => ({ ...base, id: 'j1' }),
    { type: 'stop' },
    () => {},
  );
  return { worker, jobs, job, ends, handled };
}

describe('WorkerJobs', () => {
  it('ends a crashed job once, as failed, with the crash and what to do', async () => {
    const { worker, job, ends } = setup();
    worker.emit('error', new Error('segfault in a kernel'));
    worker.emit('exit', 7);
    worker.emit('exit', 7);
    await job.done;
    expect(ends).toEqual([{ status: 'failed', error: 'The training worker exited unexpectedly (exit code 7): segfault in a kernel. Resume it.' }]);
  });

  it('closing keeps the end of a job that has settled while its worker still exits', async () => {
    const { worker, jobs, job, ends } = setup();
    worker.emit('message', { type: 'stopped', step: 3 });
    const closedWhileRunning: string[] = [];
    await jobs.close((j) => closedWhileRunning.push(j.id));
    await job.done;
    expect(closedWhileRunning).toEqual([]);
    expect(ends).toEqual([{ status: 'stopped', error: null }]);
  });

  it('fails a job whose worker sends a message outside the protocol, and ignores what follows', async () => {
    const { worker, job, ends, handled } = setup();
    worker.emit('message', { type: 'no-such-message' });
    worker.emit('message', { type: 'log', level: 'info', message: 'late' });
    await job.done;
    expect(handled).toEqual([]);
    expect(ends).toHaveLength(1);
    expect(ends[0]!.error).toMatch(/^The training worker sent an invalid message/);
    expect(worker.terminations).toBe(1);
  });

  it('stops a running job through its worker, and refuses to stop one that is not running', async () => {
    const { worker, jobs, ends } = setup();
    const stopping = jobs.stop('j1', 5000);
    expect(worker.posted.at(-1)).toEqual({ type: 'stop' });
    worker.emit('message', { type: 'stopped', step: 3 });
    await stopping;
    expect(ends).toEqual([{ status: 'stopped', error: null }]);
    expect(jobs.active.has('j1')).toBe(false);
    await expect(jobs.stop('j1', 5000)).rejects.toThrow('j1 is not running');
  });
});
