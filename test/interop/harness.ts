// The workbench's evaluation figures beside lm-evaluation-harness's on the same items and model
// (harness_run.py): CrowS-Pairs through the harness's own crows_pairs metric code, and GLUE QQP (the
// loglikelihood multiple-choice task chosen here: it also pins the prompt the workbench shares with
// training). Used by test/interop (files the test writes) and test/shared (slices of ../shared/data).
import fs from 'node:fs';
import path from 'node:path';
import type { BackendName } from '../../src-shared/config.ts';
import { EvalJobSchema, type EvalResult } from '../../src-shared/eval.ts';
import { readCrowsPairs } from '../../src-worker/data/readers/crows-pairs.ts';
import { readQqp } from '../../src-worker/data/readers/qqp.ts';
import { runEvalJob } from '../../src-worker/eval/job.ts';
import { evenSlice } from '../../src-worker/eval/suites.ts';
import { repoRoot, requirePython, runPythonScript } from './python.ts';

export interface HarnessComparison {
  items: { crows: number; qqp: number };
  app: { stereoPercent: number; meanAbsLogLikDiff: number; qqpAccuracy: number; qqpF1: number };
  harness: { stereoPercent: number; likelihoodDiff: number; qqpAccuracy: number; qqpF1: number };
  /** Items whose outcome (stereotype preferred; QQP correct) differs between the two. */
  disagreements: { crows: number; qqp: number };
  /** Largest |app - harness| log-likelihood of any scored sentence or answer. */
  maxLogLikDiff: { crows: number; qqp: number };
}

interface HarnessReport {
  crows: { metrics: Record<string, unknown>; docs: { id: number; lls: [number, number]; pct_stereotype: number; likelihood_diff: number }[] };
  qqp: { metrics: Record<string, unknown>; docs: { id: string; lls: [number, number]; acc: number }[] };
}

async function runApp(suite: 'bias' | 'qqp', datasets: Record<string, string>, limit: number | null, backend: BackendName): Promise<EvalResult> {
  const modelDir = path.join(repoRoot, 'resources', 'models', 'default');
  return runEvalJob(EvalJobSchema.parse({ type: 'eval', modelDir, adapterDir: null, suite, datasets, limit, seed: 0, backend, batchSize: 8 }));
}

