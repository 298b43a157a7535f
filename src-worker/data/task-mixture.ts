// Multi-task batches for bias-aware LoRA's L_align (METHODS.md section 4): each step draws one task by
// the mixture ratio, then the next batch of that task's rows (each task walks its own seeded
// permutations, epoch after epoch). A batch holds one task, so the step trains that task's adapter.
// Like Batcher, the whole state is {epoch, position}: here epoch stays 0 and position counts the
// batches drawn; setState replays the task draws (one random number each) to recover every task's place.
import { WorkbenchError } from '../../src-shared/errors.ts';
import { deriveSeed, mulberry32, shuffled } from '../rng.ts';
import type { BatcherState } from './batcher.ts';

const TASK_STREAM = 0x7a5c_0001;
const ROW_STREAM = 0x7a5c_0002;

/**
 * The probability of drawing each task: `ratios` normalised, or, when empty, each task's share of
 * the rows. Throws a field-named error for a ratio list that does not fit the tasks.
 */
export function mixtureProbabilities(tasks: readonly string[], rowCounts: readonly number[], ratios: readonly number[]): number[] {
  const issue = (message: string) =>
    new WorkbenchError('invalid_input', `biasAware.taskMixture: ${message}`, { issues: [{ path: 'biasAware.taskMixture', message }] });
  const empty = tasks.filter((_, i) => rowCounts[i] === 0);
  if (empty.length) {
    throw new WorkbenchError(
      'invalid_input',
      `biasAware.tasks: no training row has task ${empty.map((t) => JSON.stringify(t)).join(', ')}. Give each row a "task" field naming one of the tasks, or remove the task.`,
      { issues: [{ path: 'biasAware.tasks', message: 'task without rows' }] },
    );
  }
  const weights = ratios.length === 0 ? rowCounts : ratios;
  if (weights.length !== tasks.length)
    throw issue(`${ratios.length} ratios for ${tasks.length} tasks; give one ratio per task, or none for proportional mixing.`);
  if (weights.some((w) => !(w >= 0) || !Number.isFinite(w))) throw issue('ratios must be finite and non-negative.');
  const total = weights.reduce((a, b) => a + b, 0);
  if (!(total > 0)) throw issue('at least one ratio must be positive.');
  return weights.map((w) => w / total);
}

export class TaskMixtureBatcher {
  private readonly cumulative: number[];
  private drawn = 0;
  /** Batches drawn so far per task. */
  private perTask: number[];
  private readonly permutations = new Map<string, number[]>();
  /** The task of the batch `next` returned last (index into `tasks`). */
  lastTask = -1;

  /** `rowsByTask[t]`: the training rows of task t. */
  constructor(
    private readonly rowsByTask: readonly (readonly number[])[],
    probabilities: readonly number[],
    private readonly batchSize: number,
    private readonly seed: number,
  ) {
    let acc = 0;
    this.cumulative = probabilities.map((p) => (acc += p));
    this.perTask = rowsByTask.map(() => 0);
  }

  private drawTask(batch: number): number {
    const u = mulberry32(deriveSeed(this.seed, TASK_STREAM, batch)).next() * this.cumulative.at(-1)!;
    const t = this.cumulative.findIndex((c) => u < c);
    return t === -1 ? this.cumulative.length - 1 : t;
  }

  private permutation(task: number, epoch: number): number[] {
    const key = `${task}:${epoch}`;
    let p = this.permutations.get(key);
    if (!p) {
      // Only the current epochs are needed; old ones would pile up over a long run.
      for (const k of this.permutations.keys()) if (k.startsWith(`${task}:`)) this.permutations.delete(k);
      p = shuffled(this.rowsByTask[task]!, deriveSeed(this.seed, ROW_STREAM, task, epoch));
      this.permutations.set(key, p);
    }
    return p;
  }

  next(): number[] {
    const task = this.drawTask(this.drawn++);
    const rows = this.rowsByTask[task]!;
    const start = this.perTask[task]! * this.batchSize;
    this.perTask[task]!++;
    this.lastTask = task;
    return Array.from({ length: this.batchSize }, (_, j) => {
      const n = start + j;
      return this.permutation(task, Math.floor(n / rows.length))[n % rows.length]!;
    });
  }

  getState(): BatcherState {
    return { epoch: 0, position: this.drawn };
  }

  setState(state: BatcherState): void {
    if (state.epoch !== 0 || !Number.isInteger(state.position) || state.position < 0) {
      throw new Error(`Invalid task-mixture batcher state ${JSON.stringify(state)}`);
    }
    this.perTask = this.rowsByTask.map(() => 0);
    for (let b = 0; b < state.position; b++) this.perTask[this.drawTask(b)]!++;
    this.drawn = state.position;
    this.lastTask = -1;
  }
}

/**
 * The batcher of a multi-task run: every training row must name one of `tasks` in its "task" field
 * (errors give the first offending lines); returns it with the mixture's probabilities.
 */
export function createTaskMixtureBatcher(
  rows: readonly { task?: string; line: number }[],
  trainIndices: readonly number[],
  tasks: readonly string[],
  ratios: readonly number[],
  batchSize: number,
  seed: number,
): { batcher: TaskMixtureBatcher; probabilities: number[] } {
  const rowsByTask = tasks.map(() => [] as number[]);
  const stray: string[] = [];
  for (const i of trainIndices) {
    const t = rows[i]!.task === undefined ? -1 : tasks.indexOf(rows[i]!.task!);
    if (t < 0) stray.push(`line ${rows[i]!.line} (${rows[i]!.task === undefined ? 'no "task" field' : JSON.stringify(rows[i]!.task)})`);
    else rowsByTask[t]!.push(i);
  }
  if (stray.length) {
    throw new WorkbenchError(
      'dataset_invalid',
      `${stray.length} training rows name no task of biasAware.tasks ${JSON.stringify(tasks)}: ${stray.slice(0, 5).join(', ')}${stray.length > 5 ? ', …' : ''}. Give every row a "task" field with one of them.`,
      { issues: [{ path: 'biasAware.tasks', message: 'rows without a listed task' }] },
    );
  }
  const probabilities = mixtureProbabilities(
    tasks,
    rowsByTask.map((r) => r.length),
    ratios,
  );
  return { batcher: new TaskMixtureBatcher(rowsByTask, probabilities, batchSize, seed), probabilities };
}
