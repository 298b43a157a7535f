// The copy writer: an adapter folder copied file by file into the export folder and proved there. The
// written files, read back into a fresh adapter on the base model, must reproduce the reference logits
// on the probe inputs, and must differ from the base model's.
import fs from 'node:fs';
import path from 'node:path';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { ExportReport } from '../../src-shared/runs.ts';
import {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  checkPeftConfig,
  readSidecar,
  SIDECAR_FILE,
  type TensorData,
  type WrittenFile,
} from '../formats/adapter-folder.ts';
import { readSafetensorsFile, writeFileAtomic } from '../formats/safetensors.ts';
import { maxAbsDiff } from './probe.ts';

/** Verification thresholds: the round trip must be exact up to float noise, the adapter must do something. */
export const MAX_DIFF_TO_TRAINED = 1e-5;
export const MIN_DIFF_TO_BASE = 1e-4;

/** The files of an adapter folder an export copies, read before anything is written. */
export async function readAdapterFiles(sourceDir: string, withPeftConfig: boolean): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for (const name of [ADAPTER_WEIGHTS_FILE, ...(withPeftConfig ? [ADAPTER_CONFIG_FILE] : []), SIDECAR_FILE]) {
    try {
      files.set(name, await fs.promises.readFile(path.join(sourceDir, name)));
    } catch {
      throw new WorkbenchError('not_found', `${sourceDir} has no ${name}; export from a finished adapter or a complete checkpoint.`, {
        file: path.join(sourceDir, name),
      });
    }
  }
  if (withPeftConfig) checkPeftConfig(JSON.parse(new TextDecoder().decode(files.get(ADAPTER_CONFIG_FILE)!)) as Record<string, unknown>);
  return files;
}

export interface CopyVerification {
  /** The logits the written copy must reproduce. */
  reference: { data: Float32Array };
  /** The base model's logits on the same probe. */
  base: { data: Float32Array };
  /** Logits of the base model with the given adapter tensors applied. */
  adaptedLogits(tensors: TensorData): Promise<{ data: Float32Array }>;
}

/** Writes `files` into outDir and verifies them; on any failure the written files are removed again. */
export async function writeVerifiedCopy(
  files: Map<string, Uint8Array>,
  outDir: string,
  verify: CopyVerification,
): Promise<Pick<ExportReport, 'outDir' | 'files' | 'verification'>> {
  await fs.promises.mkdir(outDir, { recursive: true });
  const written: WrittenFile[] = [];
  try {
    for (const [name, bytes] of files) {
      await writeFileAtomic(path.join(outDir, name), bytes);
      written.push({ name, bytes: bytes.byteLength });
    }
    const tensors = (await readSafetensorsFile(path.join(outDir, ADAPTER_WEIGHTS_FILE))).tensors;
    if (files.has(ADAPTER_CONFIG_FILE))
      checkPeftConfig(JSON.parse(await fs.promises.readFile(path.join(outDir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>);
    // A stale adapter_config.json in the folder would make PEFT misread an adapter it cannot load.
    else await fs.promises.rm(path.join(outDir, ADAPTER_CONFIG_FILE), { force: true });
    await readSidecar(outDir);
    const exported = await verify.adaptedLogits(tensors);
    const maxAbsDiffToTrained = maxAbsDiff(exported.data, verify.reference.data);
    const maxAbsDiffToBase = maxAbsDiff(exported.data, verify.base.data);
    if (!(maxAbsDiffToTrained <= MAX_DIFF_TO_TRAINED)) {
      throw new WorkbenchError(
        'export_mismatch',
        `The exported adapter does not reproduce the trained model: its logits differ by up to ${maxAbsDiffToTrained.toExponential(2)} (allowed ${MAX_DIFF_TO_TRAINED}). Nothing was exported; export again, and report a bug if this persists.`,
        { maxAbsDiffToTrained, maxAbsDiffToBase },
      );
    }
    if (!(maxAbsDiffToBase > MIN_DIFF_TO_BASE)) {
      throw new WorkbenchError(
        'export_mismatch',
        `The exported adapter equals the base model (its logits differ from the base model's by at most ${maxAbsDiffToBase.toExponential(2)}): it would change nothing. Train for more steps or with a higher learning rate, then export again.`,
        { maxAbsDiffToTrained, maxAbsDiffToBase },
      );
    }
    // The workbench's own loader read the files back; a check with real PEFT appends 'peft'.
    return { outDir, files: written, verification: { maxAbsDiffToTrained, maxAbsDiffToBase, passed: true, verifiedWith: ['workbench'] } };
  } catch (error) {
    await Promise.all(written.map((f) => fs.promises.rm(path.join(outDir, f.name), { force: true })));
    throw error;
  }
}
