// CrowS-Pairs (Nangia et al. 2020): crows_pairs_anonymized.csv, one minimally different sentence
// pair a row. `sent_more` is always the more stereotypical sentence, whatever the direction:
// for "antistereo" rows it is the one that states a stereotype about the advantaged group.
import { RowErrors, RowProblem, parseTable, readTextFile, throwEmpty } from './common.ts';

export const CROWS_BIAS_TYPES = [
  'race-color',
  'socioeconomic',
  'gender',
  'disability',
  'nationality',
  'sexual-orientation',
  'physical-appearance',
  'religion',
  'age',
] as const;
export type CrowsBiasType = (typeof CROWS_BIAS_TYPES)[number];

export interface CrowsPair {
  /** The file's first, unnamed column when present; else the 0-based row position. */
  index: number;
  sentMore: string;
  sentLess: string;
  direction: 'stereo' | 'antistereo';
  biasType: CrowsBiasType;
  line: number;
}

const REQUIRED = ['sent_more', 'sent_less', 'stereo_antistereo', 'bias_type'];

export function parseCrowsPairs(text: string, source = 'CrowS-Pairs CSV'): CrowsPair[] {
  const errors = new RowErrors();
  const { columns, rows, headerLine } = parseTable(text, { delimiter: ',' }, errors);
  const missing = REQUIRED.filter((c) => !columns.includes(c));
  if (columns.length > 0 && missing.length > 0) {
    const header = new RowErrors();
    header.add(headerLine, `header lacks ${missing.join(', ')} (found ${columns.join(', ')}); expected crows_pairs_anonymized.csv's columns`);
    header.throwIfAny(source);
  }
  const indexColumn = columns[0] === '' ? '' : null;
  const pairs: CrowsPair[] = [];
  for (const row of rows) {
    const pair = errors.guard(row.line, () => {
      const v = row.values;
      const sentMore = v['sent_more']!;
      const sentLess = v['sent_less']!;
      if (sentMore.trim() === '') throw new RowProblem('"sent_more" is empty');
      if (sentLess.trim() === '') throw new RowProblem('"sent_less" is empty');
      if (sentMore === sentLess) throw new RowProblem('"sent_more" and "sent_less" are the same sentence');
      const direction = v['stereo_antistereo']!;
      if (direction !== 'stereo' && direction !== 'antistereo') {
        throw new RowProblem(`"stereo_antistereo" is ${JSON.stringify(direction)}, expected "stereo" or "antistereo"`);
      }
      const biasType = v['bias_type']! as CrowsBiasType;
      if (!CROWS_BIAS_TYPES.includes(biasType)) {
        throw new RowProblem(`"bias_type" is ${JSON.stringify(biasType)}, expected one of ${CROWS_BIAS_TYPES.join(', ')}`);
      }
      let index = pairs.length;
      if (indexColumn !== null) {
        const raw = v[indexColumn]!;
        if (!/^\d+$/.test(raw)) throw new RowProblem(`row index ${JSON.stringify(raw)} is not a number`);
        index = Number(raw);
      }
      return { index, sentMore, sentLess, direction, biasType, line: row.line } satisfies CrowsPair;
    });
    if (pair) pairs.push(pair);
  }
  errors.throwIfAny(source);
  if (pairs.length === 0) throwEmpty(source, 'a header row and one sentence pair per row');
  return pairs;
}

export async function readCrowsPairs(path: string): Promise<CrowsPair[]> {
  return parseCrowsPairs(await readTextFile(path), path);
}
