// A study figure as a standalone SVG for `study export` (no canvas in Node without a native package;
// the Studies page exports the chart.js PNG). Grouped bars or lines, with the figure's error bars.
import { errorRange, type FigureData } from '../src-shared/study-figures.ts';

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#be185d', '#65a30d'];
const W = 720;
const H = 400;
const M = { left: 64, right: 16, top: 40, bottom: 64 };

const escapeXml = (text: string) => text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);

function niceTicks(min: number, max: number, count = 5): number[] {
  const span = max - min || Math.abs(max) || 1;
  const step0 = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= step0)!;
  const ticks: number[] = [];
  // From the step at or below min to the step at or above max, so every bar and whisker fits.
  const last = Math.ceil(max / step - 1e-9) * step;
  for (let t = Math.floor(min / step + 1e-9) * step; t <= last + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** About the width of a label at 12 px in a sans-serif font: for laying out the legend without a text measurer. */
const labelWidth = (label: string) => 7 * label.length;

/** Each series' legend entry, left to right, onto a new row where the next would pass the right edge. */
function legendLayout(labels: string[]): { x: number; row: number }[] {
  const out: { x: number; row: number }[] = [];
  let [x, row] = [8, 0];
  for (const label of labels) {
    const width = 14 + labelWidth(label) + 18;
    if (x > 8 && x + width > W - M.right) [x, row] = [8, row + 1];
    out.push({ x, row });
    x += width;
  }
  return out;
}

export function figureSvg(figure: FigureData): string {
  const ranges = figure.series.flatMap((s) => s.points.flatMap((p) => (p ? errorRange(p, figure.errorBars) : [])));
  const low = Math.min(figure.kind === 'bar' ? 0 : Infinity, ...ranges);
  const high = Math.max(figure.kind === 'bar' ? 0 : -Infinity, ...ranges);
  const ticks = ranges.length > 0 ? niceTicks(low, high) : [0, 1];
  const [y0, y1] = [ticks[0]!, ticks[ticks.length - 1]!];
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const y = (v: number) => M.top + plotH - ((v - y0) / (y1 - y0 || 1)) * plotH;
  const band = plotW / Math.max(1, figure.xs.length);
  const xCenter = (i: number) => M.left + band * (i + 0.5);
  const legend = legendLayout(figure.series.map((s) => s.label));
  // A legend of several rows makes the figure taller below the axis label, never narrower.
  const height = H + 16 * Math.max(0, ...legend.map((l) => l.row));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${height}" fill="#ffffff"/>`,
    `<text x="${M.left}" y="22" font-size="14" font-weight="600">${escapeXml(figure.title)}</text>`,
  ];
  for (const t of ticks) {
    parts.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y(t)}" y2="${y(t)}" stroke="#e5e7eb"/>`);
    parts.push(`<text x="${M.left - 6}" y="${y(t) + 4}" text-anchor="end" fill="#64748b">${escapeXml(String(t))}</text>`);
  }
  figure.xs.forEach((x, i) => parts.push(`<text x="${xCenter(i)}" y="${H - M.bottom + 16}" text-anchor="middle" fill="#64748b">${escapeXml(x)}</text>`));
  parts.push(`<text x="${M.left + plotW / 2}" y="${H - M.bottom + 36}" text-anchor="middle">${escapeXml(figure.xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${M.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(figure.yLabel)}</text>`);
  const n = figure.series.length;
  figure.series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length]!;
    const barW = (band * 0.8) / n;
    const px = (i: number) => (figure.kind === 'bar' ? M.left + band * i + band * 0.1 + barW * (k + 0.5) : xCenter(i));
    const line: string[] = [];
    s.points.forEach((p, i) => {
      if (!p) return;
      // A value of exactly 0 still shows as a 1-pixel bar, so it reads as measured, not missing.
      if (figure.kind === 'bar')
        parts.push(
          `<rect x="${px(i) - barW / 2}" y="${Math.min(y(p.mean), y(0) - 1)}" width="${barW}" height="${Math.max(1, Math.abs(y(0) - y(p.mean)))}" fill="${color}" fill-opacity="0.8"/>`,
        );
      else line.push(`${px(i)},${y(p.mean)}`);
      const [lo, hi] = errorRange(p, figure.errorBars);
      if (hi > lo) parts.push(`<path d="M${px(i)} ${y(lo)}V${y(hi)}M${px(i) - 4} ${y(lo)}h8M${px(i) - 4} ${y(hi)}h8" stroke="#111827" fill="none"/>`);
    });
    if (line.length > 0) {
      parts.push(`<polyline points="${line.join(' ')}" fill="none" stroke="${color}" stroke-width="2"/>`);
      for (const pt of line) parts.push(`<circle cx="${pt.split(',')[0]}" cy="${pt.split(',')[1]}" r="3" fill="${color}"/>`);
    }
    const { x: lx, row } = legend[k]!;
    const ly = H - 9 + 16 * row;
    parts.push(`<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${color}"/><text x="${lx + 14}" y="${ly}">${escapeXml(s.label)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
