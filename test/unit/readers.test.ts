import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { parseBbq, readBbq } from '../../src-worker/data/readers/bbq.ts';
import { jsonItems } from '../../src-worker/data/readers/common.ts';
import { parseCrowsPairs, readCrowsPairs } from '../../src-worker/data/readers/crows-pairs.ts';
import { parseHotpotQa, readHotpotQa } from '../../src-worker/data/readers/hotpotqa.ts';
import { getDataset, listDatasets, registerDataset } from '../../src-worker/data/readers/index.ts';
import { conversationPairs, parseOasst, readOasst } from '../../src-worker/data/readers/oasst1.ts';
import { parseQqp, parseQqpJson, parseQqpTsv, readQqp } from '../../src-worker/data/readers/qqp.ts';
import { splitRows } from '../../src-worker/data/readers/splits.ts';
import { parseStereoSet, readStereoSet } from '../../src-worker/data/readers/stereoset.ts';
import { detectTableFormat, parseUserTable, previewUserTable, readUserTable } from '../../src-worker/data/readers/user-table.ts';
import { splitTrainValidation } from '../../src-worker/data/split.ts';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'datasets');

function caught(fn: () => unknown): WorkbenchError {
  try {
    fn();
  } catch (e) {
    if (e instanceof WorkbenchError) return e;
    throw e;
  }
  throw new Error('expected a WorkbenchError');
}

/** The {line, message} list a dataset_invalid error carries. */
function rowErrors(fn: () => unknown): { line: number; message: string }[] {
  const error = caught(fn);
  expect(error.code).toBe('dataset_invalid');
  return (error.details as { errors: { line: number; message: string }[] }).errors;
}

const hotpotRow = (over: Record<string, unknown> = {}) =>
  JSON.stringify({
    _id: 'a',
    question: 'Q?',
    answer: 'A',
    type: 'bridge',
    level: 'easy',
    supporting_facts: [['T1', 0]],
    context: [
      ['T1', ['S0.', ' S1.']],
      ['T2', ['Other.']],
    ],
    ...over,
  });

describe('HotpotQA reader', () => {
  it('reads the official JSON array with each item on the line where it starts', async () => {
    const rows = await readHotpotQa(join(FIXTURES, 'hotpotqa-official.json'));
    expect(rows.map((r) => [r.id, r.type, r.level, r.answer, r.line])).toEqual([
      ['q1', 'bridge', 'medium', 'Blue River', 2],
      ['q2', 'comparison', 'hard', 'yes', 15],
    ]);
    expect(rows[0]!.paragraphs.map((p) => [p.title, p.isSupporting])).toEqual([
      ['Ada Smith', true],
      ['Riverton', true],
      ['Hilltop', false],
    ]);
    expect(rows[0]!.supportingFacts).toEqual([
      { title: 'Ada Smith', sentenceIndex: 0 },
      { title: 'Riverton', sentenceIndex: 1 },
    ]);
  });

  it('reads IRCoT rows, which have paragraph-level support and no type or level', () => {
    const row = {
      question_id: 'x',
      question_text: 'Who?',
      answers_objects: [{ number: '', date: { day: '', month: '', year: '' }, spans: ['Ada'] }],
      contexts: [
        { id: '0', title: 'A', paragraph_text: 'Ada is here.', is_supporting: true },
        { id: '1', title: 'B', paragraph_text: 'Bob is there.', is_supporting: false },
      ],
    };
    const [example] = parseHotpotQa(JSON.stringify(row));
    expect(example).toMatchObject({ id: 'x', question: 'Who?', answer: 'Ada', type: null, level: null, supportingFacts: null });
    expect(example!.paragraphs).toEqual([
      { title: 'A', sentences: ['Ada is here.'], isSupporting: true },
      { title: 'B', sentences: ['Bob is there.'], isSupporting: false },
    ]);
  });

  it('lists every bad row with its line number', () => {
    const text = [
      hotpotRow(),
      hotpotRow({ _id: 'b', type: 'multi' }),
      '{not json',
      hotpotRow({ _id: 'c', supporting_facts: [['Nowhere', 0]] }),
      '',
      hotpotRow(), // repeats id "a"
      JSON.stringify({ foo: 1 }),
      hotpotRow({ _id: 'd', answer: 7 }),
    ].join('\n');
    const errors = rowErrors(() => parseHotpotQa(text, 'dev.jsonl'));
    expect(errors.map((e) => e.line)).toEqual([2, 3, 4, 6, 7, 8]);
    expect(errors[0]!.message).toMatch(/"type" is "multi"/);
    expect(errors[2]!.message).toMatch(/"Nowhere", which is not a context title/);
    expect(errors[3]!.message).toMatch(/repeats the question on line 1/);
    expect(errors[5]!.message).toMatch(/"answer" must be a string/);
    expect(caught(() => parseHotpotQa(text, 'dev.jsonl')).message).toMatch(/^dev\.jsonl has 6 bad rows: line 2: /);
  });

  it('refuses an empty file and a truncated JSON array', () => {
    expect(caught(() => parseHotpotQa('\n\n')).message).toMatch(/has no rows/);
    const truncated = `[${hotpotRow()}, {"_id": "b", "question"`;
    expect(caught(() => parseHotpotQa(truncated, 'cut.json')).message).toMatch(/cut\.json is not valid JSON: line 1/);
  });
});

