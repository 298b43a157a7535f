// SG-LoRA's learned generator (METHODS.md section 5): a conditional VAE over the experts' compressed
// adapter parameters, conditioned on the description embedding e, trained on the bank at generation
// time and sampled for the new description.
//
// Compression: per module, orthonormal bases U (of the experts' column spaces) and Q (row spaces) hold
// every expert exactly: Delta W_i = U C_i Q with C_i = (U^T B_i)(A_i Q^T), R_L x R_R small. The CVAE
// models the concatenated C_i; distances between candidates and the semantic merge are Frobenius
// distances in weight space, since U and Q are orthonormal.
import type * as tfc from '@tensorflow/tfjs-core';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { deriveSeed, mulberry32 } from '../rng.ts';
import { tf } from '../tf.ts';
import { lowRankSvd, mat, matmul, symmetricEigen, type Mat } from './linalg.ts';
import type { ExpertFactors, MergedModule } from './merge.ts';

/** Orthonormal rows spanning the rows of m (eigenvectors of m m^T with a non-negligible eigenvalue). */
function rowBasis(m: Mat): Mat {
  const eig = symmetricEigen(matmul(m, m, false, true));
  const tol = Math.max(eig.values[0] ?? 0, 0) * m.rows * 1e-12;
  const keep = [...eig.values.keys()].filter((i) => eig.values[i]! > tol);
  const scaled = mat(m.rows, keep.length);
  keep.forEach((col, j) => {
    for (let i = 0; i < m.rows; i++) scaled.data[i * keep.length + j] = eig.vectors.data[i * m.rows + col]! / Math.sqrt(eig.values[col]!);
  });
  return matmul(scaled, m, true, false);
}

const transpose = (m: Mat): Mat => {
  const t = mat(m.cols, m.rows);
  for (let i = 0; i < m.rows; i++) for (let j = 0; j < m.cols; j++) t.data[j * m.rows + i] = m.data[i * m.cols + j]!;
  return t;
};

export interface CompressedBank {
  modules: { module: string; u: Mat /* [out, RL] */; q: Mat /* [RR, in] */; offset: number; size: number }[];
  /** One row per expert: its C_i of every module, concatenated. */
  codes: Float64Array[];
  dim: number;
}

/** Shared bases per module and each expert's coordinates in them (exact: U C_i Q = s_i B_i A_i). */
export function compressBank(experts: readonly ExpertFactors[]): CompressedBank {
  const names = [...new Set(experts.flatMap((e) => [...e.modules.keys()]))].sort();
  const codes = experts.map(() => [] as number[]);
  const modules: CompressedBank['modules'] = [];
  let offset = 0;
  for (const module of names) {
    const present = experts.map((e) => e.modules.get(module));
    const withModule = present.filter((m): m is NonNullable<typeof m> => Boolean(m));
    const stackA = mat(
      withModule.reduce((n, m) => n + m.a.rows, 0),
      withModule[0]!.a.cols,
    );
    const stackBt = mat(stackA.rows, withModule[0]!.b.rows);
    let row = 0;
    for (const m of withModule) {
      stackA.data.set(m.a.data, row * stackA.cols);
      stackBt.data.set(transpose(m.b).data, row * stackBt.cols);
      row += m.a.rows;
    }
    const q = rowBasis(stackA);
    const u = transpose(rowBasis(stackBt));
    const size = u.cols * q.rows;
    present.forEach((m, i) => {
      if (!m) {
        codes[i]!.push(...new Array<number>(size).fill(0));
        return;
      }
      const c = matmul(matmul(u, m.b, true, false), matmul(m.a, q, false, true));
      codes[i]!.push(...c.data);
    });
    modules.push({ module, u, q, offset, size });
    offset += size;
  }
  return { modules, codes: codes.map((c) => Float64Array.from(c)), dim: offset };
}

/** Delta W = U C Q of a code, truncated to rank r. */
export function decodeToAdapter(bank: CompressedBank, code: Float64Array, r: number): MergedModule[] {
  return bank.modules.map(({ module, u, q, offset, size }) => {
    const c = mat(u.cols, q.rows, code.subarray(offset, offset + size));
    const svd = lowRankSvd(matmul(u, c), q, r);
    return { module, a: svd.a, b: svd.b, relativeError: svd.relativeError };
  });
}

export interface CvaeOptions {
  latent: number;
  hidden: number;
  steps: number;
  learningRate: number;
  /** Weight of the KL term (beta-VAE); small, since a bank holds only a few experts. */
  beta: number;
  seed: number;
}

export const defaultCvaeOptions: Omit<CvaeOptions, 'seed'> = { latent: 4, hidden: 32, steps: 300, learningRate: 1e-2, beta: 0.1 };

/** Above this many code entries a CVAE on a handful of experts is neither cheap nor meaningful. */
export const MAX_CVAE_DIM = 262_144;

export interface CvaeResult {
  /** Training loss (reconstruction + beta KL, per expert) at every step. */
  losses: number[];
  /** One decoded code per sample, for the target embedding. */
  samples: Float64Array[];
}

