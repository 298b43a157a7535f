// Checkpoints: <runDir>/checkpoints/step-000040/ holding
//   adapter_model.safetensors, adapter_config.json, workbench_adapter.json   (PEFT layout, see formats/adapter-folder.ts)
//   optimizer.safetensors                                                     (AdamW moments per parameter)
//   trainer_state.json                                                        (step, batcher state, config, …)
// A checkpoint is written into a temporary folder and renamed into place, so a crash at any moment
// leaves the previous checkpoints whole and at worst a stale temporary folder, which the next save removes.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { StoredRunConfigSchema } from '../../src-shared/config.ts';
import { readCheckedJson } from '../formats/json-file.ts';
import { readSafetensorsFile, serializeSafetensors, writeFileAtomic } from '../formats/safetensors.ts';
import type { AdapterModel } from '../methods/types.ts';
import { writeAdapter } from '../export/write-adapter.ts';
import { ADAPTER_WEIGHTS_FILE, type AdapterSidecar } from '../formats/adapter-folder.ts';
import type { AdamW } from './adamw.ts';

export const CHECKPOINTS_DIR = 'checkpoints';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_STATE_FILE = 'trainer_state.json';
/** Older checkpoints are deleted once this many newer ones exist. */
export const KEEP_CHECKPOINTS = 2;
const TEMP_PREFIX = '.tmp-';
const NAME = /^step-(\d+)$/;

export const TrainerStateSchema = z.object({
  format: z.literal('lora-workbench-trainer-state'),
  version: z.literal(1),
  runId: z.string(),
  /** Steps completed; a resumed run continues with step + 1. */
  step: z.number().int().min(0),
  optimizerStep: z.number().int().min(0),
  batcher: z.object({ epoch: z.number().int().min(0), position: z.number().int().min(0) }),
  /** The adapter's random streams (AdapterModel.randomState); empty in checkpoints written before it was kept. */
  random: z.record(z.string(), z.number().int().min(0)).default({}),
  /** Checked on resume: a different dataset would silently change which rows the batcher draws. */
  dataset: z.object({ rows: z.number().int(), trainRows: z.number().int(), validationRows: z.number().int(), fingerprint: z.string() }),
  /** Token ids an export of this checkpoint is verified on. */
  probeInputIds: z.array(z.array(z.number().int())),
  config: StoredRunConfigSchema,
  savedAt: z.string(),
});
export type TrainerState = z.infer<typeof TrainerStateSchema>;

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(6, '0')}`;
}

async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await fs.promises.open(dir, 'r');
    await handle.sync().finally(() => handle.close());
  } catch {
    // Not possible on Windows; renames are atomic there without it.
  }
}

/** Completed checkpoints of a run, oldest first. Temporary folders of interrupted saves are not listed. */
export async function listCheckpoints(runDir: string): Promise<{ step: number; dir: string }[]> {
  const root = path.join(runDir, CHECKPOINTS_DIR);
  const names = await fs.promises.readdir(root).catch(() => [] as string[]);
  const found: { step: number; dir: string }[] = [];
  for (const name of names) {
    const match = NAME.exec(name);
    if (!match) continue;
    const dir = path.join(root, name);
    if (fs.existsSync(path.join(dir, TRAINER_STATE_FILE))) found.push({ step: Number(match[1]), dir });
  }
  return found.sort((a, b) => a.step - b.step);
}

/**
 * Runs `write` on an empty temporary folder, then renames it to checkpoints/step-NNNNNN (replacing a
 * checkpoint of the same step), removes interrupted saves and keeps the newest `keep` checkpoints.
 */
export async function commitCheckpoint(runDir: string, step: number, write: (dir: string) => Promise<void>, keep = KEEP_CHECKPOINTS): Promise<string> {
  const root = path.join(runDir, CHECKPOINTS_DIR);
  await fs.promises.mkdir(root, { recursive: true });
  const name = checkpointName(step);
  const temp = path.join(root, `${TEMP_PREFIX}${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
  await fs.promises.mkdir(temp);
  try {
    await write(temp);
  } catch (error) {
    await fs.promises.rm(temp, { recursive: true, force: true });
    throw error;
  }
  const final = path.join(root, name);
  if (fs.existsSync(final)) {
    // rename() cannot replace a non-empty folder: move the old one aside first.
    const old = path.join(root, `${TEMP_PREFIX}old-${name}-${randomBytes(4).toString('hex')}`);
    await fs.promises.rename(final, old);
    await fs.promises.rename(temp, final);
    await fs.promises.rm(old, { recursive: true, force: true });
  } else {
    await fs.promises.rename(temp, final);
  }
  await syncDir(root);
  // One trainer writes a run's folder at a time, so every other temporary folder is a dead save.
  for (const entry of await fs.promises.readdir(root)) {
    if (entry.startsWith(TEMP_PREFIX)) await fs.promises.rm(path.join(root, entry), { recursive: true, force: true });
  }
  const all = await listCheckpoints(runDir);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) await fs.promises.rm(old.dir, { recursive: true, force: true });
  return final;
}

export interface CheckpointContent {
  adapter: AdapterModel;
  optimizer: AdamW;
  state: TrainerState;
  baseModelNameOrPath: string;
  sidecar: AdapterSidecar;
}

export async function saveCheckpoint(runDir: string, content: CheckpointContent, keep = KEEP_CHECKPOINTS): Promise<string> {
  const state = TrainerStateSchema.parse(content.state);
  return commitCheckpoint(
    runDir,
    state.step,
    async (dir) => {
      await writeAdapter(content.adapter, dir, { baseModelNameOrPath: content.baseModelNameOrPath, sidecar: content.sidecar });
      // The optimizer's tensors stay alive (they are its state): copy them out without disposing.
      const moments = new Map<string, { shape: number[]; data: Float32Array }>();
      for (const [name, t] of content.optimizer.stateDict())
        moments.set(name, { shape: [...t.shape], data: Float32Array.from((await t.data()) as Float32Array) });
      await writeFileAtomic(path.join(dir, OPTIMIZER_FILE), serializeSafetensors(moments, { step: String(content.optimizer.stepCount) }));
      // trainer_state.json last: listCheckpoints treats a folder without it as incomplete.
      await writeFileAtomic(path.join(dir, TRAINER_STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
    },
    keep,
  );
}

export function readTrainerState(dir: string): Promise<TrainerState> {
  return readCheckedJson(path.join(dir, TRAINER_STATE_FILE), TrainerStateSchema, {
    whenMissing: `${dir} is not a complete checkpoint (no ${TRAINER_STATE_FILE}); resume from an earlier one.`,
  });
}

export interface LoadedCheckpoint {
  state: TrainerState;
  adapter: Map<string, { shape: number[]; data: Float32Array }>;
  optimizer: Map<string, { shape: number[]; data: Float32Array }>;
}

export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const state = await readTrainerState(dir);
  const adapter = (await readSafetensorsFile(path.join(dir, ADAPTER_WEIGHTS_FILE))).tensors;
  const optimizer = (await readSafetensorsFile(path.join(dir, OPTIMIZER_FILE))).tensors;
  return { state, adapter, optimizer };
}
