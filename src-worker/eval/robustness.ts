// Robustness to perturbation (EVALUATION.md): the task inputs perturbed by each family at each
// level with one seed, the base model and the adapter evaluated on the same perturbed inputs, and
// the metric-vs-level curves, the worst family at each level and the examples whose score moved.
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { HotpotQaExample } from '../data/readers/hotpotqa.ts';
import type { QqpPair } from '../data/readers/qqp.ts';
import type { AdapterModel } from '../methods/types.ts';
import { hotpotF1 } from './metrics.ts';
import { PERTURBATION_LEVELS, perturb, type PerturbationFamily } from './perturb.ts';
import { evenSlice, Progress, runHotpotSuite, runQqpSuite, type HotpotOptions, type SuiteContext } from './suites.ts';

export type RobustnessTask = { kind: 'qqp'; pairs: readonly QqpPair[] } | { kind: 'hotpotqa'; examples: readonly HotpotQaExample[]; options?: HotpotOptions };

/** The figures of one model on one set of inputs: QQP accuracy / F1 / MCC, HotpotQA EM / F1 (/ SemSim). */
export type TaskMetrics = Record<string, number>;

export interface CurvePoint {
  family: PerturbationFamily;
  level: number;
  base: TaskMetrics;
  adapter: TaskMetrics | null;
}

export interface ExampleChange {
  id: string;
  family: PerturbationFamily;
  level: number;
  /** The perturbed input (QQP: both questions, joined by " || "; HotpotQA: the question). */
  input: string;
  /** Per-example score (QQP: 1 if correct; HotpotQA: F1) on the original and the perturbed input. */
  base: { original: number; perturbed: number };
  adapter: { original: number; perturbed: number } | null;
}

export interface RobustnessResult {
  task: RobustnessTask['kind'];
  /** The metric the worst case is taken over. */
  primaryMetric: string;
  seed: number;
  levels: number[];
  families: PerturbationFamily[];
  count: number;
  original: { base: TaskMetrics; adapter: TaskMetrics | null };
  curves: CurvePoint[];
  /** For each level, the family with the lowest primary metric, per model, next to the original. */
  worstCase: { level: number; base: { family: PerturbationFamily; value: number }; adapter: { family: PerturbationFamily; value: number } | null }[];
  /** Examples whose per-example score changed under a perturbation, for either model. */
  changes: ExampleChange[];
}

interface Evaluated {
  metrics: TaskMetrics;
  perItem: number[];
}

function perturbTask(task: RobustnessTask, family: PerturbationFamily, level: number, seed: number): { task: RobustnessTask; inputs: string[] } {
  if (task.kind === 'qqp') {
    const pairs = task.pairs.map((p) => ({
      ...p,
      question1: perturb(p.question1, family, level, seed).text,
      question2: perturb(p.question2, family, level, seed).text,
    }));
    return { task: { kind: 'qqp', pairs }, inputs: pairs.map((p) => `${p.question1} || ${p.question2}`) };
  }
  // Only the question is perturbed: the paragraphs are the evidence, not the user's input.
  const examples = task.examples.map((e) => ({ ...e, question: perturb(e.question, family, level, seed).text }));
  return { task: { kind: 'hotpotqa', examples, options: task.options }, inputs: examples.map((e) => e.question) };
}

async function evaluate(ctx: SuiteContext, task: RobustnessTask, adapters: AdapterModel | null, progress: Progress): Promise<Evaluated> {
  const c = { ...ctx, adapters, progress };
  if (task.kind === 'qqp') {
    const r = await runQqpSuite({ ...c, pairs: task.pairs });
    return { metrics: { accuracy: r.scores.accuracy, f1: r.scores.f1, mcc: r.scores.mcc }, perItem: r.items.map((i) => (i.prediction === i.label ? 1 : 0)) };
  }
  const r = await runHotpotSuite({ ...c, examples: task.examples, options: task.options });
  const semsim = r.report.overall.semsim;
  return {
    metrics: { em: r.report.overall.em, f1: r.report.overall.f1, ...(semsim === undefined ? {} : { semsim }) },
    perItem: r.items.map((i) => hotpotF1(i.prediction, i.gold).f1),
  };
}