/**
 * Trains the CVAE on (codes[i], conditions[i]) and decodes `samples` draws z ~ N(0, I) with the
 * target condition. Every random number (init, reparameterisation noise, samples) comes from the seed.
 */
export async function trainAndSampleCvae(
  codes: readonly Float64Array[],
  conditions: readonly Float32Array[],
  target: Float32Array,
  samples: number,
  options: CvaeOptions,
): Promise<CvaeResult> {
  const n = codes.length;
  const D = codes[0]!.length;
  if (D > MAX_CVAE_DIM) {
    throw new WorkbenchError(
      'invalid_input',
      `The bank's adapters compress to ${D} numbers, too many for the CVAE generator (at most ${MAX_CVAE_DIM}). Use fewer or lower-rank experts, or the semantic-merge generator.`,
      { dim: D },
    );
  }
  const E = target.length;
  const { latent: Z, hidden: H } = options;
  // Standardise: subtract the bank's mean code and divide by one global spread, so the decoder's
  // output is O(1) whatever the adapters' scale.
  const mean = new Float64Array(D);
  for (const c of codes) for (let j = 0; j < D; j++) mean[j]! += c[j]! / n;
  let spread = 0;
  for (const c of codes) for (let j = 0; j < D; j++) spread += (c[j]! - mean[j]!) ** 2;
  spread = Math.sqrt(spread / (n * D)) || 1;
  const x = tf.tensor2d(
    codes.flatMap((c) => Array.from(c, (v, j) => (v - mean[j]!) / spread)),
    [n, D],
  );
  const unit = (e: Float32Array) => {
    const norm = Math.hypot(...e) || 1;
    return Array.from(e, (v) => v / norm);
  };
  const cond = tf.tensor2d(
    conditions.flatMap((e) => unit(e)),
    [n, E],
  );
  const random = mulberry32(deriveSeed(options.seed, 0xc7ae));
  const normal = () => {
    // Box-Muller from the seeded uniform stream.
    const u1 = Math.max(random.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * random.next());
  };
  const init = (rows: number, cols: number) => {
    const bound = Math.sqrt(6 / (rows + cols)); // Glorot uniform
    return tf.variable(
      tf.tensor2d(
        Array.from({ length: rows * cols }, () => (2 * random.next() - 1) * bound),
        [rows, cols],
      ),
    );
  };
  const zeros = (cols: number) => tf.variable(tf.zeros([1, cols]));
  const params = {
    w1: init(D + E, H),
    b1: zeros(H),
    wMu: init(H, Z),
    bMu: zeros(Z),
    wLv: init(H, Z),
    bLv: zeros(Z),
    w3: init(Z + E, H),
    b3: zeros(H),
    w4: init(H, D),
    b4: zeros(D),
  };
  const decode = (z: tfc.Tensor2D, c: tfc.Tensor2D): tfc.Tensor2D =>
    tf.add(tf.matMul(tf.tanh(tf.add(tf.matMul(tf.concat([z, c], 1), params.w3), params.b3)), params.w4), params.b4);
  const optimizer = tf.train.adam(options.learningRate);
  const losses: number[] = [];
  try {
    for (let step = 0; step < options.steps; step++) {
      const eps = tf.tensor2d(Array.from({ length: n * Z }, normal), [n, Z]);
      const loss = optimizer.minimize(() => {
        const h = tf.tanh(tf.add(tf.matMul(tf.concat([x, cond], 1), params.w1), params.b1));
        const mu = tf.add(tf.matMul(h, params.wMu), params.bMu);
        const logVar = tf.add(tf.matMul(h, params.wLv), params.bLv);
        const z = tf.add(mu, tf.mul(tf.exp(tf.mul(logVar, 0.5)), eps)) as tfc.Tensor2D;
        const recon = tf.div(tf.sum(tf.square(tf.sub(decode(z, cond), x))), n);
        const kl = tf.div(tf.mul(-0.5, tf.sum(tf.sub(tf.sub(tf.add(1, logVar), tf.square(mu)), tf.exp(logVar)))), n);
        return tf.add(recon, tf.mul(options.beta, kl)) as tfc.Scalar;
      }, true)!;
      losses.push((await loss.data())[0]!);
      tf.dispose([loss, eps]);
    }
    const zs = tf.tensor2d(Array.from({ length: samples * Z }, normal), [samples, Z]);
    const c = tf.tile(tf.tensor2d(unit(target), [1, E]), [samples, 1]) as tfc.Tensor2D;
    const decoded = tf.tidy(() => decode(zs, c));
    const data = await decoded.data();
    tf.dispose([zs, c, decoded]);
    const out = Array.from({ length: samples }, (_, s) => Float64Array.from({ length: D }, (_, j) => data[s * D + j]! * spread + mean[j]!));
    return { losses, samples: out };
  } finally {
    tf.dispose([x, cond, ...Object.values(params)]);
    optimizer.dispose();
  }
}