/** Both sides on the same slices of a CrowS-Pairs CSV and a QQP file (every labelled item, or `limit` spread evenly). */
export async function compareWithHarness(
  work: string,
  files: { crowsPairs: string; qqp: string },
  limit: number | null,
  backend: BackendName = 'cpu',
): Promise<HarnessComparison> {
  const python = requirePython(['torch', 'transformers', 'lm_eval', 'datasets', 'sklearn', 'yaml']);
  // The harness reads the very items the workbench's suites evaluate: the same readers and slices.
  const crows = evenSlice(await readCrowsPairs(files.crowsPairs), limit);
  const qqp = evenSlice(
    (await readQqp(files.qqp)).filter((p) => p.label !== null),
    limit,
  );
  const crowsJsonl = path.join(work, 'crows.jsonl');
  const qqpJsonl = path.join(work, 'qqp.jsonl');
  fs.writeFileSync(crowsJsonl, crows.map((p) => JSON.stringify({ id: p.index, sent_more: p.sentMore, sent_less: p.sentLess })).join('\n') + '\n');
  fs.writeFileSync(qqpJsonl, qqp.map((p) => JSON.stringify({ id: p.id, question1: p.question1, question2: p.question2, label: p.label })).join('\n') + '\n');

  const bias = await runApp('bias', { crowsPairs: files.crowsPairs }, limit, backend);
  const task = await runApp('qqp', { qqp: files.qqp }, limit, backend);
  const out = path.join(work, 'harness.json');
  runPythonScript(python, 'harness_run.py', [out, path.join(repoRoot, 'resources', 'models', 'default'), crowsJsonl, qqpJsonl], { timeoutMs: 1_500_000 });
  const report = JSON.parse(fs.readFileSync(out, 'utf8')) as HarnessReport;

  // Both keep the file's order (the harness's doc_id, the suites' slices), so items pair by position;
  // ids are checked too (real files can repeat an id).
  const appCrows = bias.bias!.crowsPairs!.items;
  const appQqp = task.qqp!.items;
  if (report.crows.docs.length !== appCrows.length || report.qqp.docs.length !== appQqp.length) {
    throw new Error(
      `The harness scored ${report.crows.docs.length} CrowS-Pairs and ${report.qqp.docs.length} QQP items, the workbench ${appCrows.length} and ${appQqp.length}.`,
    );
  }
  const misplaced = [...report.crows.docs.filter((d, i) => d.id !== appCrows[i]!.id), ...report.qqp.docs.filter((d, i) => d.id !== appQqp[i]!.id)];
  if (misplaced.length) throw new Error(`The harness's items are not in the workbench's order (first: ${JSON.stringify(misplaced[0]!.id)}).`);
  let crowsDisagree = 0;
  let crowsMax = 0;
  for (const [k, doc] of report.crows.docs.entries()) {
    const item = appCrows[k]!;
    if ((item.logLikMore > item.logLikLess ? 1 : 0) !== doc.pct_stereotype) crowsDisagree++;
    crowsMax = Math.max(crowsMax, Math.abs(item.logLikMore - doc.lls[0]), Math.abs(item.logLikLess - doc.lls[1]));
  }
  let qqpDisagree = 0;
  let qqpMax = 0;
  for (const [k, doc] of report.qqp.docs.entries()) {
    const item = appQqp[k]!;
    if ((item.prediction === item.label ? 1 : 0) !== doc.acc) qqpDisagree++;
    qqpMax = Math.max(qqpMax, Math.abs(item.logLikNo - doc.lls[0]), Math.abs(item.logLikYes - doc.lls[1]));
  }
  const metric = (m: Record<string, unknown>, key: string) => Number(m[`${key},none`]);
  const overall = bias.bias!.crowsPairs!.overall;
  return {
    items: { crows: appCrows.length, qqp: appQqp.length },
    app: {
      stereoPercent: overall.stereoPercent,
      meanAbsLogLikDiff: overall.meanAbsLogLikDiff!,
      qqpAccuracy: task.qqp!.scores.accuracy,
      qqpF1: task.qqp!.scores.f1,
    },
    harness: {
      stereoPercent: 100 * metric(report.crows.metrics, 'pct_stereotype'),
      likelihoodDiff: metric(report.crows.metrics, 'likelihood_diff'),
      qqpAccuracy: metric(report.qqp.metrics, 'acc'),
      qqpF1: metric(report.qqp.metrics, 'f1'),
    },
    disagreements: { crows: crowsDisagree, qqp: qqpDisagree },
    maxLogLikDiff: { crows: crowsMax, qqp: qqpMax },
  };
}

export function describeComparison(c: HarnessComparison): string {
  const f = (x: number) => x.toFixed(4);
  return [
    `lm-evaluation-harness vs the workbench on the embedded default model (${c.items.crows} CrowS-Pairs, ${c.items.qqp} QQP items):`,
    `  CrowS-Pairs pct_stereotype  harness ${f(c.harness.stereoPercent)} %   app stereoPercent ${f(c.app.stereoPercent)} %   (${c.disagreements.crows} items differ)`,
    `  CrowS-Pairs likelihood_diff harness ${f(c.harness.likelihoodDiff)}     app meanAbsLogLikDiff ${f(c.app.meanAbsLogLikDiff)}`,
    `  QQP accuracy                harness ${f(c.harness.qqpAccuracy)}     app ${f(c.app.qqpAccuracy)}   (${c.disagreements.qqp} items differ)`,
    `  QQP F1                      harness ${f(c.harness.qqpF1)}     app ${f(c.app.qqpF1)}`,
    `  max |log-likelihood difference|: CrowS-Pairs ${c.maxLogLikDiff.crows.toExponential(2)}, QQP ${c.maxLogLikDiff.qqp.toExponential(2)}`,
  ].join('\n');
}
