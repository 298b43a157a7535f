// The CLI's SVG figure (src-main/study-svg.ts): the legend's entries never overlap; labels that do not
// fit one row wrap onto another and the figure grows taller to hold it.
import { describe, expect, it } from 'vitest';
import type { FigureData } from '../../src-shared/study-figures.ts';
import { figureSvg } from '../../src-main/study-svg.ts';

function figure(labels: string[]): FigureData {
  const point = { x: 'a', n: 1, mean: 1, std: 0, sem: 0, min: 1, max: 1, values: [1] };
  return {
    id: 'f',
    title: 'T',
    redraws: null,
    kind: 'bar',
    xLabel: 'x',
    yLabel: 'y',
    errorBars: 'std',
    xs: ['a'],
    series: labels.map((label) => ({ label, points: [point] })),
    notes: [],
  };
}

/** Each legend entry's text: its x, its baseline and its label. */
function legendEntries(svg: string, labels: string[]) {
  return labels.map((label) => {
    const match = new RegExp(`<text x="([\\d.]+)" y="([\\d.]+)">${label.replace(/[()]/g, '\\$&')}</text>`).exec(svg);
    expect(match, label).not.toBeNull();
    return { label, x: Number(match![1]), y: Number(match![2]) };
  });
}

describe('figureSvg legend', () => {
  it('keeps six long labels (the SG-LoRA figure) on one row without overlap', () => {
    const labels = ['base', 'merge', 'other expert (mean)', 'best other expert', 'SG-LoRA', 'own expert (oracle)'];
    const svg = figureSvg(figure(labels));
    const entries = legendEntries(svg, labels);
    expect(new Set(entries.map((e) => e.y)).size).toBe(1);
    for (let k = 1; k < entries.length; k++) expect(entries[k]!.x).toBeGreaterThanOrEqual(entries[k - 1]!.x + 7 * entries[k - 1]!.label.length + 10);
    expect(svg).toMatch(/<svg [^>]*height="400"/);
  });

  it('wraps labels that pass the right edge onto a second row and makes the figure taller', () => {
    const labels = Array.from({ length: 8 }, (_, k) => `a rather long series label ${k}`);
    const svg = figureSvg(figure(labels));
    const entries = legendEntries(svg, labels);
    const rows = [...new Set(entries.map((e) => e.y))];
    expect(rows.length).toBeGreaterThan(1);
    for (const e of entries) expect(e.x + 7 * e.label.length).toBeLessThanOrEqual(720);
    expect(svg).toMatch(new RegExp(`<svg [^>]*height="${400 + 16 * (rows.length - 1)}"`));
  });
});
