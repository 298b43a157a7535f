import { describe, expect, it } from 'vitest';
import { formatCsvField, parseCsv } from '../../src-worker/data/readers/csv.ts';

describe('parseCsv', () => {
  it('splits plain fields and records, with LF or CRLF line ends', () => {
    expect(parseCsv('a,b,c\n1,2,3\r\n4,5,6').records).toEqual([
      { fields: ['a', 'b', 'c'], line: 1 },
      { fields: ['1', '2', '3'], line: 2 },
      { fields: ['4', '5', '6'], line: 3 },
    ]);
  });

  it('reads quoted fields with delimiters, doubled quotes and embedded newlines, keeping start lines', () => {
    const text = 'id,text\n1,"hello, world"\n2,"she said ""hi"""\n3,"two\nlines\r\nthree"\n4,last\n';
    const { records, errors } = parseCsv(text);
    expect(errors).toEqual([]);
    expect(records).toEqual([
      { fields: ['id', 'text'], line: 1 },
      { fields: ['1', 'hello, world'], line: 2 },
      { fields: ['2', 'she said "hi"'], line: 3 },
      { fields: ['3', 'two\nlines\r\nthree'], line: 4 },
      // The quoted field spanned lines 4-6, so the next record starts on line 7.
      { fields: ['4', 'last'], line: 7 },
    ]);
  });

  it('keeps empty fields, a trailing empty field, and an empty quoted field', () => {
    expect(parseCsv('a,,c,\n"",x,"",').records.map((r) => r.fields)).toEqual([
      ['a', '', 'c', ''],
      ['', 'x', '', ''],
    ]);
  });

  it('strips a byte-order mark and skips blank lines without losing line numbers', () => {
    const { records } = parseCsv('\uFEFFh1,h2\n\n\r\nx,y\n');
    expect(records).toEqual([
      { fields: ['h1', 'h2'], line: 1 },
      { fields: ['x', 'y'], line: 4 },
    ]);
  });

  it('keeps a quote inside an unquoted field literally', () => {
    expect(parseCsv(`height,5'10" tall`).records[0]!.fields).toEqual(['height', `5'10" tall`]);
  });

  it('reports text after a closing quote on its line and goes on with the next record', () => {
    const { records, errors } = parseCsv('a,b\n"x"y,z\nok,fine\n');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.line).toBe(2);
    expect(errors[0]!.message).toMatch(/after a closing quote/);
    expect(records.map((r) => [r.line, r.fields])).toEqual([
      [1, ['a', 'b']],
      [3, ['ok', 'fine']],
    ]);
  });

  it('reports a quote that is never closed at the line where it opened', () => {
    const { records, errors } = parseCsv('a,b\n1,2\n3,"never\nclosed\n');
    expect(records).toHaveLength(2);
    expect(errors).toEqual([{ line: 3, message: 'quoted field opened on line 3 is never closed' }]);
  });

  it('reads TSV with quoting off, leaving GLUE-style quote artefacts in the text', () => {
    const text = 'question1\tquestion2\n"""Marriage is an institution."" What does this mean?"\tWhy?\n';
    expect(parseCsv(text, { delimiter: '\t', quote: null }).records[1]!.fields).toEqual(['"""Marriage is an institution."" What does this mean?"', 'Why?']);
  });

  it('rejects a delimiter that is not one character', () => {
    expect(() => parseCsv('a', { delimiter: '::' })).toThrow(/one character/);
    expect(() => parseCsv('a', { delimiter: ',', quote: ',' })).toThrow(/other than the delimiter/);
  });

  it('round-trips fields written with formatCsvField', () => {
    const fields = ['plain', 'with, comma', 'with "quotes"', 'two\nlines', ''];
    const line = fields.map((f) => formatCsvField(f)).join(',');
    expect(parseCsv(line).records[0]!.fields).toEqual(fields);
  });
});
