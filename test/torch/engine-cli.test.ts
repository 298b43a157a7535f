// `lora-workbench engine status` and `engine setup pytorch` against an environment that exists (the
// repository's .venv stands in for the data folder's, through a link), and the engine's own `info`.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { engineMethods } from '../../src-shared/config.ts';
import { runCli } from '../../src-main/cli.ts';
import { engineCommand, pytorchEnvDir, resolveEnginePython } from '../../src-main/engines/pytorch-engine.ts';
import { root } from './engine-run.ts';

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-engine-cli-'));
afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

describe('lora-workbench engine', () => {
  it('status says the pytorch engine is not set up, and what to run', async () => {
    const c = capture();
    expect(await runCli(['engine', 'status', '--data-dir', dataDir], c.io)).toBe(0);
    expect(c.out.join('\n')).toMatch(/^tfjs: built in; trains lora, lora-plus, selora/m);
    expect(c.out.join('\n')).toContain(`pytorch: trains ${engineMethods.pytorch.join(', ')}; No Python environment at`);
    expect(c.out.join('\n')).toMatch(/Run `lora-workbench engine setup pytorch`/);
  });

  it('status reports torch and the accelerator of a set-up environment', async () => {
    const env = pytorchEnvDir({ dataDir });
    fs.mkdirSync(path.dirname(env), { recursive: true });
    fs.symlinkSync(path.dirname(path.dirname(resolveEnginePython(null, root))), env);
    const c = capture();
    expect(await runCli(['engine', 'status', '--json', '--data-dir', dataDir], c.io)).toBe(0);
    const status = JSON.parse(c.out.join('\n')) as { pytorch: { torch: string; accelerator: string } };
    expect(status.pytorch.torch).toMatch(/^\d+\.\d+/);
    expect(['cpu', 'cuda', 'rocm', 'mps']).toContain(status.pytorch.accelerator);
  });

  it('refuses an engine it cannot set up, with usage', async () => {
    const c = capture();
    expect(await runCli(['engine', 'setup', 'jax', '--data-dir', dataDir], c.io)).toBe(2);
    expect(c.err.join('\n')).toMatch(/pytorch \(tfjs is built in\), not "jax"/);
  });

  it('starts one process, or N under torchrun or accelerate, with the same entry point', () => {
    const entry = ['-m', 'workbench_torch', 'train', '--job', 'j.json', '--plan', 'p.json'];
    expect(engineCommand('py', { distributed: { processes: 1, launcher: 'torchrun' } }, 'j.json', 'p.json')).toEqual(['py', ...entry]);
    expect(engineCommand('py', { distributed: { processes: 4, launcher: 'torchrun' } }, 'j.json', 'p.json')).toEqual([
      'py',
      '-m',
      'torch.distributed.run',
      '--standalone',
      '--nproc-per-node=4',
      ...entry,
    ]);
    const accelerate = engineCommand('py', { distributed: { processes: 2, launcher: 'accelerate' } }, 'j.json', 'p.json');
    expect(accelerate.slice(0, 4)).toEqual(['py', '-m', 'accelerate.commands.launch', '--multi_gpu']);
    expect(accelerate).toContain('--num_processes=2');
    expect(accelerate.slice(-entry.length)).toEqual(entry);
  });

  it("the engine's info lists the methods the TypeScript side offers for it", () => {
    const out = spawnSync(resolveEnginePython(null, root), ['-m', 'workbench_torch', 'info'], { cwd: path.join(root, 'engine-torch'), encoding: 'utf8' });
    expect(out.status, out.stderr).toBe(0);
    const info = JSON.parse(out.stdout) as { methods: string[]; torch: string };
    expect(info.methods).toEqual([...engineMethods.pytorch]);
  });
});
