// `lora-workbench adapters import`: a PEFT-made LoRA folder joins the library from the command line, and
// a folder that does not fit the base model is refused with the reason and exit code 1.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src-main/cli.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
let dataDir: string;
beforeAll(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-cli-adapters-'));
});
afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('lora-workbench adapters import', () => {
  it('imports a PEFT LoRA folder against its base model and lists it', async () => {
    const imported = await cli(
      'adapters',
      'import',
      path.join(fixtures, 'peft-import', 'llama-tiny-rslora'),
      '--base',
      path.join(fixtures, 'llama-tiny'),
      '--backend',
      'cpu',
      '--data-dir',
      dataDir,
    );
    expect(imported).toMatchObject({ code: 0, err: '' });
    expect(imported.out).toMatch(
      /^Imported .*llama-tiny-rslora as adapter ad-\S+ \("llama-tiny-rslora"\): LoRA r=2, alpha=4 \(rsLoRA\) on down_proj, q_proj, v_proj, [\d,]+ parameters\.$/,
    );
    expect((await cli('runs', '--data-dir', dataDir)).out).toMatch(/llama-tiny-rslora\s+completed/);
  }, 120_000);

  it('refuses a folder that does not fit, and explains its usage', async () => {
    const wrongBase = await cli(
      'adapters',
      'import',
      path.join(fixtures, 'peft-import', 'gpt2-tiny-lora'),
      '--base',
      path.join(fixtures, 'llama-tiny'),
      '--backend',
      'cpu',
      '--data-dir',
      dataDir,
    );
    expect(wrongBase).toMatchObject({ code: 1, err: expect.stringMatching(/no linear layer for: transformer\.h\.0\.attn\.c_attn/) });
    expect(await cli('adapters', 'import', path.join(fixtures, 'gpt2-tiny'), '--data-dir', dataDir)).toMatchObject({
      code: 2,
      err: expect.stringMatching(/needs --base MODEL/),
    });
    expect(await cli('adapters', 'remove', 'x')).toMatchObject({ code: 2, err: expect.stringMatching(/Unknown adapters command "remove"/) });
    expect((await cli('adapters', '--help')).out).toMatch(/modules_to_save/);
  }, 120_000);
});
