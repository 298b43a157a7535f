// The Python engine draws LoRA's initial A from the same generators as the tfjs engine: its vectorised
// mulberry32 and deriveSeed (engine-torch/workbench_torch/rng.py) against src-worker/rng.ts itself.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveEnginePython } from '../../src-main/engines/pytorch-engine.ts';
import { deriveSeed, mulberry32 } from '../../src-worker/rng.ts';
import { root } from './engine-run.ts';

describe('seeded generators across engines', () => {
  it('mulberry32 and deriveSeed give the same numbers in Python', () => {
    const seeds = [0, 1, 42, 0xffffffff, deriveSeed(7, 3), deriveSeed(42, 0x5bd1e995, 2, 9)];
    const code = [
      'import json, sys',
      'from workbench_torch.rng import derive_seed, mulberry32',
      'seeds = json.loads(sys.argv[1])',
      'print(json.dumps({"draws": [mulberry32(s, 300).tolist() for s in seeds], "derived": [derive_seed(s, 5, 0xba7c4000) for s in seeds]}))',
    ].join('\n');
    const out = spawnSync(resolveEnginePython(null, root), ['-c', code, JSON.stringify(seeds)], { cwd: path.join(root, 'engine-torch'), encoding: 'utf8' });
    expect(out.status, out.stderr).toBe(0);
    const python = JSON.parse(out.stdout) as { draws: number[][]; derived: number[] };
    seeds.forEach((seed, k) => {
      const rng = mulberry32(seed);
      expect(python.draws[k]).toEqual(Array.from({ length: 300 }, () => rng.next()));
      expect(python.derived[k]).toBe(deriveSeed(seed, 5, 0xba7c4000));
    });
  });
});
