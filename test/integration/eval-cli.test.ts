// `lora-workbench eval` end to end: the real worker scores the tiny fixture model on the small
// bias fixtures, the EvalManager stores the row and the result file, and the CLI prints the figures.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EvalResultSchema, EvaluationSchema } from '../../src-shared/eval.ts';
import { runCli } from '../../src-main/cli.ts';
import { Store } from '../../src-main/store/index.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
const modelDir = path.join(fixtures, 'gpt2-tiny');
const evalData = path.join(fixtures, 'datasets', 'eval');

let dataDir: string;
beforeEach(() => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'lw-eval-cli-'));
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('lora-workbench eval', () => {
  it('explains its options', async () => {
    const { code, out } = await cli('eval', '--help');
    expect(code).toBe(0);
    expect(out).toMatch(/^Usage: lora-workbench eval --suite bias\|qqp\|hotpotqa\|robustness/);
    for (const option of [
      '--adapter ID',
      '--model M',
      '--crows-pairs FILE',
      '--stereoset FILE',
      '--bbq FILE_OR_DIR',
      '--qqp FILE',
      '--hotpotqa FILE',
      '--limit N',
      '--seed S',
      '--backend B',
      '--json',
    ]) {
      expect(out).toContain(option);
    }
    const top = await cli('--help');
    expect(top.out).toMatch(/^ {2}eval /m);
  });

  it('rejects a bad command line before doing anything', async () => {
    expect((await cli('eval', '--suite', 'mmlu', '--data-dir', dataDir)).code).toBe(2);
    expect((await cli('eval', '--suite', 'bias', '--limit', '0', '--data-dir', dataDir)).code).toBe(2);
    const missing = await cli('eval', '--suite', 'bias', '--crows-pairs', path.join(dataDir, 'nope.csv'), '--model', modelDir, '--data-dir', dataDir);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/crowsPairs dataset .*nope\.csv does not exist/);
  });

  it('evaluates the bias suite on the fixtures, prints the figures and stores them', async () => {
    const { code, out, err } = await cli(
      'eval',
      '--suite',
      'bias',
      '--model',
      modelDir,
      '--crows-pairs',
      path.join(evalData, 'crows-pairs.csv'),
      '--stereoset',
      path.join(evalData, 'stereoset.json'),
      '--bbq',
      path.join(evalData, 'bbq.jsonl'),
      '--limit',
      '4',
      '--seed',
      '3',
      '--backend',
      'cpu',
      '--data-dir',
      dataDir,
    );
    expect(err).toBe('');
    expect(code).toBe(0);
    const reports = [...out.matchAll(/^scored +(\d+)\/(\d+)$/gm)].map((m) => [Number(m[1]), Number(m[2])] as const);
    expect(reports.length).toBeGreaterThan(0);
    // One table per dataset, with the figures EVALUATION.md reports for each.
    expect(out).toMatch(/^crowsPairs:\n\s+count\s+stereoPercent/m);
    expect(out).toMatch(/^ {2}byBiasType\.gender\s+2\s/m);
    expect(out).toMatch(/^stereoSet:\n\s+count\s+lms\s+ss\s+icat$/m);
    expect(out).toMatch(/^bbq:\n\s+count\s+accuracy\s+biasScore/m);
    expect(out).toMatch(/^ {2}overall\.ambig\s+\d+\s/m);

    const store = Store.open(path.join(dataDir, 'workbench.sqlite'));
    try {
      const [evaluation] = store.evaluations.list();
      expect(EvaluationSchema.parse(evaluation)).toMatchObject({
        status: 'completed',
        suite: 'bias',
        model: modelDir,
        seed: 3,
        limit: 4,
        adapterId: null,
        backend: { name: 'cpu' },
      });
      expect(evaluation!.slices!.map((s) => [s.dataset, s.count])).toEqual([
        ['crows-pairs', 4],
        ['stereoset', 4],
        ['bbq', 4],
      ]);
      const result = EvalResultSchema.parse(JSON.parse(readFileSync(evaluation!.resultPath!, 'utf8')));
      // The row's figures are the result file's, and the table printed them.
      expect(evaluation!.summary!['crowsPairs.overall.stereoPercent']).toBe(result.bias!.crowsPairs!.overall.stereoPercent);
      expect(evaluation!.summary!['stereoSet.intrasentence.overall.icat']).toBe(result.bias!.stereoSet!.intrasentence!.overall.icat);
      expect(evaluation!.summary!['bbq.overall.ambig.accuracy']).toBe(result.bias!.bbq!.overall.ambig!.accuracy);
      expect(result.bias!.crowsPairs!.items).toHaveLength(4);
      // Progress ends at its total: the 12 items and the BBQ twins the counterfactual check scored.
      const total = 12 + result.bias!.counterfactual!.count;
      expect(reports.every(([, t]) => t === total)).toBe(true);
      expect(reports.at(-1)).toEqual([total, total]);
      expect(out).toContain(`Full result: ${evaluation!.resultPath}`);
    } finally {
      store.close();
    }

    const json = await cli(
      'eval',
      '--suite',
      'bias',
      '--model',
      modelDir,
      '--crows-pairs',
      path.join(evalData, 'crows-pairs.csv'),
      '--limit',
      '2',
      '--backend',
      'cpu',
      '--json',
      '--data-dir',
      dataDir,
    );
    expect(json.code).toBe(0);
    const printed = EvaluationSchema.parse(JSON.parse(json.out));
    expect(printed).toMatchObject({ status: 'completed', limit: 2 });
    expect(Object.keys(printed.summary!).every((k) => k.startsWith('crowsPairs.'))).toBe(true);
    expect(json.err).toMatch(/scored 2\/2/);
  });
});