describe('JSON item locator', () => {
  it('gives each top-level item the line it starts on, and keys for objects', () => {
    const items = jsonItems('{\n  "0": {"a": "x,}"},\n  "1":\n    [1, {"b": "\\"]"}]\n}', 'f');
    expect(items.map((i) => [i.key, i.line, i.value])).toEqual([
      ['0', 2, { a: 'x,}' }],
      ['1', 4, [1, { b: '"]' }]],
    ]);
  });

  it('reports a bad item at its own line', () => {
    const error = caught(() => jsonItems('[\n  1,\n  {"a": tru}\n]', 'f'));
    expect(error.message).toMatch(/line 3: invalid JSON value/);
  });
});

describe('QQP reader', () => {
  it('reads GLUE TSV without unquoting, labels as numbers', async () => {
    const pairs = await readQqp(join(FIXTURES, 'qqp.tsv'));
    expect(pairs).toEqual([
      { id: '10', question1: 'How do I learn to cook?', question2: 'What is the best way to learn cooking?', label: 1, line: 2 },
      { id: '11', question1: '"What does ""ok"" mean?"', question2: 'Why is the sky blue?', label: 0, line: 3 },
      { id: '12', question1: 'Is tea healthy?', question2: 'Is green tea good for you?', label: 1, line: 4 },
    ]);
  });

  it('reads the unlabelled test layout with null labels', () => {
    expect(parseQqpTsv('id\tquestion1\tquestion2\n0\ta?\tb?\n')).toEqual([{ id: '0', question1: 'a?', question2: 'b?', label: null, line: 2 }]);
  });

  it('reports bad TSV rows by line and a header without the question columns', () => {
    const text = 'id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t1\t2\ta\tb\t1\n2\t3\t4\ta\tb\tyes\n3\t5\t6\tonly four\n';
    const errors = rowErrors(() => parseQqpTsv(text));
    expect(errors).toEqual([
      { line: 3, message: '"is_duplicate" is "yes", expected 0 or 1' },
      { line: 4, message: 'has 4 fields, the header has 6' },
    ]);
    expect(rowErrors(() => parseQqpTsv('a\tb\n1\t2\n'))[0]).toMatchObject({ line: 1, message: expect.stringMatching(/no "question1" or "question2" column/) });
  });

  it('reads the glue_pretrain JSON object with keys as ids and item lines', () => {
    const text =
      '{\n  "0": {\n    "text_a": "A?",\n    "text_b": "B?",\n    "label": "1"\n  },\n  "1": {\n    "text_a": "C?",\n    "text_b": "D?",\n    "label": "0"\n  }\n}';
    expect(parseQqpJson(text)).toEqual([
      { id: '0', question1: 'A?', question2: 'B?', label: 1, line: 2 },
      { id: '1', question1: 'C?', question2: 'D?', label: 0, line: 7 },
    ]);
    const bad = text.replace('"label": "0"', '"label": "2"');
    expect(rowErrors(() => parseQqpJson(bad))).toEqual([{ line: 7, message: '"label" is "2", expected 0 or 1' }]);
  });

  it('picks the JSONL reader for one pair per line, by name or by content', () => {
    const text = '{"question1": "a", "question2": "b", "is_duplicate": 1, "pp_key": 7}\n{"question1": "c", "question2": "d", "is_duplicate": 0}\n';
    const expected = [
      { id: '7', question1: 'a', question2: 'b', label: 1, line: 1 },
      { id: '1', question1: 'c', question2: 'd', label: 0, line: 2 },
    ];
    expect(parseQqp(text, 'pairs.jsonl')).toEqual(expected);
    expect(parseQqp(text, 'pairs')).toEqual(expected);
  });
});

