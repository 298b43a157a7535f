// A study's training data: filters, dotted template fields, value words, imbalance, rows and extra sources.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { StudyDataSchema } from '../../src-shared/studies.ts';
import { imbalance, prepareStudyData, spread, studyTrainingRows } from '../../src-main/studies-data.ts';

const rows = Array.from({ length: 30 }, (_, i) => ({
  q: `q${i}`,
  split: i < 24 ? 'train' : 'dev',
  label: i % 3 === 0 ? 1 : 0,
  answers: [{ spans: [`a${i}`] }],
}));

describe('study training data', () => {
  it('filters, renders dotted fields and value words, and spreads the rows kept', () => {
    const spec = StudyDataSchema.parse({
      source: 'x',
      prompt: 'Q: {q}',
      completion: ' {answers.0.spans.0} {label}',
      values: { label: { '0': 'no', '1': 'yes' } },
      filter: { split: 'train' },
      rows: 4,
    });
    expect(studyTrainingRows(spec, rows)).toEqual([
      { prompt: 'Q: q0', completion: ' a0 yes' },
      { prompt: 'Q: q6', completion: ' a6 yes' },
      { prompt: 'Q: q12', completion: ' a12 yes' },
      { prompt: 'Q: q18', completion: ' a18 yes' },
    ]);
    expect(spread([1, 2, 3], 5)).toEqual([1, 2, 3]);
    expect(() => studyTrainingRows({ ...spec, prompt: '{missing}' }, rows)).toThrow(/\{missing\}/);
  });

  it('keeps the majority label at ratio times each other label', () => {
    const kept = imbalance(rows, { field: 'label', majority: '0', ratio: 2 });
    expect(kept.filter((r) => r.label === 1)).toHaveLength(10);
    expect(kept.filter((r) => r.label === 0)).toHaveLength(20);
    const steep = imbalance(rows, { field: 'label', majority: '0', ratio: 20 });
    expect(steep.filter((r) => r.label === 1)).toHaveLength(1);
    expect(steep.filter((r) => r.label === 0)).toHaveLength(20);
    expect(() => imbalance(rows, { field: 'label', majority: '7', ratio: 2 })).toThrow(/labels: 1, 0/);
  });

  it("cuts each label on its own to the rows asked for, so the ratio holds whatever the labels' order", () => {
    // Every 4th row is a duplicate: spreading 20 of the 80 mixed rows would take rows 0, 4, 8, … (all duplicates).
    const periodic = Array.from({ length: 80 }, (_, i) => ({ q: `q${i}`, label: i % 4 === 0 ? 1 : 0 }));
    const spec = StudyDataSchema.parse({
      source: 'x',
      prompt: '{q}',
      completion: ' {label}',
      rows: 20,
      imbalance: { field: 'label', majority: '0', ratio: 3 },
    });
    const kept = studyTrainingRows(spec, periodic);
    expect(kept.filter((r) => r.completion === ' 1')).toHaveLength(5);
    expect(kept.filter((r) => r.completion === ' 0')).toHaveLength(15);
    // The ratio stays exact where the rows asked for do not divide by it (about that many rows in all).
    const steep = studyTrainingRows({ ...spec, rows: 10, imbalance: { field: 'label', majority: '0', ratio: 20 } }, rows);
    expect(steep.filter((r) => r.completion === ' 1')).toHaveLength(1);
    expect(steep.filter((r) => r.completion === ' 0')).toHaveLength(20);
  });

  it('writes one file per distinct content, appending the extra sources with their tasks', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lw-study-data-'));
    try {
      const a = path.join(dir, 'a.jsonl');
      const b = path.join(dir, 'b.jsonl');
      writeFileSync(a, rows.map((r) => JSON.stringify(r)).join('\n'));
      writeFileSync(b, `${JSON.stringify({ text: 'hello', out: 'world' })}\n`);
      const spec = StudyDataSchema.parse({
        source: a,
        prompt: '{q}',
        completion: ' {label}',
        task: 'one',
        rows: 2,
        also: [{ source: b, prompt: '{text}', completion: ' {out}', task: 'two' }],
      });
      const file = prepareStudyData(spec, path.join(dir, 'out'));
      expect(prepareStudyData(spec, path.join(dir, 'out'))).toBe(file);
      expect(
        readFileSync(file, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l)),
      ).toEqual([
        { prompt: 'q0', completion: ' 1', task: 'one' },
        { prompt: 'q15', completion: ' 1', task: 'one' },
        { prompt: 'hello', completion: ' world', task: 'two' },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
