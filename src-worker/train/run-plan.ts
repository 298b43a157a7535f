// The memory plan (train/memory-plan.ts) at the two points of a run where it can refuse: before the
// model loads (its weights must fit at all) and after the adapter is attached, before step 1.
import type { BackendName } from '../../src-shared/config.ts';
import { readArchitecture } from '../inspect-model.ts';
import type { AdapterModel } from '../methods/types.ts';
import { setWasmWeightPacking } from '../models/ops.ts';
import { halfStorageAvailable } from '../kernels/half-weights.ts';
import { ADAPTER_FLOATS_PER_PARAM, activeDeviceLimits, assertPlanFits, backendLimits, planMemory, type BackendLimits, type MemoryPlan } from './memory-plan.ts';
import type { ArchitectureShape } from '../models/architecture.ts';

export interface PlanContext {
  shape: ArchitectureShape;
  parameterCount: number;
  /** Parameters the model will hold 16-bit on this backend (kernels/half-weights.ts). */
  halfParams: number;
  /** Parameters a bf16 copy of the checkpoint would hold 16-bit on this backend (for the refusal's advice). */
  halfStorableParams: number;
  limits: BackendLimits;
}

/**
 * Before the model loads: its weights must fit the backend, widened to f32 but for the block matrices
 * of an f16/bf16 checkpoint, which cpu and wasm hold 16-bit (TinyLlama-1.1B's 4.4 GB in f32 do not
 * fit wasm's heap even with QLoRA, which quantizes after loading). Refuses with the figures.
 */
export async function planBeforeLoad(
  modelDir: string,
  backend: BackendName,
  training: { batchSize: number; maxSeqLen: number; microBatchSize: number | null },
): Promise<PlanContext> {
  const architecture = await readArchitecture(modelDir);
  const { shape, parameterCount } = architecture;
  const halfParams = halfStorageAvailable() ? architecture.halfParams : 0;
  const halfStorableParams = halfStorageAvailable() ? architecture.halfStorableParams : 0;
  const limits = backendLimits(backend, backend === 'webgpu' ? activeDeviceLimits() : null);
  const seqLen = Math.min(training.maxSeqLen, shape.maxPositions || training.maxSeqLen);
  // The adapter is not known yet: with none, a run that fails here fails whatever the method.
  assertPlanFits(
    planMemory({
      shape,
      parameterCount,
      batchSize: training.batchSize,
      seqLen,
      microBatchSize: training.microBatchSize,
      trainableParams: 0,
      quantized: null,
      beforeLoad: true,
      halfParams,
      halfStorableParams,
      limits,
    }),
  );
  return { shape, parameterCount, halfParams, halfStorableParams, limits };
}

/** After the adapter is attached: the whole plan, refused before step 1 when it cannot fit. */
export function planRun(
  context: PlanContext,
  adapter: Pick<AdapterModel, 'trainableParamCount' | 'targets' | 'releaseFloatWeights' | 'trainsBaseParameters' | 'trainable'>,
  training: { batchSize: number; maxSeqLen: number; microBatchSize: number | null },
): MemoryPlan {
  const { shape, parameterCount, halfParams, halfStorableParams, limits } = context;
  // QLoRA's adapted layers are held quantized in JavaScript and dequantized one at a time.
  const quantizedSizes = adapter.releaseFloatWeights ? adapter.targets.map((t) => t.inFeatures * t.outFeatures) : [];
  const plan = planMemory({
    shape,
    parameterCount,
    batchSize: training.batchSize,
    seqLen: Math.min(training.maxSeqLen, shape.maxPositions || training.maxSeqLen),
    microBatchSize: training.microBatchSize,
    // Full fine-tuning's trainable parameters are the weights: only their gradient and moments are extra.
    trainableParams: adapter.trainsBaseParameters ? (adapter.trainableParamCount() * 3) / ADAPTER_FLOATS_PER_PARAM : adapter.trainableParamCount(),
    quantized: quantizedSizes.length ? { params: quantizedSizes.reduce((a, b) => a + b, 0), largestModuleParams: Math.max(...quantizedSizes) } : null,
    // Methods that train the base weights hold them as f32 variables, whatever the checkpoint's dtype.
    halfParams: adapter.trainsBaseParameters ? 0 : halfParams,
    halfStorableParams: adapter.trainsBaseParameters ? 0 : halfStorableParams,
    limits,
    allowRecompute: !adapter.trainsBaseParameters,
    // Trained tensors are held whole (only frozen vocabulary tables are sharded, models/lm-head.ts).
    largestTrainedTensorParams: Math.max(0, ...adapter.trainable().map((p) => p.variable.size)),
  });
  assertPlanFits(plan);
  if (limits.backend === 'wasm') setWasmWeightPacking(plan.wasmPacking);
  return plan;
}
