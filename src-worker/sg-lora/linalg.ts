// Small dense linear algebra in float64 for SG-LoRA's merge (METHODS.md section 5). The merged
// Delta W = sum_i B_i A_i is [out, in] but has rank at most R = sum of the experts' ranks, so its SVD
// is computed in the R-dimensional factor basis: never as a dense [out, in] matrix.

/** Row-major dense matrix. */
export interface Mat {
  rows: number;
  cols: number;
  data: Float64Array;
}

export const mat = (rows: number, cols: number, data?: ArrayLike<number>): Mat => ({
  rows,
  cols,
  data: data ? Float64Array.from(data) : new Float64Array(rows * cols),
});

export function matmul(a: Mat, b: Mat, transA = false, transB = false): Mat {
  const m = transA ? a.cols : a.rows;
  const k = transA ? a.rows : a.cols;
  const kb = transB ? b.cols : b.rows;
  const n = transB ? b.rows : b.cols;
  if (k !== kb) throw new Error(`matmul: inner dimensions ${k} and ${kb} differ`);
  const out = mat(m, n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = transA ? a.data[p * a.cols + i]! : a.data[i * a.cols + p]!;
      if (av === 0) continue;
      for (let j = 0; j < n; j++) out.data[i * n + j]! += av * (transB ? b.data[j * b.cols + p]! : b.data[p * b.cols + j]!);
    }
  }
  return out;
}

export function frobeniusSq(a: Mat): number {
  let s = 0;
  for (const v of a.data) s += v * v;
  return s;
}

/**
 * Eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations: exact to float64 rounding for
 * the small (R x R) matrices used here, and simple enough to trust. Eigenvalues descending; vectors
 * are the columns of `vectors`.
 */
export function symmetricEigen(s: Mat, maxSweeps = 100): { values: Float64Array; vectors: Mat } {
  const n = s.rows;
  if (s.cols !== n) throw new Error('symmetricEigen needs a square matrix');
  const a = Float64Array.from(s.data);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let total = 0;
  for (const x of a) total += x * x;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q]! ** 2;
    if (off <= 1e-30 * total) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (apq === 0) continue;
        const app = a[p * n + p]!;
        const aqq = a[q * n + q]!;
        // Rotation angle zeroing a[p][q] (Golub & Van Loan 8.5.2), t the smaller root for stability.
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const sn = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - sn * akq;
          a[k * n + q] = sn * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - sn * aqk;
          a[q * n + k] = sn * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!;
          const vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - sn * vkq;
          v[k * n + q] = sn * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[j * n + j]! - a[i * n + i]!);
  const values = Float64Array.from(order, (i) => a[i * n + i]!);
  const vectors = mat(n, n);
  order.forEach((src, dst) => {
    for (let k = 0; k < n; k++) vectors.data[k * n + dst] = v[k * n + src]!;
  });
  return { values, vectors };
}

export interface LowRankSvd {
  /** Singular values of B A, descending (all of them, up to R). */
  singularValues: Float64Array;
  /** [out, r] and [r, in] with B* A* the best rank-r approximation of B A, split as U sqrt(S) and sqrt(S) V^T. */
  b: Mat;
  a: Mat;
  /** ||B A - B* A*||_F / ||B A||_F (0 when B A = 0). */
  relativeError: number;
}

/**
 * Truncated SVD of M = B A (B [out, R], A [R, in]) through R x R Gram matrices:
 * G_A = A A^T = V D V^T gives orthonormal rows Q = D^-1/2 V^T A spanning A's row space, so
 * M = C Q with C = B V D^1/2 [out, R']. The eigenvectors W of C^T C = D^1/2 V^T (B^T B) V D^1/2 are
 * M's right singular vectors in that basis (M's are Q^T W), with sigma^2 the eigenvalues; then
 * B* = C W_r S_r^-1/2 = U_r S_r^1/2 and A* = S_r^1/2 W_r^T Q. Cost O(R^2 (out + in) + R^3).
 */
export function lowRankSvd(b: Mat, a: Mat, r: number): LowRankSvd {
  const R = b.cols;
  if (a.rows !== R) throw new Error(`lowRankSvd: B is [${b.rows}, ${b.cols}] but A is [${a.rows}, ${a.cols}]`);
  const out = b.rows;
  const inF = a.cols;
  const gA = symmetricEigen(matmul(a, a, false, true));
  // Directions of A's row space with a negligible eigenvalue carry nothing of M (to rounding).
  const tol = Math.max(gA.values[0] ?? 0, 0) * R * 1e-13;
  const keep = [...gA.values.keys()].filter((i) => gA.values[i]! > tol);
  const Rp = keep.length;
  // Q = D^-1/2 V^T A [Rp, in]; V D^1/2 [R, Rp].
  const vHalf = mat(R, Rp);
  const vInvHalf = mat(R, Rp);
  keep.forEach((col, j) => {
    const d = gA.values[col]!;
    for (let i = 0; i < R; i++) {
      vHalf.data[i * Rp + j] = gA.vectors.data[i * R + col]! * Math.sqrt(d);
      vInvHalf.data[i * Rp + j] = gA.vectors.data[i * R + col]! / Math.sqrt(d);
    }
  });
  const q = matmul(vInvHalf, a, true, false);
  const c = matmul(b, vHalf);
  const eig = symmetricEigen(matmul(c, c, true, false));
  const singularValues = Float64Array.from(eig.values, (l) => Math.sqrt(Math.max(0, l)));
  const bStar = mat(out, r);
  const aStar = mat(r, inF);
  const cw = matmul(c, eig.vectors); // U S [out, Rp]
  const wq = matmul(eig.vectors, q, true, false); // W^T Q [Rp, in]: orthonormal rows
  for (let j = 0; j < Math.min(r, Rp); j++) {
    const sigma = singularValues[j]!;
    if (sigma === 0) continue;
    const root = Math.sqrt(sigma);
    for (let i = 0; i < out; i++) bStar.data[i * r + j] = cw.data[i * Rp + j]! / root;
    for (let k = 0; k < inF; k++) aStar.data[j * inF + k] = wq.data[j * inF + k]! * root;
  }
  let total = 0;
  let tail = 0;
  singularValues.forEach((s, j) => {
    total += s * s;
    if (j >= r) tail += s * s;
  });
  return { singularValues, b: bStar, a: aStar, relativeError: total > 0 ? Math.sqrt(tail / total) : 0 };
}
