// An evaluation job in the worker: start the backend, load the model (and the adapter, read back
// as an export is), read the datasets, run the suite and return the figures with everything needed
// to store them: backend, seed, dataset slices (path, limit, hash) and adapter.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { EvalResultSchema, type DatasetSlice, type EvalJob, type EvalResult } from '../../src-shared/eval.ts';
import { initBackend } from '../backend.ts';
import type { BbqExample } from '../data/readers/bbq.ts';
import type { CrowsPair } from '../data/readers/crows-pairs.ts';
import type { HotpotQaExample } from '../data/readers/hotpotqa.ts';
import type { Conversation } from '../data/readers/oasst1.ts';
import { getDataset } from '../data/readers/index.ts';
import type { QqpPair } from '../data/readers/qqp.ts';
import type { StereoSetExample } from '../data/readers/stereoset.ts';
import type { TextDocument } from '../data/readers/text-corpus.ts';
import { ADAPTER_WEIGHTS_FILE, readSidecar } from '../formats/adapter-folder.ts';
import { loadCausalLM } from '../formats/model-folder.ts';
import { readSafetensorsFile } from '../formats/safetensors.ts';
import { loadTokenizer } from '../formats/tokenizer.ts';
import { methodOf } from '../methods/index.ts';
import type { AdapterModel } from '../methods/types.ts';
import type { CausalLM } from '../models/types.ts';
import { parameterOverhead } from './bias-metrics.ts';
import type { PerturbationFamily } from './perturb.ts';
import { runRobustness } from './robustness.ts';
import { prefixTokenOf, ScoringStopped } from './score.ts';
import { BaseModelEncoder, loadBertSemanticEncoder, type SemanticEncoder } from './semsim.ts';
import { evenSlice, measureRepresentationShift, runBiasSuite, runHotpotSuite, runPerplexitySuite, runQqpSuite, type SuiteContext } from './suites.ts';

export interface EvalCallbacks {
  onProgress?: (done: number, total: number) => void;
  log?: (message: string) => void;
  shouldStop?: () => boolean;
}

/** An adapter folder read back onto `model` the way the export verifies one. */
export async function loadAdapter(model: CausalLM, dir: string): Promise<{ adapter: AdapterModel; info: NonNullable<EvalResult['adapter']> }> {
  const sidecar = await readSidecar(dir);
  const { method, settings } = methodOf(sidecar.config);
  const { tensors } = await readSafetensorsFile(path.join(dir, ADAPTER_WEIGHTS_FILE));
  const adapter = method.create(model, settings, sidecar.config.training.seed);
  try {
    adapter.loadStateDict(tensors);
  } catch (error) {
    adapter.dispose();
    throw error;
  }
  return { adapter, info: { dir, method: sidecar.method, runId: sidecar.runId, step: sidecar.step, trainableParams: sidecar.trainableParams } };
}

/** sha256 of a dataset file, or of a folder's files (names and bytes, in name order). */
export async function hashDatasetPath(p: string): Promise<string> {
  const hash = createHash('sha256');
  const stat = await fs.promises.stat(p).catch(() => null);
  if (!stat) throw new WorkbenchError('not_found', `Dataset path ${p} does not exist. Pick another file or folder.`, { path: p });
  if (stat.isDirectory()) {
    for (const name of (await fs.promises.readdir(p)).sort()) {
      const file = path.join(p, name);
      if (!(await fs.promises.stat(file)).isFile()) continue;
      hash.update(`${name}\0`);
      hash.update(await fs.promises.readFile(file));
    }
  } else {
    hash.update(await fs.promises.readFile(p));
  }
  return hash.digest('hex');
}

