import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultRunConfig } from '../../src-shared/config.ts';
import type { AdapterSidecar } from '../../src-worker/formats/adapter-folder.ts';
import { getMethod } from '../../src-worker/methods/index.ts';
import { createGPT2, gpt2ConfigFromHF, randomGPT2Weights } from '../../src-worker/models/gpt2.ts';
import { tf } from '../../src-worker/tf.ts';
import { AdamW } from '../../src-worker/train/adamw.ts';
import {
  checkpointName,
  commitCheckpoint,
  listCheckpoints,
  loadCheckpoint,
  readTrainerState,
  saveCheckpoint,
  TRAINER_STATE_FILE,
  type TrainerState,
} from '../../src-worker/train/checkpoint.ts';

const runDir = () => fs.mkdtempSync(path.join(tmpdir(), 'lw-ckpt-'));
const config = defaultRunConfig();

function state(step: number): TrainerState {
  return {
    format: 'lora-workbench-trainer-state',
    version: 1,
    runId: 'run-1',
    step,
    optimizerStep: step,
    batcher: { epoch: 1, position: step % 7 },
    random: { dropoutCalls: 3 * step },
    dataset: { rows: 20, trainRows: 18, validationRows: 2, fingerprint: 'abc' },
    probeInputIds: [[1, 2, 3]],
    config,
    savedAt: new Date(0).toISOString(),
  };
}

/** A writer in the shape saveCheckpoint uses: files first, trainer_state.json last. */
const writeState = (step: number) => async (dir: string) => {
  fs.writeFileSync(path.join(dir, 'adapter_model.safetensors'), `weights of step ${step}`);
  fs.writeFileSync(path.join(dir, TRAINER_STATE_FILE), JSON.stringify(state(step)));
};

describe('commitCheckpoint', () => {
  it('names folders step-NNNNNN and keeps the newest two', async () => {
    const dir = runDir();
    expect(checkpointName(40)).toBe('step-000040');
    for (const step of [20, 40, 60]) await commitCheckpoint(dir, step, writeState(step));
    const list = await listCheckpoints(dir);
    expect(list.map((c) => c.step)).toEqual([40, 60]);
    expect(path.basename(list[1]!.dir)).toBe('step-000060');
    expect(fs.readdirSync(path.join(dir, 'checkpoints')).sort()).toEqual(['step-000040', 'step-000060']);
  });

  it('leaves the previous checkpoint whole when a save dies before its rename', async () => {
    const dir = runDir();
    await commitCheckpoint(dir, 20, writeState(20));
    // The crash: a save of step 40 wrote part of its files into its temporary folder and never renamed it.
    const crashed = path.join(dir, 'checkpoints', '.tmp-step-000040-999-deadbeef');
    fs.mkdirSync(crashed);
    fs.writeFileSync(path.join(crashed, 'adapter_model.safetensors'), 'half a fi');
    expect((await listCheckpoints(dir)).map((c) => c.step)).toEqual([20]);
    expect((await readTrainerState(path.join(dir, 'checkpoints', 'step-000020'))).step).toBe(20);
    expect(fs.readFileSync(path.join(dir, 'checkpoints', 'step-000020', 'adapter_model.safetensors'), 'utf8')).toBe('weights of step 20');
    // The next save clears the dead temporary folder.
    await commitCheckpoint(dir, 40, writeState(40));
    expect(fs.readdirSync(path.join(dir, 'checkpoints')).sort()).toEqual(['step-000020', 'step-000040']);
  });

  it('leaves nothing behind when the writer throws', async () => {
    const dir = runDir();
    await commitCheckpoint(dir, 20, writeState(20));
    await expect(
      commitCheckpoint(dir, 40, async (d) => {
        fs.writeFileSync(path.join(d, 'adapter_model.safetensors'), 'partial');
        throw new Error('disk full');
      }),
    ).rejects.toThrow('disk full');
    expect(fs.readdirSync(path.join(dir, 'checkpoints'))).toEqual(['step-000020']);
  });

  it('replaces a checkpoint of the same step', async () => {
    const dir = runDir();
    await commitCheckpoint(dir, 20, writeState(20));
    await commitCheckpoint(dir, 20, async (d) => {
      await writeState(20)(d);
      fs.writeFileSync(path.join(d, 'adapter_model.safetensors'), 'second');
    });
    expect(fs.readdirSync(path.join(dir, 'checkpoints'))).toEqual(['step-000020']);
    expect(fs.readFileSync(path.join(dir, 'checkpoints', 'step-000020', 'adapter_model.safetensors'), 'utf8')).toBe('second');
  });

  it('does not list a folder without trainer_state.json', async () => {
    const dir = runDir();
    fs.mkdirSync(path.join(dir, 'checkpoints', 'step-000010'), { recursive: true });
    expect(await listCheckpoints(dir)).toEqual([]);
    await expect(readTrainerState(path.join(dir, 'checkpoints', 'step-000010'))).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('saveCheckpoint / loadCheckpoint', () => {
  it('round-trips adapter weights, optimizer moments and trainer state', async () => {
    const gptConfig = gpt2ConfigFromHF({ vocab_size: 40, n_positions: 16, n_embd: 16, n_layer: 1, n_head: 2 });
    const model = createGPT2(gptConfig, randomGPT2Weights(gptConfig, 3));
    const lora = getMethod('lora');
    const adapter = lora.create(model, lora.parseSettings({ r: 2, alpha: 4, targetModules: ['c_attn'] }), 5);
    const params = adapter.trainable();
    const optimizer = new AdamW(['lora_A', 'lora_B'].map((g) => ({ name: g, lr: 0.1, weightDecay: 0, params: params.filter((p) => p.group === g) })));
    optimizer.step(new Map(params.map((p) => [p.name, tf.onesLike(p.variable)])));
    const sidecar: AdapterSidecar = {
      format: 'lora-workbench-adapter',
      version: 1,
      method: 'lora',
      runId: 'run-1',
      step: 7,
      trainableParams: adapter.trainableParamCount(),
      config,
      backend: { name: 'cpu', adapter: 'JavaScript' },
      baseModel: { path: '/models/tiny', fingerprint: null },
      createdAt: new Date(0).toISOString(),
    };
    const dir = runDir();
    const saved = await saveCheckpoint(dir, { adapter, optimizer, state: state(7), baseModelNameOrPath: '/models/tiny', sidecar });
    expect(path.basename(saved)).toBe('step-000007');
    expect(fs.readdirSync(saved).sort()).toEqual([
      'adapter_config.json',
      'adapter_model.safetensors',
      'optimizer.safetensors',
      'trainer_state.json',
      'workbench_adapter.json',
    ]);

    const loaded = await loadCheckpoint(saved);
    expect(loaded.state).toEqual(state(7));
    for (const p of params) {
      expect(Array.from(loaded.adapter.get(p.name)!.data)).toEqual(Array.from(p.variable.dataSync()));
      // One AdamW step with g = 1: m = 0.1, v = 0.001.
      expect(loaded.optimizer.get(`${p.name}.exp_avg`)!.data[0]).toBeCloseTo(0.1, 6);
      expect(loaded.optimizer.get(`${p.name}.exp_avg_sq`)!.data[0]).toBeCloseTo(0.001, 8);
    }
    const other = lora.create(model, lora.parseSettings({ r: 2, alpha: 4, targetModules: ['c_attn'] }), 99);
    other.loadStateDict(loaded.adapter);
    const [a, b] = [adapter.trainable()[0]!.variable, other.trainable()[0]!.variable];
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    optimizer.dispose();
    other.dispose();
    adapter.dispose();
    model.dispose();
  });
});
