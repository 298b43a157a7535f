// A replica of a training run (data parallel, train/data-parallel.ts): the engine's worker entry
// started by the lead worker with workerData.role 'replica'. It holds its own copy of the model and
// the adapter, and for each step sets the adapter to the lead's values, computes the gradients of its
// share of the batch's rows exactly as the lead computes its own (train/accumulate.ts), and sends
// them back. It never steps an optimizer, writes a file or reports progress: the lead does.
import type { MessagePort } from 'node:worker_threads';
import type * as tfc from '@tensorflow/tfjs-core';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { initBackend } from '../backend.ts';
import { loadCausalLM } from '../formats/model-folder.ts';
import { loadTokenizer } from '../formats/tokenizer.ts';
import { methodOf } from '../methods/index.ts';
import type { AdapterModel } from '../methods/types.ts';
import { setWasmWeightPacking } from '../models/ops.ts';
import type { CausalLM } from '../models/types.ts';
import { tf } from '../tf.ts';
import { accumulateGradients, readShare, type StepOptions } from './accumulate.ts';
import { throwOnXnnWarning } from './out-of-memory.ts';
import { LeadToReplicaSchema, type ReplicaInit, type ReplicaStep, type ReplicaToLead } from './replica-protocol.ts';

interface Replica {
  model: CausalLM;
  adapter: AdapterModel;
  nameOf: Map<string, string>;
  byName: Map<string, { variable: tfc.Variable }>;
  options: StepOptions;
}

async function start(init: ReplicaInit): Promise<Replica> {
  await initBackend(init.backend);
  const model = await loadCausalLM(init.modelDir);
  const { method, settings } = methodOf(init.config);
  const adapter = method.create(model, settings, init.config.training.seed);
  if (init.fitPrompts && adapter.fit) adapter.fit(model, init.fitPrompts, await loadTokenizer(init.modelDir));
  if (init.taskMixture) adapter.setTaskMixture?.(init.taskMixture);
  adapter.releaseFloatWeights?.();
  if (init.backend === 'wasm') setWasmWeightPacking(init.wasmPacking);
  const trainable = adapter.trainable();
  return {
    model,
    adapter,
    nameOf: new Map(trainable.map((p) => [p.variable.name, p.name])),
    byName: new Map(trainable.map((p) => [p.name, p])),
    options: { microBatchSize: init.microBatchSize, recompute: init.recompute, logitsChunkTokens: init.logitsChunkTokens },
  };
}

async function step(replica: Replica, message: ReplicaStep): Promise<ReplicaToLead> {
  const { model, adapter, byName, nameOf, options } = replica;
  for (const [name, data] of message.values) {
    const target = byName.get(name);
    if (!target) throw new WorkbenchError('internal', `The lead sent a value for ${name}, which this replica's adapter does not train.`);
    tf.tidy(() => target.variable.assign(tf.tensor(data, target.variable.shape)));
  }
  adapter.restoreRandomState?.(message.random);
  adapter.selectTask?.(message.task);
  try {
    const variables = [...byName.values()].map((p) => p.variable);
    const sums = accumulateGradients(model, adapter, message.batch, message.rows, nameOf, variables, message.prompts ?? undefined, options);
    const share = await readShare(sums);
    throwOnXnnWarning();
    return { type: 'gradients', ...share };
  } finally {
    adapter.selectTask?.(null);
  }
}

/** Serves the lead on `port` until the lead terminates this thread. */
export function serveReplica(port: MessagePort): void {
  let replica: Replica | null = null;
  // Steps arrive one at a time (the lead waits for every answer), but a message must never overtake init.
  let queue = Promise.resolve();
  const send = (message: ReplicaToLead) => {
    const transfer = message.type === 'gradients' ? [...new Set([...message.grads.values()].map((g) => g.buffer as ArrayBuffer))] : [];
    port.postMessage(message, transfer);
  };
  port.on('message', (raw: unknown) => {
    queue = queue.then(async () => {
      try {
        const message = LeadToReplicaSchema.parse(raw);
        if (message.type === 'init') {
          replica = await start(message);
          send({ type: 'ready' });
        } else {
          if (!replica) throw new WorkbenchError('internal', 'A replica received a step before its init message.');
          send(await step(replica, message));
        }
      } catch (error) {
        // A backend's own failure (a wasm abort) goes back as its message, for the lead to classify with its memory plan.
        const e = error instanceof WorkbenchError ? error : new WorkbenchError('internal', error instanceof Error ? error.message : String(error));
        send({ type: 'failed', error: e.toJSON() });
      }
    });
  });
}