export async function runEvalJob(job: EvalJob, callbacks: EvalCallbacks = {}): Promise<EvalResult> {
  const startedAt = new Date();
  const backend = await initBackend(job.backend, callbacks.log);
  const model = await loadCausalLM(job.modelDir);
  callbacks.log?.(`Evaluating ${job.suite} on ${job.modelDir}${job.adapterDir ? ` with the adapter ${job.adapterDir}` : ''} (${backend.name}).`);
  let adapter: Awaited<ReturnType<typeof loadAdapter>> | null = null;
  let semanticEncoder: SemanticEncoder | null = null;
  try {
    const tokenizer = await loadTokenizer(job.modelDir);
    if (job.adapterDir) adapter = await loadAdapter(model, job.adapterDir);
    const notes: string[] = [];
    const slices: DatasetSlice[] = [];
    const read = async <Row>(id: string, key: keyof EvalJob['datasets']): Promise<Row[]> => {
      const p = job.datasets[key]!;
      const loaded = await getDataset(id).read(p);
      notes.push(...loaded.notes.map((n: string) => `${id}: ${n}`));
      const rows = loaded.rows as Row[];
      // The suites slice the same way; the count is recorded here so the stored slice says how many were used.
      const usable = id === 'qqp' ? (rows as QqpPair[]).filter((r) => r.label !== null).length : rows.length;
      slices.push({ dataset: id, path: p, limit: job.limit, count: evenSlice(new Array(usable).fill(0), job.limit).length, sha256: await hashDatasetPath(p) });
      return rows;
    };
    const ctx: SuiteContext = {
      model,
      tokenizer,
      adapters: adapter?.adapter ?? null,
      prefixTokenId: prefixTokenOf(tokenizer),
      batchSize: job.batchSize,
      onProgress: callbacks.onProgress,
      shouldStop: callbacks.shouldStop,
    };
    const result: Omit<EvalResult, 'finishedAt' | 'durationMs'> = {
      suite: job.suite,
      modelDir: job.modelDir,
      adapter: adapter?.info ?? null,
      backend,
      seed: job.seed,
      slices,
      startedAt: startedAt.toISOString(),
      notes,
    };
    const hotpotOptions = { maxNewTokens: job.maxNewTokens, paragraphs: job.paragraphs };
    const usesHotpot = job.suite === 'hotpotqa' || (job.suite === 'robustness' && job.robustness?.task === 'hotpotqa');
    if (usesHotpot) {
      semanticEncoder = job.encoderDir ? await loadBertSemanticEncoder(job.encoderDir) : new BaseModelEncoder(model, tokenizer);
      ctx.semanticEncoder = semanticEncoder;
      notes.push(`SemSim encoder: ${semanticEncoder.name}.`);
    }
    if (job.suite === 'bias') {
      const datasets = {
        crowsPairs: job.datasets.crowsPairs ? await read<CrowsPair>('crows-pairs', 'crowsPairs') : undefined,
        stereoSet: job.datasets.stereoSet ? await read<StereoSetExample>('stereoset', 'stereoSet') : undefined,
        bbq: job.datasets.bbq ? await read<BbqExample>('bbq', 'bbq') : undefined,
      };
      const bias = await runBiasSuite({ ...ctx, datasets, limit: job.limit });
      // Representation shift is measured on the CrowS-Pairs sentences the suite scored.
      const shiftTexts = datasets.crowsPairs ? evenSlice(datasets.crowsPairs, job.limit).map((p) => p.sentMore) : [];
      const representationShift = adapter && shiftTexts.length > 0 ? await measureRepresentationShift({ ...ctx, adapters: adapter.adapter }, shiftTexts) : null;
      const overhead = adapter ? { trainable: adapter.info.trainableParams, base: model.parameterCount() } : null;
      result.bias = {
        ...bias,
        representationShift,
        parameterOverhead: overhead && { ...overhead, percent: parameterOverhead(overhead.trainable, overhead.base) },
      };
    } else if (job.suite === 'qqp') {
      result.qqp = await runQqpSuite({ ...ctx, pairs: await read<QqpPair>('qqp', 'qqp'), limit: job.limit, counterfactual: true });
    } else if (job.suite === 'hotpotqa') {
      const hotpot = await runHotpotSuite({ ...ctx, examples: await read<HotpotQaExample>('hotpotqa', 'hotpotqa'), limit: job.limit, options: hotpotOptions });
      result.hotpotqa = { ...hotpot, semanticEncoder: semanticEncoder?.name };
    } else if (job.suite === 'perplexity') {
      result.perplexity = await runPerplexitySuite({
        ...ctx,
        documents: job.datasets.text ? await read<TextDocument>('text-corpus', 'text') : undefined,
        conversations: job.datasets.oasst1 ? await read<Conversation>('oasst1', 'oasst1') : undefined,
        limit: job.limit,
      });
    } else {
      const r = job.robustness!;
      const task =
        r.task === 'qqp'
          ? { kind: 'qqp' as const, pairs: await read<QqpPair>('qqp', 'qqp') }
          : { kind: 'hotpotqa' as const, examples: await read<HotpotQaExample>('hotpotqa', 'hotpotqa'), options: hotpotOptions };
      result.robustness = await runRobustness({
        ...ctx,
        task,
        families: r.families as PerturbationFamily[],
        levels: r.levels,
        seed: job.seed,
        limit: job.limit,
      });
    }
    const finishedAt = new Date();
    return EvalResultSchema.parse({ ...result, finishedAt: finishedAt.toISOString(), durationMs: finishedAt.getTime() - startedAt.getTime() });
  } finally {
    semanticEncoder?.dispose();
    adapter?.adapter.dispose();
    model.dispose();
  }
}

export { ScoringStopped };