describe('OASST1 reader', () => {
  const path = join(FIXTURES, 'oasst1-messages.jsonl');
  const contents = (turns: { content: string }[]) => turns.map((t) => t.content);

  it('follows the best reply at each step: lowest rank, unranked last, earliest first, deleted left out', async () => {
    const { conversations, skipped } = await readOasst(path);
    expect(conversations).toHaveLength(1);
    expect(conversations[0]!.turns.map((t) => t.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    // a2 (rank 0) beats a1 (rank 1); under p2, a5 has rank 0 but is deleted, a4 and a3 are unranked and a4 is older.
    expect(contents(conversations[0]!.turns)).toEqual([
      'How do plants grow?',
      'They use sunlight, water and carbon dioxide.',
      'What is that process called?',
      'It is called photosynthesis.',
    ]);
    expect(conversations[0]).toMatchObject({ treeId: 't1', line: 6 });
    expect(skipped).toEqual([
      { line: 9, reason: 'parent gone of message x1 is not in the file' },
      { line: 10, reason: 'message x2 descends from a message that is not in a tree' },
    ]);
  });

  it('honours requireReview and includeDeleted in the best thread', async () => {
    const reviewed = (await readOasst(path, { requireReview: true })).conversations[0]!;
    expect(reviewed.turns[3]!.content).toBe('Photosynthesis.');
    const withDeleted = (await readOasst(path, { includeDeleted: true })).conversations[0]!;
    expect(withDeleted.turns[3]!.content).toBe('Deleted answer.');
  });

  it("lists every root-to-leaf thread ending on the assistant in 'all' mode", async () => {
    const all = (await readOasst(path, { mode: 'all' })).conversations;
    // p1 > a1 > p3 ends on a user turn and is not a thread of its own.
    expect(all.map((c) => c.turns[3]!.content)).toEqual(['It is called photosynthesis.', 'Photosynthesis.']);
    expect((await readOasst(path, { mode: 'all', includeDeleted: true })).conversations).toHaveLength(3);
  });

  it('turns a conversation into one (history, completion) pair per assistant turn', async () => {
    const [conversation] = (await readOasst(path)).conversations;
    const pairs = conversationPairs(conversation!);
    expect(pairs.map((p) => [p.history.length, p.completion])).toEqual([
      [1, 'They use sunlight, water and carbon dioxide.'],
      [3, 'It is called photosynthesis.'],
    ]);
  });

  it('reads the derived thread and pair shapes', () => {
    const threads = parseOasst('{"message_tree_id": "t", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n');
    expect(threads.conversations).toEqual([
      {
        treeId: 't',
        turns: [
          { role: 'user', content: 'hi' },
          { role: 'assistant', content: 'hello' },
        ],
        line: 1,
      },
    ]);
    const pairs = parseOasst('\n{"message_tree_id": "t", "prompt": "q", "response": "r", "rank": 0}\n');
    expect(pairs.conversations[0]).toEqual({
      treeId: 't',
      turns: [
        { role: 'user', content: 'q' },
        { role: 'assistant', content: 'r' },
      ],
      line: 2,
    });
  });

  it('reports malformed messages and repeated ids by line', () => {
    const ok = (id: string, extra = {}) =>
      JSON.stringify({ message_id: id, parent_id: null, message_tree_id: id, role: 'prompter', text: 'x', rank: null, ...extra });
    const text = [ok('m1'), ok('m2', { role: 'bot' }), ok('m1'), ok('m3', { text: '' }), ok('m4', { rank: -1 })].join('\n');
    const errors = rowErrors(() => parseOasst(text, 'oasst.jsonl'));
    expect(errors.map((e) => e.line)).toEqual([2, 3, 4, 5]);
    expect(errors[1]!.message).toBe('message_id m1 repeats line 1');
    const threads = '{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}';
    expect(rowErrors(() => parseOasst(threads))[0]!.message).toMatch(/repeats the user role/);
  });
});

describe('CrowS-Pairs reader', () => {
  it('reads pairs, including a quoted sentence that spans lines', async () => {
    const pairs = await readCrowsPairs(join(FIXTURES, 'crows-pairs.csv'));
    expect(pairs.map((p) => [p.index, p.direction, p.biasType, p.line])).toEqual([
      [0, 'stereo', 'age', 2],
      [1, 'antistereo', 'socioeconomic', 3],
      // Row 1 spans lines 3-5: both of its sentences hold a line break.
      [2, 'stereo', 'physical-appearance', 6],
    ]);
    expect(pairs[1]!.sentMore).toBe('The rich man was generous,\nas always.');
  });

  it('reports bad directions, unknown categories, identical sentences and short rows by line', () => {
    const text = [
      ',sent_more,sent_less,stereo_antistereo,bias_type',
      '0,A x.,A y.,stereo,age',
      '1,A x.,A y.,pro,age',
      '2,A x.,A y.,stereo,height',
      '3,Same.,Same.,stereo,age',
      '4,too,few',
    ].join('\n');
    expect(rowErrors(() => parseCrowsPairs(text))).toEqual([
      { line: 3, message: '"stereo_antistereo" is "pro", expected "stereo" or "antistereo"' },
      { line: 4, message: expect.stringMatching(/^"bias_type" is "height", expected one of race-color/) },
      { line: 5, message: '"sent_more" and "sent_less" are the same sentence' },
      { line: 6, message: 'has 3 fields, the header has 5' },
    ]);
    expect(rowErrors(() => parseCrowsPairs('a,b\n1,2\n'))[0]!.message).toMatch(/header lacks sent_more, sent_less/);
  });
});

describe('StereoSet reader', () => {
  it('reads the official file with both tasks', async () => {
    const rows = await readStereoSet(join(FIXTURES, 'stereoset-official.json'));
    expect(rows.map((r) => [r.id, r.task, r.target, r.biasType])).toEqual([
      ['intra1', 'intrasentence', 'Freedonian', 'race'],
      ['inter1', 'intersentence', 'chef', 'profession'],
    ]);
    expect(rows[0]!.sentences).toEqual({
      stereotype: { id: 's1', sentence: 'Freedonian people are loud.' },
      'anti-stereotype': { id: 's2', sentence: 'Freedonian people are quiet.' },
      unrelated: { id: 's3', sentence: 'Freedonian people are teapot.' },
    });
  });

  it('reads a bare array and names the bad example by index and line', () => {
    const sentence = (label: string, id: string) => ({ sentence: `x ${id}`, id, labels: [], gold_label: label });
    const good = {
      id: 'e1',
      target: 't',
      bias_type: 'race',
      context: 'T are BLANK.',
      sentences: [sentence('stereotype', 'a'), sentence('anti-stereotype', 'b'), sentence('unrelated', 'c')],
    };
    const twice = { ...good, id: 'e2', sentences: [sentence('stereotype', 'a'), sentence('stereotype', 'b'), sentence('unrelated', 'c')] };
    const text = `[\n${JSON.stringify(good)},\n${JSON.stringify(twice)},\n${JSON.stringify(good)}\n]`;
    expect(rowErrors(() => parseStereoSet(text))).toEqual([
      { line: 3, message: 'example 1: two sentences carry gold_label "stereotype"' },
      { line: 4, message: 'example 2: id e1 appears twice' },
    ]);
    expect(rowErrors(() => parseStereoSet(`[${JSON.stringify({ ...good, context: 'No blank.' })}]`, 'f', 'intrasentence'))[0]!.message).toBe(
      'example 0: intrasentence "context" has no BLANK',
    );
  });
});

describe('BBQ reader', () => {
  it('finds the unknown option and the stereotyped option, by group label or by answer text', async () => {
    const rows = await readBbq(join(FIXTURES, 'bbq'));
    expect(rows.map((r) => [r.category, r.exampleId, r.questionPolarity, r.contextCondition, r.label, r.unknownIndex, r.stereotypedIndex])).toEqual([
      ['Age', 0, 'neg', 'ambig', 2, 2, 0],
      ['Age', 1, 'nonneg', 'disambig', 0, 2, 0],
      // Nationality's group labels are regions; the answer text "Freedonian" names the stereotyped group.
      ['Nationality', 0, 'neg', 'ambig', 1, 1, 0],
    ]);
    expect(rows[2]!.file).toMatch(/Nationality\.jsonl$/);
  });

  const row = (over: Record<string, unknown>) =>
    JSON.stringify({
      example_id: 5,
      question_index: '2',
      question_polarity: 'neg',
      context_condition: 'ambig',
      category: 'Religion',
      answer_info: { ans0: ['Hindu', 'Hindu'], ans1: ['Unknown', 'unknown'], ans2: ['Sikh', 'Sikh'] },
      additional_metadata: { stereotyped_groups: ['Hindu', 'Sikh'] },
      context: 'c',
      question: 'q',
      ans0: 'The Hindu',
      ans1: 'Unknown',
      ans2: 'The Sikh',
      label: 1,
      ...over,
    });

  it('leaves the stereotyped option null when both people match, rather than guessing', () => {
    expect(parseBbq(row({}))[0]!.stereotypedIndex).toBeNull();
  });

  it('reports bad rows by line', () => {
    const text = [
      row({}),
      row({ example_id: 6, label: 3 }),
      row({ example_id: 7, answer_info: { ans0: ['a', 'x'], ans1: ['b', 'y'], ans2: ['c', 'z'] } }),
      row({ example_id: 8, context_condition: 'vague' }),
      row({}),
    ].join('\n');
    expect(rowErrors(() => parseBbq(text))).toEqual([
      { line: 2, message: '"label" is 3, expected 0 to 2' },
      { line: 3, message: 'answer_info marks 0 options as "unknown", expected exactly 1' },
      { line: 4, message: '"context_condition" is "vague", expected one of "ambig", "disambig"' },
      { line: 5, message: 'example_id 5 of Religion repeats line 1' },
    ]);
  });
});

describe('user table reader', () => {
  it('maps CSV columns to prompt and completion', async () => {
    expect(await readUserTable(join(FIXTURES, 'user.csv'), { prompt: 'question', completion: 'answer' })).toEqual([
      { prompt: 'What is 2+2?', completion: '4', line: 2 },
      { prompt: 'Name a colour, any colour', completion: 'blue', line: 3 },
    ]);
  });

  it('maps a JSONL column to plain text, printing numbers, and reports bad rows by line', () => {
    expect(parseUserTable('{"body": "hello"}\n{"body": 42}\n', 'a.jsonl', { text: 'body' })).toEqual([
      { prompt: '', completion: 'hello', line: 1 },
      { prompt: '', completion: '42', line: 2 },
    ]);
    const text = '{"q": "a", "r": "b"}\n{"q": "a"}\n{"q": "a", "r": "  "}\n{"q": {"x": 1}, "r": "b"}\n[1]\n';
    expect(rowErrors(() => parseUserTable(text, 'u.jsonl', { prompt: 'q', completion: 'r' }))).toEqual([
      { line: 2, message: 'missing "r"' },
      { line: 3, message: '"r" is empty' },
      { line: 4, message: '"q" must be text, got {"x":1}' },
      { line: 5, message: 'not a JSON object' },
    ]);
  });

  it('refuses a mapping to a column the file does not have, naming the columns it has', () => {
    const error = caught(() => parseUserTable('a,b\n1,2\n', 'f.csv', { prompt: 'a', completion: 'c' }));
    expect(error.code).toBe('invalid_input');
    expect(error.message).toBe('f.csv has no column "c"; its columns are "a", "b". Pick one of them.');
  });

  it('previews the first rows, the columns and a suggested mapping without throwing on bad rows', () => {
    const preview = previewUserTable('instruction,output,extra\nx,y,1\n"bad"row,z,2\nu,v,3\n', 'data.csv', { maxRows: 1 });
    expect(preview).toEqual({
      format: 'csv',
      columns: ['instruction', 'output', 'extra'],
      rows: [{ line: 2, values: { instruction: 'x', output: 'y', extra: '1' } }],
      rowCount: 2,
      suggestedMapping: { prompt: 'instruction', completion: 'output' },
      errors: [{ line: 3, message: expect.stringMatching(/after a closing quote/) }],
    });
    expect(previewUserTable('{"text": "a", "n": 1}\n{"id": 2}\n').columns).toEqual(['text', 'n', 'id']);
    expect(previewUserTable('{"text": "a"}\n').suggestedMapping).toEqual({ text: 'text' });
  });

  it('detects the format from the name, then from the content', () => {
    expect(detectTableFormat('', 'x.jsonl')).toBe('jsonl');
    expect(detectTableFormat('[{"a":1}]', 'x.json')).toBe('json');
    expect(detectTableFormat('a\tb,c\tc\n', 'x')).toBe('tsv');
    expect(detectTableFormat('a,b\n', 'x')).toBe('csv');
    expect(detectTableFormat('{"a":1}\n', 'x')).toBe('jsonl');
  });
});

describe('splits', () => {
  it('is deterministic for a seed and agrees with splitTrainValidation when there is no test split', () => {
    const a = splitRows(50, { validation: 0.2 }, 7);
    expect(splitRows(50, { validation: 0.2 }, 7)).toEqual(a);
    const two = splitTrainValidation(50, 0.2, 7);
    expect(a).toEqual({ train: two.train, validation: two.validation, test: [] });
    expect(splitRows(50, { validation: 0.2 }, 8).validation).not.toEqual(a.validation);
  });

  it('splits three ways into disjoint sets covering every row', () => {
    const s = splitRows(40, { validation: 0.1, test: 0.25 }, 3);
    expect([s.train.length, s.validation.length, s.test.length]).toEqual([26, 4, 10]);
    expect([...s.train, ...s.validation, ...s.test].sort((x, y) => x - y)).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  it('keeps each group in one split', () => {
    const groups = Array.from({ length: 30 }, (_, i) => `tree${Math.floor(i / 3)}`);
    const s = splitRows(30, { validation: 0.2, test: 0.2 }, 11, groups);
    const where = new Map<string, string>();
    for (const [name, rows] of Object.entries(s)) {
      for (const i of rows) {
        const seen = where.get(groups[i]!);
        expect(seen === undefined || seen === name).toBe(true);
        where.set(groups[i]!, name);
      }
    }
    expect(s.validation.length).toBe(6);
    expect(s.test.length).toBe(6);
  });

  it('refuses fractions that leave nothing to train on', () => {
    expect(caught(() => splitRows(10, { validation: 0.5, test: 0.5 }, 1)).code).toBe('invalid_input');
  });
});

describe('dataset registry', () => {
  it('lists each dataset once with a task kind, and names the known ids for an unknown one', () => {
    expect(listDatasets().map((d) => [d.id, d.taskKind])).toEqual([
      ['hotpotqa', 'qa'],
      ['qqp', 'paraphrase'],
      ['oasst1', 'dialogue'],
      ['crows-pairs', 'stereotype-pairs'],
      ['stereoset', 'stereoset'],
      ['bbq', 'bias-qa'],
      ['text-corpus', 'text'],
      ['user-table', 'instruction'],
    ]);
    expect(caught(() => getDataset('squad')).message).toMatch(/Unknown dataset "squad"; known datasets: hotpotqa, qqp/);
    expect(() =>
      registerDataset({ id: 'qqp', label: '', taskKind: 'qa', description: '', sharedFiles: [], read: async () => ({ rows: [], notes: [] }) }),
    ).toThrow(/registered twice/);
  });

  it('reads through the registry, with notes and templates', async () => {
    const oasst = await getDataset('oasst1').read(join(FIXTURES, 'oasst1-messages.jsonl'));
    expect(oasst.rows).toHaveLength(1);
    expect(oasst.notes[0]).toMatch(/^2 messages not in any conversation: line 9: /);
    const qqp = getDataset('qqp');
    const { rows } = await qqp.read(join(FIXTURES, 'qqp.tsv'));
    expect(qqp.template!(rows[0])).toEqual({
      prompt:
        'Question 1: How do I learn to cook?\nQuestion 2: What is the best way to learn cooking?\nQuestion: Do both questions ask the same thing?\nAnswer:',
      completion: ' yes',
    });
    await expect(getDataset('user-table').read(join(FIXTURES, 'user.csv'))).rejects.toThrow(/Pick which columns/);
  });
});
