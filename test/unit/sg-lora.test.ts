// SG-LoRA (METHODS.md section 5): the low-rank SVD against a dense brute force, the semantic merge
// against the weighted sum of products, the top-k softmax and the CVAE generator.
import { describe, expect, it } from 'vitest';
import { compressBank, decodeToAdapter, trainAndSampleCvae } from '../../src-worker/sg-lora/cvae.ts';
import { lowRankSvd, mat, matmul, symmetricEigen, type Mat } from '../../src-worker/sg-lora/linalg.ts';
import { concatFactors, semanticMerge, topKSoftmax, type ExpertFactors } from '../../src-worker/sg-lora/merge.ts';
import { mulberry32 } from '../../src-worker/rng.ts';

function randomMat(rows: number, cols: number, seed: number): Mat {
  const random = mulberry32(seed);
  return mat(
    rows,
    cols,
    Array.from({ length: rows * cols }, () => 2 * random.next() - 1),
  );
}

const maxDiff = (a: Mat, b: Mat) => a.data.reduce((m, v, i) => Math.max(m, Math.abs(v - b.data[i]!)), 0);
const add = (a: Mat, b: Mat, wb = 1) =>
  mat(
    a.rows,
    a.cols,
    a.data.map((v, i) => v + wb * b.data[i]!),
  );
const scaled = (a: Mat, w: number) =>
  mat(
    a.rows,
    a.cols,
    a.data.map((v) => v * w),
  );
const frob = (a: Mat) => Math.sqrt(a.data.reduce((s, v) => s + v * v, 0));

/** Brute force: the dense [out, in] matrix, its right singular vectors from the in x in matrix M^T M. */
function denseTruncation(m: Mat, r: number): { approx: Mat; singularValues: number[] } {
  const eig = symmetricEigen(matmul(m, m, true, false));
  const vr = mat(m.cols, r);
  for (let i = 0; i < m.cols; i++) for (let j = 0; j < r; j++) vr.data[i * r + j] = eig.vectors.data[i * m.cols + j]!;
  return { approx: matmul(matmul(m, vr), vr, false, true), singularValues: Array.from(eig.values, (l) => Math.sqrt(Math.max(0, l))) };
}

function expert(modules: Record<string, { a: Mat; b: Mat }>): ExpertFactors {
  return { modules: new Map(Object.entries(modules)), targetModules: Object.keys(modules), fingerprint: null, dir: '/nowhere' };
}

describe('linear algebra', () => {
  it('symmetricEigen reconstructs a symmetric matrix with orthonormal vectors', () => {
    const x = randomMat(6, 6, 1);
    const s = add(
      x,
      mat(
        6,
        6,
        Array.from({ length: 36 }, (_, k) => x.data[(k % 6) * 6 + Math.floor(k / 6)]!),
      ),
    );
    const { values, vectors } = symmetricEigen(s);
    const lambda = mat(6, 6);
    values.forEach((v, i) => (lambda.data[i * 6 + i] = v));
    expect(maxDiff(matmul(matmul(vectors, lambda), vectors, false, true), s)).toBeLessThan(1e-12);
    const identity = mat(6, 6);
    for (let i = 0; i < 6; i++) identity.data[i * 6 + i] = 1;
    expect(maxDiff(matmul(vectors, vectors, true, false), identity)).toBeLessThan(1e-12);
    for (let i = 1; i < 6; i++) expect(values[i]!).toBeLessThanOrEqual(values[i - 1]!);
  });

  it('lowRankSvd equals the dense brute-force truncation, never forming [out, in]', () => {
    for (const [out, inF, R, r, seed] of [
      [9, 7, 5, 2, 3],
      [12, 10, 4, 4, 4],
      [6, 11, 6, 3, 5],
      [8, 8, 3, 5, 6],
    ] as const) {
      const b = randomMat(out, R, seed);
      const a = randomMat(R, inF, seed + 100);
      const dense = matmul(b, a);
      const svd = lowRankSvd(b, a, r);
      const brute = denseTruncation(dense, Math.min(r, inF));
      const product = matmul(svd.b, svd.a);
      expect(maxDiff(product, brute.approx)).toBeLessThan(1e-10);
      for (let j = 0; j < Math.min(R, inF); j++) expect(svd.singularValues[j]!).toBeCloseTo(brute.singularValues[j]!, 10);
      expect(svd.relativeError).toBeCloseTo(frob(add(dense, product, -1)) / frob(dense), 10);
      // Split as U sqrt(S) and sqrt(S) V^T: B*^T B* = A* A*^T = S (diagonal).
      const gb = matmul(svd.b, svd.b, true, false);
      const ga = matmul(svd.a, svd.a, false, true);
      expect(maxDiff(gb, ga)).toBeLessThan(1e-10);
      for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) if (i !== j) expect(Math.abs(gb.data[i * r + j]!)).toBeLessThan(1e-10);
      expect(svd.b.cols).toBe(r);
      expect(svd.a.rows).toBe(r);
    }
  });

  it('lowRankSvd handles rank-deficient factors (repeated and zero rows of A)', () => {
    const a0 = randomMat(2, 9, 7);
    const a = mat(5, 9, [...a0.data, ...a0.data, ...new Array(9).fill(0)]);
    const b = randomMat(6, 5, 8);
    const dense = matmul(b, a);
    const svd = lowRankSvd(b, a, 4);
    expect(maxDiff(matmul(svd.b, svd.a), dense)).toBeLessThan(1e-10);
    expect(svd.relativeError).toBeLessThan(1e-7);
    expect(svd.singularValues.length).toBe(2);
  });
});

