// The generate-adapter job (METHODS.md section 5): embed the descriptions with the semantic encoder,
// weight the experts by a softmax over the top-k cosines, build Delta W* (semantic merge or CVAE
// sample), and write it as a plain LoRA in the native adapter layout training writes, so export,
// evaluation and the Playground treat it as any other adapter.
import { commonSettingsOf, RunConfigSchema, type RunConfig } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { GenerateAdapterJob, WorkerToMain } from '../../src-shared/worker-protocol.ts';
import { initBackend } from '../backend.ts';
import { writeUntrainedLora } from '../export/write-adapter.ts';
import { baseModelFingerprint, readSidecar } from '../formats/adapter-folder.ts';
import { probeLogits, readProbe, syntheticProbe } from '../export/probe.ts';
import { loadCausalLM } from '../formats/model-folder.ts';
import { loadTokenizer } from '../formats/tokenizer.ts';
import { LoraModel } from '../methods/lora.ts';
import { cosineSimilarity } from '../eval/metrics.ts';
import { pooledPromptVectors } from '../methods/semantic.ts';
import type { CausalLM } from '../models/types.ts';
import { compressBank, decodeToAdapter, defaultCvaeOptions, trainAndSampleCvae } from './cvae.ts';
import { readExpert, semanticMerge, topKSoftmax, type ExpertFactors, type MergedModule } from './merge.ts';

type AdapterGenerated = Extract<WorkerToMain, { type: 'adapter-generated' }>;

/** Descriptions are embedded from at most this many tokens (the model's positions cap it further). */
const MAX_DESCRIPTION_TOKENS = 256;

/** The base model's mean-pooled final hidden states of each text, adapters off (SeLoRA's base-pooled encoder). */
export async function embedDescriptions(model: CausalLM, modelDir: string, texts: readonly string[]): Promise<Float32Array[]> {
  const tokenizer = await loadTokenizer(modelDir);
  const limit = Math.min(MAX_DESCRIPTION_TOKENS, model.config.maxPositions);
  return pooledPromptVectors(
    model,
    texts.map((t) => tokenizer.encode(t).slice(0, limit)),
  );
}

async function writeGenerated(
  model: CausalLM,
  job: GenerateAdapterJob,
  merged: MergedModule[],
  top: ExpertFactors & { config: RunConfig },
  backend: Awaited<ReturnType<typeof initBackend>>,
): Promise<number> {
  const r = job.request.r;
  // alpha = r: scale 1, the factors carry Delta W* as the SVD split it.
  const lora = { r, alpha: r, dropout: 0, targetModules: merged.map((m) => m.module), useRslora: false };
  const config = RunConfigSchema.parse({ ...commonSettingsOf(top.config), name: job.request.name, method: 'lora', lora, backend: job.request.backend });
  const adapter = new LoraModel(model, lora, job.request.seed);
  try {
    adapter.loadStateDict(
      new Map(
        merged.flatMap(({ module, a, b }) => [
          [`base_model.model.${module}.lora_A.weight`, { shape: [a.rows, a.cols], data: Float32Array.from(a.data) }],
          [`base_model.model.${module}.lora_B.weight`, { shape: [b.rows, b.cols], data: Float32Array.from(b.data) }],
        ]),
      ),
    );
    const saved = await readProbe(top.dir);
    const probe = saved?.probe ?? syntheticProbe(model.config.vocabSize);
    const logits = await probeLogits(model, adapter, probe);
    await writeUntrainedLora(adapter, job.outDir, { modelDir: job.modelDir, runId: job.runId, config, backend, probe, logits });
    return adapter.trainableParamCount();
  } finally {
    adapter.dispose();
  }
}

export async function generateAdapter(job: GenerateAdapterJob, log: (message: string) => void = () => {}): Promise<AdapterGenerated> {
  const { request } = job;
  const backend = await initBackend(request.backend, log);
  const model = await loadCausalLM(job.modelDir);
  try {
    const fingerprint = await baseModelFingerprint(job.modelDir);
    const experts = await Promise.all(job.experts.map(async (e) => ({ ...e, factors: await readExpert(e.dir), config: (await readSidecar(e.dir)).config })));
    const foreign = experts.filter((e) => fingerprint && e.factors.fingerprint && e.factors.fingerprint !== fingerprint);
    if (foreign.length) {
      throw new WorkbenchError(
        'invalid_input',
        `Experts ${foreign.map((e) => `"${e.name}"`).join(', ')} were trained on another base model than ${job.modelDir}; a bank must share one base model.`,
        { experts: foreign.map((e) => e.adapterId) },
      );
    }
    const [target, ...embeddings] = await embedDescriptions(model, job.modelDir, [request.description, ...experts.map((e) => e.description)]);
    const cosines = embeddings.map((e) => cosineSimilarity(target!, e));
    const weights = topKSoftmax(cosines, request.topK, request.temperature);
    const weighted = experts.map((e, i) => ({ weight: weights[i]!, factors: e.factors }));
    log(`Expert weights: ${experts.map((e, i) => `${e.name} ${weights[i]!.toFixed(3)} (cos ${cosines[i]!.toFixed(3)})`).join(', ')}.`);

    let merged = semanticMerge(weighted, request.r);
    let candidates: AdapterGenerated['candidates'];
    if (request.generator === 'cvae') {
      const bank = compressBank(experts.map((e) => e.factors));
      const mergeCode = new Float64Array(bank.dim);
      bank.codes.forEach((code, i) => code.forEach((v, j) => (mergeCode[j]! += weights[i]! * v)));
      const cvae = await trainAndSampleCvae(bank.codes, embeddings, target!, request.samples, { ...defaultCvaeOptions, seed: request.seed });
      log(
        `CVAE trained on ${experts.length} experts (${bank.dim} numbers each): loss ${cvae.losses[0]!.toPrecision(4)} -> ${cvae.losses.at(-1)!.toPrecision(4)}.`,
      );
      const mergeNorm = Math.hypot(...mergeCode) || 1;
      const distances = cvae.samples.map((s) => Math.sqrt(s.reduce((acc, v, j) => acc + (v - mergeCode[j]!) ** 2, 0)) / mergeNorm);
      const best = distances.indexOf(Math.min(...distances));
      candidates = distances.map((distanceToMerge, i) => ({ distanceToMerge, chosen: i === best }));
      merged = decodeToAdapter(bank, cvae.samples[best]!, request.r);
    }
    if (merged.length === 0) throw new WorkbenchError('invalid_input', 'The chosen experts adapt no module; pick experts with trained adapters.');
    const top = experts[weights.indexOf(Math.max(...weights))]!;
    const trainableParams = await writeGenerated(model, job, merged, { ...top.factors, config: top.config }, backend);
    return {
      type: 'adapter-generated',
      adapterDir: job.outDir,
      trainableParams,
      experts: experts.map((e, i) => ({ adapterId: e.adapterId, cosine: cosines[i]!, weight: weights[i]! })),
      truncationError: merged.reduce((s, m) => s + m.relativeError, 0),
      ...(candidates ? { candidates } : {}),
    };
  } finally {
    model.dispose();
  }
}
