// SG-LoRA's semantic merge (METHODS.md section 5): Delta W* = sum_i w_i s_i B_i A_i per adapted
// module, exact in weight space, then a truncated SVD back to rank r. Averaging the A's and the B's
// separately would be wrong: (sum w_i B_i)(sum w_j A_j) has the cross terms w_i w_j B_i A_j, products
// of factors trained apart whose bases need not line up (and even a single expert with w = 1/2 comes
// out scaled by 1/4).
import fs from 'node:fs';
import path from 'node:path';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, FLATTENED_ADAPTER_DIR, readSidecar } from '../formats/adapter-folder.ts';
import { readSafetensorsFile } from '../formats/safetensors.ts';
import { methodOf } from '../methods/index.ts';
import { lowRankSvd, mat, type Mat } from './linalg.ts';

/** One adapted module of an expert: B already multiplied by the adapter's scale s (alpha / r or alpha / sqrt r). */
export interface ExpertModule {
  a: Mat; // [r_i, in]
  b: Mat; // [out, r_i], scaled
}

export interface ExpertFactors {
  /** Module path -> factors. */
  modules: Map<string, ExpertModule>;
  /** target_modules as the expert's adapter_config.json lists them. */
  targetModules: string[] | string;
  /** The sidecar's base model fingerprint, to refuse mixing base models. */
  fingerprint: string | null;
  /** The folder the factors were read from (a SeLoRA expert contributes its flattened LoRA). */
  dir: string;
}

const KEY = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/;

/** Reads an expert adapter folder as the plain LoRA factors PEFT would apply. */
export async function readExpert(dir: string): Promise<ExpertFactors> {
  const sidecar = await readSidecar(dir);
  let source = dir;
  // An adapter with a flattened form (SeLoRA, whose Delta W depends on the input; a multi-task bias-aware
  // run, whose tasks mix) is the weight-space adapter that form describes.
  const { method, settings } = methodOf(sidecar.config);
  if (method.capabilities.peftForm(settings) === 'flattened' || fs.existsSync(path.join(dir, FLATTENED_ADAPTER_DIR, ADAPTER_WEIGHTS_FILE))) {
    source = path.join(dir, FLATTENED_ADAPTER_DIR);
    if (!fs.existsSync(path.join(source, ADAPTER_WEIGHTS_FILE))) {
      throw new WorkbenchError(
        'not_found',
        `The ${sidecar.method} adapter in ${dir} has no ${FLATTENED_ADAPTER_DIR}/ LoRA to merge; retrain it with this version of the workbench.`,
        { dir },
      );
    }
  }
  const config = JSON.parse(await fs.promises.readFile(path.join(source, ADAPTER_CONFIG_FILE), 'utf8')) as {
    r: number;
    lora_alpha: number;
    use_rslora?: boolean;
    target_modules: string[] | string;
  };
  const scale = config.use_rslora ? config.lora_alpha / Math.sqrt(config.r) : config.lora_alpha / config.r;
  const { tensors } = await readSafetensorsFile(path.join(source, ADAPTER_WEIGHTS_FILE));
  const parts = new Map<string, { a?: Mat; b?: Mat }>();
  for (const [key, t] of tensors) {
    const m = KEY.exec(key);
    if (!m) continue;
    const entry = parts.get(m[1]!) ?? {};
    const [rows, cols] = t.shape as [number, number];
    if (m[2] === 'A') entry.a = mat(rows, cols, t.data);
    else
      entry.b = mat(
        rows,
        cols,
        Float64Array.from(t.data, (v) => v * scale),
      );
    parts.set(m[1]!, entry);
  }
  const modules = new Map<string, ExpertModule>();
  for (const [module, { a, b }] of parts) {
    if (!a || !b) throw new WorkbenchError('format_invalid', `${source}: module ${module} has only one of lora_A / lora_B.`, { dir: source });
    modules.set(module, { a, b });
  }
  if (modules.size === 0) throw new WorkbenchError('format_invalid', `${source} holds no LoRA tensors to merge.`, { dir: source });
  return { modules, targetModules: config.target_modules, fingerprint: sidecar.baseModel.fingerprint, dir: source };
}

/**
 * The weighted sum of products as one pair of factors: B_cat = [w_1 B_1 | w_2 B_2 | …] and
 * A_cat = [A_1; A_2; …], so that B_cat A_cat = sum_i w_i B_i A_i exactly. Experts without the
 * module contribute nothing; null when no expert with a non-zero weight adapts it.
 */
export function concatFactors(experts: readonly { weight: number; factors: ExpertFactors }[], module: string): { b: Mat; a: Mat } | null {
  const parts = experts.flatMap(({ weight, factors }) => {
    const m = factors.modules.get(module);
    return m && weight !== 0 ? [{ weight, ...m }] : [];
  });
  if (parts.length === 0) return null;
  const out = parts[0]!.b.rows;
  const inF = parts[0]!.a.cols;
  const R = parts.reduce((n, p) => n + p.a.rows, 0);
  const b = mat(out, R);
  const a = mat(R, inF);
  let offset = 0;
  for (const p of parts) {
    if (p.b.rows !== out || p.a.cols !== inF) {
      throw new WorkbenchError('invalid_input', `The experts disagree on the shape of ${module}: they were trained on different base models.`, { module });
    }
    const ri = p.a.rows;
    for (let i = 0; i < out; i++) for (let j = 0; j < ri; j++) b.data[i * R + offset + j] = p.weight * p.b.data[i * ri + j]!;
    a.data.set(p.a.data, offset * inF);
    offset += ri;
  }
  return { b, a };
}

export interface MergedModule {
  module: string;
  a: Mat; // [r, in]
  b: Mat; // [out, r]
  relativeError: number;
}

/** Semantic merge of every module any weighted expert adapts, truncated to rank r (the returned B has scale 1). */
export function semanticMerge(experts: readonly { weight: number; factors: ExpertFactors }[], r: number): MergedModule[] {
  const modules = [...new Set(experts.filter((e) => e.weight !== 0).flatMap((e) => [...e.factors.modules.keys()]))].sort();
  return modules.flatMap((module) => {
    const cat = concatFactors(experts, module);
    if (!cat) return [];
    const svd = lowRankSvd(cat.b, cat.a, r);
    return [{ module, a: svd.a, b: svd.b, relativeError: svd.relativeError }];
  });
}

/** Softmax of cos / tau over the top-k cosines; the rest get weight 0. Ties keep the earlier expert. */
export function topKSoftmax(cosines: readonly number[], k: number, temperature: number): number[] {
  const order = cosines.map((c, i) => [c, i] as const).sort((x, y) => y[0] - x[0] || x[1] - y[1]);
  const chosen = order.slice(0, Math.min(k, cosines.length));
  const max = chosen[0]![0];
  const exps = chosen.map(([c]) => Math.exp((c - max) / temperature));
  const sum = exps.reduce((a, b) => a + b, 0);
  const weights = cosines.map(() => 0);
  chosen.forEach(([, i], j) => (weights[i] = exps[j]! / sum));
  return weights;
}
