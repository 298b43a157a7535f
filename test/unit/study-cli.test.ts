// `lora-workbench study`: usage errors, the recipe list, and figures printed as tables.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src-main/cli.ts';
import { figureTable, progressLine } from '../../src-main/cli/study.ts';
import { figureSvg } from '../../src-main/study-svg.ts';
import type { FigureData } from '../../src-shared/study-figures.ts';

let dataDir: string;
beforeEach(() => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'lw-study-cli-'));
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli([...argv, '--data-dir', dataDir], { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const figure: FigureData = {
  id: 'f1',
  title: 'F1 by method',
  redraws: 'Table 2',
  kind: 'bar',
  xLabel: 'method',
  yLabel: 'F1',
  errorBars: 'std',
  xs: ['LoRA', 'SeLoRA'],
  series: [{ label: 'F1', points: [{ x: 'LoRA', n: 2, mean: 0.5, std: 0.1, sem: 0.07, min: 0.4, max: 0.6, values: [0.4, 0.6] }, null] }],
  notes: ['1 of 2 points have no finished value yet.'],
};

describe('study CLI', () => {
  it('lists the built-in recipes and the variables each needs', async () => {
    const { code, out } = await cli('study', 'list');
    expect(code).toBe(0);
    expect(out).toMatch(/^quickstart-rank +Quick start/m);
    expect(out).toMatch(/^lora-plus-qqp .*\[needs --data\]/m);
  });

  it('refuses what it cannot run, saying what to do', async () => {
    expect(await cli('study', 'run')).toMatchObject({ code: 2, err: expect.stringMatching(/study run needs a RECIPE/) });
    expect(await cli('study', 'run', 'no-such-recipe')).toMatchObject({ code: 2, err: expect.stringMatching(/built-in: .*quickstart-rank/) });
    expect(await cli('study', 'run', 'lora-plus-qqp')).toMatchObject({ code: 1, err: expect.stringMatching(/uses \$\{data\}.*--data/) });
    expect(await cli('study', 'export', 'quickstart-rank')).toMatchObject({ code: 2, err: expect.stringMatching(/--out DIR/) });
    expect(await cli('study', 'show', 'quickstart-rank')).toMatchObject({
      code: 1,
      err: expect.stringMatching(/No study of "quickstart-rank".*study run quickstart-rank/),
    });
    const bad = path.join(dataDir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ name: 'bad', title: 'Bad', axes: [{ name: 'rank', path: 'lora.r', values: [0] }] }));
    expect(await cli('study', 'run', bad)).toMatchObject({ code: 1, err: expect.stringMatching(/cell "rank=0 seed=42": lora\.r/) });
  });

  it('prints a figure as a table of mean ± spread, and draws it as SVG', () => {
    expect(figureTable(figure)).toEqual([
      'F1 by method — redraws Table 2',
      '  F1 (mean ± std over seeds)',
      '  method             F1',
      '  LoRA    0.500 ± 0.100',
      '  SeLoRA              –',
      '  note: 1 of 2 points have no finished value yet.',
    ]);
    const svg = figureSvg(figure);
    expect(svg).toMatch(/^<svg /);
    expect(svg.match(/<rect [^>]*fill-opacity/g)).toHaveLength(1);
    expect(
      progressLine({
        status: 'running',
        progress: { cellsDone: 1, cellsTotal: 4, current: { key: 'rank=2 seed=1', phase: 'training', step: 3, maxSteps: 6, evaluation: null }, etaSeconds: 95 },
      } as never),
    ).toBe('running · 1/4 cells · rank=2 seed=1: training 3/6 · ETA 1m35s');
  });
});

describe('study SVG', () => {
  it('puts the tallest bar and its whisker inside the axis', () => {
    const tall: FigureData = {
      ...figure,
      series: [{ label: 'loss', points: [{ x: 'LoRA', n: 2, mean: 2.669, std: 0.2, sem: 0.1, min: 2.5, max: 2.8, values: [2.5, 2.8] }, null] }],
    };
    const svg = figureSvg(tall);
    const ticks = [...svg.matchAll(/text-anchor="end" fill="#64748b">([\d.-]+)</g)].map((m) => Number(m[1]));
    expect(Math.max(...ticks)).toBeGreaterThanOrEqual(2.869);
    expect(Math.min(...ticks)).toBe(0);
  });
});