describe('semantic merge', () => {
  const e1 = expert({ 'h.0.c_attn': { a: randomMat(2, 8, 11), b: randomMat(10, 2, 12) }, 'h.1.c_attn': { a: randomMat(2, 8, 13), b: randomMat(10, 2, 14) } });
  const e2 = expert({ 'h.0.c_attn': { a: randomMat(3, 8, 21), b: randomMat(10, 3, 22) } });
  const dense = (e: ExpertFactors, module: string) => matmul(e.modules.get(module)!.b, e.modules.get(module)!.a);

  it('concatenated factors equal the weighted sum of products exactly', () => {
    const cat = concatFactors(
      [
        { weight: 0.3, factors: e1 },
        { weight: 0.7, factors: e2 },
      ],
      'h.0.c_attn',
    )!;
    const expected = add(scaled(dense(e1, 'h.0.c_attn'), 0.3), dense(e2, 'h.0.c_attn'), 0.7);
    expect(maxDiff(matmul(cat.b, cat.a), expected)).toBeLessThan(1e-14);
    // A module only one expert adapts: the other contributes nothing.
    const only = concatFactors(
      [
        { weight: 0.3, factors: e1 },
        { weight: 0.7, factors: e2 },
      ],
      'h.1.c_attn',
    )!;
    expect(maxDiff(matmul(only.b, only.a), scaled(dense(e1, 'h.1.c_attn'), 0.3))).toBeLessThan(1e-14);
  });

  it('at full rank the merge is the weighted sum; truncated, its error is what the SVD lost', () => {
    const experts = [
      { weight: 0.4, factors: e1 },
      { weight: 0.6, factors: e2 },
    ];
    const full = semanticMerge(experts, 5);
    const expected = add(scaled(dense(e1, 'h.0.c_attn'), 0.4), dense(e2, 'h.0.c_attn'), 0.6);
    const m0 = full.find((m) => m.module === 'h.0.c_attn')!;
    expect(maxDiff(matmul(m0.b, m0.a), expected)).toBeLessThan(1e-12);
    expect(m0.relativeError).toBeLessThan(1e-7);
    const truncated = semanticMerge(experts, 2).find((m) => m.module === 'h.0.c_attn')!;
    expect(truncated.relativeError).toBeGreaterThan(0.01);
    expect(truncated.relativeError).toBeCloseTo(frob(add(expected, matmul(truncated.b, truncated.a), -1)) / frob(expected), 10);
  });

  it('with k = 1 it reproduces that expert', () => {
    const weights = topKSoftmax([0.2, 0.9], 1, 0.1);
    expect(weights).toEqual([0, 1]);
    const merged = semanticMerge(
      [
        { weight: weights[0]!, factors: e1 },
        { weight: weights[1]!, factors: e2 },
      ],
      3,
    );
    expect(merged.map((m) => m.module)).toEqual(['h.0.c_attn']);
    expect(maxDiff(matmul(merged[0]!.b, merged[0]!.a), dense(e2, 'h.0.c_attn'))).toBeLessThan(1e-12);
  });

  it('differs from averaging the A and B matrices separately', () => {
    // Same rank, so the separate average is even defined: (sum w B)(sum w A) carries the cross terms
    // w_i w_j B_i A_j, and a lone expert at weight w comes out scaled by w^2.
    const f1 = { a: randomMat(2, 8, 31), b: randomMat(10, 2, 32) };
    const f2 = { a: randomMat(2, 8, 33), b: randomMat(10, 2, 34) };
    const w = [0.5, 0.5];
    const merged = semanticMerge(
      [
        { weight: w[0]!, factors: expert({ m: f1 }) },
        { weight: w[1]!, factors: expert({ m: f2 }) },
      ],
      4,
    )[0]!;
    const exact = add(scaled(matmul(f1.b, f1.a), 0.5), matmul(f2.b, f2.a), 0.5);
    const averaged = matmul(add(scaled(f1.b, 0.5), f2.b, 0.5), add(scaled(f1.a, 0.5), f2.a, 0.5));
    expect(maxDiff(matmul(merged.b, merged.a), exact)).toBeLessThan(1e-12);
    expect(frob(add(averaged, exact, -1)) / frob(exact)).toBeGreaterThan(0.1);
  });

  it('topKSoftmax keeps the k most similar experts and sharpens with a lower temperature', () => {
    const cos = [0.1, 0.8, 0.5, 0.7];
    const w = topKSoftmax(cos, 2, 0.1);
    expect(w[0]).toBe(0);
    expect(w[2]).toBe(0);
    expect(w[1]! + w[3]!).toBeCloseTo(1, 12);
    expect(w[1]! / w[3]!).toBeCloseTo(Math.exp((0.8 - 0.7) / 0.1), 10);
    expect(topKSoftmax(cos, 2, 0.01)[1]!).toBeGreaterThan(w[1]!);
    expect(topKSoftmax(cos, 10, 1).every((v) => v > 0)).toBe(true);
  });
});