export async function runRobustness(
  ctx: SuiteContext & { task: RobustnessTask; families: readonly PerturbationFamily[]; levels?: readonly number[]; seed: number; limit?: number | null },
): Promise<RobustnessResult> {
  if (ctx.families.length === 0) throw new WorkbenchError('invalid_input', 'Pick at least one perturbation family for the robustness evaluation.');
  const levels = [...(ctx.levels ?? PERTURBATION_LEVELS)].filter((l) => l > 0).sort((a, b) => a - b);
  // Unlabelled QQP pairs have no metric; the slice is taken over labelled pairs only, as runQqpSuite does.
  const task: RobustnessTask =
    ctx.task.kind === 'qqp'
      ? {
          kind: 'qqp',
          pairs: evenSlice(
            ctx.task.pairs.filter((p) => p.label !== null),
            ctx.limit,
          ),
        }
      : { ...ctx.task, examples: evenSlice(ctx.task.examples, ctx.limit) };
  const count = task.kind === 'qqp' ? task.pairs.length : task.examples.length;
  if (count === 0) throw new WorkbenchError('invalid_input', 'The robustness slice has no labelled examples.');
  const models = ctx.adapters ? 2 : 1;
  const progress = new Progress(count * models * (1 + ctx.families.length * levels.length), ctx);
  const inner: SuiteContext = { ...ctx, onProgress: ctx.onProgress };

  const originalBase = await evaluate(inner, task, null, progress);
  const originalAdapter = ctx.adapters ? await evaluate(inner, task, ctx.adapters, progress) : null;
  const ids = task.kind === 'qqp' ? task.pairs.map((p) => p.id) : task.examples.map((e) => e.id);

  const curves: CurvePoint[] = [];
  const changes: ExampleChange[] = [];
  for (const family of ctx.families) {
    curves.push({ family, level: 0, base: originalBase.metrics, adapter: originalAdapter?.metrics ?? null });
    for (const level of levels) {
      const perturbed = perturbTask(task, family, level, ctx.seed);
      const base = await evaluate(inner, perturbed.task, null, progress);
      const adapter = ctx.adapters ? await evaluate(inner, perturbed.task, ctx.adapters, progress) : null;
      curves.push({ family, level, base: base.metrics, adapter: adapter?.metrics ?? null });
      ids.forEach((id, i) => {
        const b = { original: originalBase.perItem[i]!, perturbed: base.perItem[i]! };
        const a = adapter && originalAdapter ? { original: originalAdapter.perItem[i]!, perturbed: adapter.perItem[i]! } : null;
        if (b.original !== b.perturbed || (a && a.original !== a.perturbed))
          changes.push({ id, family, level, input: perturbed.inputs[i]!, base: b, adapter: a });
      });
    }
  }

  const primaryMetric = task.kind === 'qqp' ? 'accuracy' : 'f1';
  const worst = (level: number, side: 'base' | 'adapter') => {
    let best: { family: PerturbationFamily; value: number } | null = null;
    for (const point of curves) {
      const m = point[side];
      if (point.level !== level || !m) continue;
      if (!best || m[primaryMetric]! < best.value) best = { family: point.family, value: m[primaryMetric]! };
    }
    return best;
  };
  return {
    task: task.kind,
    primaryMetric,
    seed: ctx.seed,
    levels: [0, ...levels],
    families: [...ctx.families],
    count,
    original: { base: originalBase.metrics, adapter: originalAdapter?.metrics ?? null },
    curves,
    worstCase: [0, ...levels].map((level) => ({ level, base: worst(level, 'base')!, adapter: ctx.adapters ? worst(level, 'adapter') : null })),
    changes,
  };
}
