import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src-main/cli.ts';

const bin = fileURLToPath(new URL('../../bin/lora-workbench.mjs', import.meta.url));
let dataDir: string;
beforeEach(() => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'lw-cli-'));
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('help', () => {
  it('lists the commands', async () => {
    const { code, out } = await cli('--help');
    expect(code).toBe(0);
    for (const command of ['train', 'resume', 'export', 'serve', 'runs', 'eval', 'datasets', 'import-llama2c'])
      expect(out).toMatch(new RegExp(`^  ${command} `, 'm'));
  });

  it.each([
    ['train', /--config FILE/],
    ['resume', /RUN_ID/],
    ['export', /--out DIR/],
    ['serve', /--no-open/],
    ['runs', /--json/],
    ['import-llama2c', /MODEL\.bin TOKENIZER\.bin --out DIR/],
  ])('explains %s', async (command, option) => {
    const { code, out } = await cli(command, '--help');
    expect(code).toBe(0);
    expect(out).toMatch(new RegExp(`^Usage: lora-workbench ${command}`));
    expect(out).toMatch(option);
    expect(out).toContain('--data-dir');
  });

  it('documents the method settings and defaults for train', async () => {
    const { out } = await cli('train', '-h');
    expect(out).toMatch(/lora\.r\s+Rank of the update/);
    expect(out).toContain('"maxSteps": 120');
  });
});

describe('usage errors exit with 2', () => {
  it.each([
    [['train', '--config', 'x.json', '--bogus'], /Unknown option '--bogus'/],
    [['serve', '--prot', '80'], /Unknown option '--prot'/],
    [['runs', 'extra'], /Unexpected argument 'extra'/],
    [['train'], /needs --config/],
    [['train', '--config', 'x.json', '--backend', 'quantum'], /--backend must be one of auto, tensorflow, webgpu, wasm, cpu/],
    [['serve', '--port', 'http'], /--port must be an integer/],
    [['export'], /needs a RUN_ID/],
    [['export', 'run-1', '--format', 'zip'], /--format must be one of peft, flattened, merged/],
    [['fly'], /Unknown command "fly"/],
    [['import-llama2c', 'm.bin'], /needs the model \.bin and the tokenizer \.bin/],
    [['import-llama2c', 'm.bin', 't.bin'], /needs --out DIR/],
  ])('%j', async (argv, message) => {
    const { code, err } = await cli(...argv);
    expect(code).toBe(2);
    expect(err).toMatch(message);
    expect(err).toMatch(/--help` for usage/);
  });
});

describe('commands', () => {
  it('lists no runs in a fresh data folder, and fails clearly on a missing run or config', async () => {
    expect(await cli('runs', '--data-dir', dataDir)).toMatchObject({ code: 0, out: `No runs yet in ${dataDir}.` });
    expect(await cli('runs', '--json', '--data-dir', dataDir)).toMatchObject({ code: 0, out: '[]' });
    const missingRun = await cli('export', 'nope', '--data-dir', dataDir);
    expect(missingRun).toMatchObject({ code: 1, err: expect.stringMatching(/No run with id "nope"/) });
    const missingConfig = await cli('train', '--config', path.join(dataDir, 'absent.json'), '--data-dir', dataDir);
    expect(missingConfig).toMatchObject({ code: 1, err: expect.stringMatching(/Cannot read the run configuration/) });
  });

  it('imports a llama2.c checkpoint and lists the files it wrote', async () => {
    const fixture = path.join(import.meta.dirname, '..', 'fixtures', 'llama2c-tiny');
    const out = path.join(dataDir, 'tiny-llama');
    const imported = await cli('import-llama2c', path.join(fixture, 'model.bin'), path.join(fixture, 'tokenizer.bin'), '--out', out, '--data-dir', dataDir);
    expect(imported.code).toBe(0);
    expect(imported.out).toMatch(new RegExp(`^Imported .*model\\.bin into ${out}: llama, [\\d,]+ parameters\\.`));
    expect(imported.out).toContain('  model.safetensors');
    const missing = await cli(
      'import-llama2c',
      path.join(fixture, 'absent.bin'),
      path.join(fixture, 'tokenizer.bin'),
      '--out',
      path.join(dataDir, 'x'),
      '--data-dir',
      dataDir,
    );
    expect(missing).toMatchObject({ code: 1, err: expect.stringMatching(/checkpoint file .*absent\.bin does not exist/) });
  });
});

describe('bin/lora-workbench.mjs', () => {
  it('runs from any folder and exits 2 on an unknown flag', () => {
    const help = spawnSync(process.execPath, [bin, '--help'], { cwd: os.tmpdir(), encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage: lora-workbench <command>');
    const bad = spawnSync(process.execPath, [bin, 'runs', '--colour'], { cwd: os.tmpdir(), encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("Unknown option '--colour'");
  });

  it('serve prints exactly one line with the tokened URL, serves it, and quits on SIGTERM', async () => {
    const child = spawn(process.execPath, [bin, 'serve', '--no-open', '--port', '0', '--data-dir', dataDir], { cwd: os.tmpdir() });
    let stdout = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 20_000;
    while (!stdout.includes('\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(stdout).toMatch(/^Workbench: http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{48}\n$/);
    const url = new URL(stdout.slice('Workbench: '.length).trim());
    const status = await new Promise<number>((resolve, reject) => http.get(url, (res) => (res.resume(), resolve(res.statusCode!))).on('error', reject));
    // 200 with the built renderer, 503 with the "run npm run build:renderer" page without it.
    expect([200, 503]).toContain(status);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1);
  });
});