describe('CVAE generator', () => {
  const bank = [
    expert({ m: { a: randomMat(2, 6, 41), b: randomMat(5, 2, 42) }, n: { a: randomMat(2, 6, 43), b: randomMat(5, 2, 44) } }),
    expert({ m: { a: randomMat(2, 6, 51), b: randomMat(5, 2, 52) } }),
    expert({ m: { a: randomMat(2, 6, 61), b: randomMat(5, 2, 62) }, n: { a: randomMat(2, 6, 63), b: randomMat(5, 2, 64) } }),
  ];
  const conditions = [0, 1, 2].map((i) => Float32Array.from({ length: 8 }, (_, j) => Math.cos(i * 1.3 + j)));

  it('compresses every expert exactly into shared orthonormal bases', () => {
    const compressed = compressBank(bank);
    bank.forEach((e, i) => {
      const decoded = decodeToAdapter(compressed, compressed.codes[i]!, 6);
      for (const { module, a, b } of decoded) {
        const m = e.modules.get(module);
        const expected = m ? matmul(m.b, m.a) : mat(5, 6);
        expect(maxDiff(matmul(b, a), expected)).toBeLessThan(1e-10);
      }
    });
  });

  it('trains (its loss falls) and is reproducible from its seed', async () => {
    const { codes } = compressBank(bank);
    const options = { latent: 2, hidden: 16, steps: 200, learningRate: 1e-2, beta: 0.1, seed: 5 };
    const run = await trainAndSampleCvae(codes, conditions, conditions[1]!, 3, options);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(run.losses.slice(-20))).toBeLessThan(0.5 * mean(run.losses.slice(0, 20)));
    expect(run.samples).toHaveLength(3);
    const again = await trainAndSampleCvae(codes, conditions, conditions[1]!, 3, options);
    expect(again.losses).toEqual(run.losses);
    expect(again.samples).toEqual(run.samples);
    const other = await trainAndSampleCvae(codes, conditions, conditions[1]!, 3, { ...options, seed: 6 });
    expect(other.samples[0]).not.toEqual(run.samples[0]);
  });
});
