// The 'merged' export: the adapter folded into the base weights, W = W0 + s B A (transposed for
// GPT-2's Conv1D, which stores W0 as [in, out]), written as a full Hugging Face model folder: every
// safetensors file with its original keys, metadata and dtype, every other file
// (config.json, tokenizer files, the shard index) copied. Verified by loading the folder back as a
// model and comparing its logits with the base model plus the adapter.
import fs from 'node:fs';
import path from 'node:path';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { ExportReport } from '../../src-shared/runs.ts';
import type { WrittenFile } from '../formats/adapter-folder.ts';
import { inspectModelFolder, loadCausalLM } from '../formats/model-folder.ts';
import { readSafetensorsFile, serializeSafetensors, writeFileAtomic, type SafetensorsDtype } from '../formats/safetensors.ts';
import type { AdapterHooks, CausalLM } from '../models/types.ts';
import { readExpert } from '../sg-lora/merge.ts';
import { maxAbsDiff, probeLogits, type Probe } from './probe.ts';

/** Largest |logit| difference allowed between the merged model and base + adapter, for float32 weights. */
export const MAX_MERGED_DIFF = 1e-4;

/**
 * The checkpoint key of a module's weight: `<path>.weight`, or the same without the model-class
 * prefix (the original GPT-2 checkpoints store `h.0.attn.c_attn.weight`, not `transformer.h.0…`).
 */
function weightKey(keys: ReadonlySet<string>, modulePath: string): string | null {
  const full = `${modulePath}.weight`;
  if (keys.has(full)) return full;
  const short = full.slice(full.indexOf('.') + 1);
  return keys.has(short) ? short : null;
}

export async function exportMerged(
  job: { sourceDir: string; modelDir: string; outDir: string },
  model: CausalLM,
  adapter: AdapterHooks,
  probe: Probe,
  log?: (message: string) => void,
): Promise<ExportReport> {
  const { modules } = await readExpert(job.sourceDir);
  const byPath = new Map(model.linearModules().map((m) => [m.path, m]));
  const info = await inspectModelFolder(job.modelDir);
  const weightNames = new Set(info.weightFiles.map((f) => path.basename(f)));
  await fs.promises.mkdir(job.outDir, { recursive: true });
  const files: WrittenFile[] = [];
  const folded = new Set<string>();
  let halfPrecision = false;
  try {
    for (const entry of await fs.promises.readdir(job.modelDir, { withFileTypes: true })) {
      if (!entry.isFile() || weightNames.has(entry.name)) continue;
      const bytes = await fs.promises.readFile(path.join(job.modelDir, entry.name));
      await writeFileAtomic(path.join(job.outDir, entry.name), bytes);
      files.push({ name: entry.name, bytes: bytes.byteLength });
    }
    for (const file of info.weightFiles) {
      const { tensors, metadata } = await readSafetensorsFile(file);
      const keys = new Set(tensors.keys());
      for (const [modulePath, { a, b }] of modules) {
        const key = weightKey(keys, modulePath);
        const module = byPath.get(modulePath);
        if (!key || !module) continue;
        const w = tensors.get(key)!;
        const [out, inF, R] = [b.rows, a.cols, a.rows];
        const expected = module.fanInFanOut ? [inF, out] : [out, inF];
        if (w.shape.join() !== expected.join()) {
          throw new WorkbenchError(
            'format_invalid',
            `${file}: ${key} has shape [${w.shape}], but the adapter's ${modulePath} expects [${expected}]. The adapter belongs to another base model.`,
            { key },
          );
        }
        // Accumulate s B A in float64, then add once, so the fold rounds like a single float32 add.
        for (let o = 0; o < out; o++) {
          for (let i = 0; i < inF; i++) {
            let delta = 0;
            for (let k = 0; k < R; k++) delta += b.data[o * R + k]! * a.data[k * inF + i]!;
            w.data[module.fanInFanOut ? i * out + o : o * inF + i]! += delta;
          }
        }
        folded.add(modulePath);
      }
      const dtypes = new Set([...tensors.values()].map((t) => t.dtype));
      if ([...dtypes].some((d) => d !== 'F32')) halfPrecision = true;
      const dtype: SafetensorsDtype = dtypes.size === 1 ? [...dtypes][0]! : 'F32';
      if (dtypes.size > 1) log?.(`${path.basename(file)} mixes dtypes (${[...dtypes].join(', ')}); the merged file is written as F32.`);
      const bytes = serializeSafetensors(tensors, metadata, dtype);
      await writeFileAtomic(path.join(job.outDir, path.basename(file)), bytes);
      files.push({ name: path.basename(file), bytes: bytes.byteLength });
    }
    const missed = [...modules.keys()].filter((m) => !folded.has(m));
    if (missed.length) {
      throw new WorkbenchError(
        'format_invalid',
        `The base model's weights have no tensor for the adapted modules ${missed.slice(0, 4).join(', ')}; the adapter belongs to another base model.`,
        { modules: missed },
      );
    }

    const merged = await loadCausalLM(job.outDir);
    let maxAbsDiffToTrained: number;
    let maxAbsDiffToBase: number;
    try {
      const got = await probeLogits(merged, null, probe);
      maxAbsDiffToTrained = maxAbsDiff(got.data, (await probeLogits(model, adapter, probe)).data);
      maxAbsDiffToBase = maxAbsDiff(got.data, (await probeLogits(model, null, probe)).data);
    } finally {
      merged.dispose();
    }
    // Half-precision weights round the fold itself: there the merge must stay well inside the adapter's effect.
    const allowed = halfPrecision ? 0.1 * maxAbsDiffToBase : MAX_MERGED_DIFF;
    if (!(maxAbsDiffToTrained <= allowed)) {
      throw new WorkbenchError(
        'export_mismatch',
        `The merged model does not reproduce the base model with the adapter: logits differ by up to ${maxAbsDiffToTrained.toExponential(2)} (allowed ${allowed.toExponential(2)}). Nothing was exported; report a bug if this persists.`,
        { maxAbsDiffToTrained, maxAbsDiffToBase },
      );
    }
    return { outDir: job.outDir, files, verification: { maxAbsDiffToTrained, maxAbsDiffToBase, passed: true, verifiedWith: ['workbench'] } };
  } catch (error) {
    await Promise.all(files.map((f) => fs.promises.rm(path.join(job.outDir, f.name), { force: true })));
    throw error;
  }
}
