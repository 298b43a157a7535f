// Each reader on its real dataset in ../shared/data, with the row counts asserted. The counts were
// taken independently (Python's json / csv modules) and agree with each folder's SOURCE.md.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readBbq } from '../../src-worker/data/readers/bbq.ts';
import { readCrowsPairs } from '../../src-worker/data/readers/crows-pairs.ts';
import { readHotpotQa } from '../../src-worker/data/readers/hotpotqa.ts';
import { getDataset, listDatasets } from '../../src-worker/data/readers/index.ts';
import { parseOasstMessages, readOasst } from '../../src-worker/data/readers/oasst1.ts';
import { readQqp } from '../../src-worker/data/readers/qqp.ts';
import { readStereoSet } from '../../src-worker/data/readers/stereoset.ts';
import { perturb } from '../../src-worker/eval/perturb.ts';
import { readDemographicTermSets } from '../../src-worker/eval/wordlists.ts';

const repoRoot = join(import.meta.dirname, '..', '..');
const DATA = join(repoRoot, '..', 'shared', 'data');
const at = (...parts: string[]) => join(DATA, ...parts);

const count = <T>(rows: T[], key: (row: T) => string | number | null) => {
  const counts: Record<string, number> = {};
  for (const row of rows) counts[String(key(row))] = (counts[String(key(row))] ?? 0) + 1;
  return counts;
};

beforeAll(() => {
  if (!existsSync(DATA)) throw new Error(`The shared datasets are not at ${DATA}; npm run test:shared needs them there.`);
});

describe('HotpotQA', () => {
  it('reads the 53 official-format dev examples', async () => {
    const rows = await readHotpotQa(at('hotpotqa', 'hotpot_dev_distractor_v1_first53.jsonl'));
    expect(rows).toHaveLength(53);
    expect(count(rows, (r) => r.type)).toEqual({ bridge: 39, comparison: 14 });
    expect(count(rows, (r) => r.level)).toEqual({ hard: 53 });
    expect(count(rows, (r) => r.paragraphs.length)).toEqual({ 2: 1, 10: 52 });
    expect(rows[0]).toMatchObject({ id: '5a8b57f25542995d1e6f1371', answer: 'yes', type: 'comparison', line: 1 });
    expect(rows[0]!.supportingFacts).toEqual([
      { title: 'Scott Derrickson', sentenceIndex: 0 },
      { title: 'Ed Wood', sentenceIndex: 0 },
    ]);
  });

  it("reads IRCoT's 500-question subsample, which contains the 53 with the same answers", async () => {
    const rows = await readHotpotQa(at('hotpotqa', 'ircot_dev_subsampled.jsonl'));
    expect(rows).toHaveLength(500);
    expect(count(rows, (r) => r.paragraphs.filter((p) => p.isSupporting).length)).toEqual({ 2: 500 });
    expect(rows.filter((r) => r.paragraphs.length === 10)).toHaveLength(489);
    expect(
      count(
        rows.filter((r) => r.answer === 'yes' || r.answer === 'no'),
        (r) => r.answer,
      ),
    ).toEqual({ yes: 36, no: 44 });
    const official = await readHotpotQa(at('hotpotqa', 'hotpot_dev_distractor_v1_first53.jsonl'));
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const o of official) expect(byId.get(o.id)?.answer).toBe(o.answer);
  });
});

describe('QQP', () => {
  it('reads the glue_pretrain JSON splits with their label counts', async () => {
    const train = await readQqp(at('qqp', 'glue_pretrain_QQP_train.json'));
    const dev = await readQqp(at('qqp', 'glue_pretrain_QQP_dev.json'));
    expect(train).toHaveLength(8999);
    expect(dev).toHaveLength(1000);
    expect(count(train, (r) => r.label)).toEqual({ 0: 5747, 1: 3252 });
    expect(count(dev, (r) => r.label)).toEqual({ 0: 623, 1: 377 });
    // GLUE's quote artefacts stay in the text; the item starts on line 17 of the file.
    expect(train[3]).toEqual({ id: '3', question1: 'Marriage', question2: '"""Marriage is an institution."" What does this mean?"', label: 0, line: 17 });
  });

  it('reads the same 9,999 pairs from the JSONL', async () => {
    const rows = await readQqp(at('qqp', 'qqp_glue_pretrain_9999.jsonl'));
    expect(rows).toHaveLength(9999);
    expect(count(rows, (r) => r.label)).toEqual({ 0: 6370, 1: 3629 });
  });

  it('reads the ten LM-BFF 16-shot TSV files, 32 balanced rows each', async () => {
    let total = 0;
    for (const seed of [13, 21, 42, 87, 100]) {
      for (const split of ['train', 'dev']) {
        const rows = await readQqp(at('qqp', 'lmbff_k-shot', `16-${seed}`, `${split}.tsv`));
        expect(
          count(rows, (r) => r.label),
          `16-${seed}/${split}`,
        ).toEqual({ 0: 16, 1: 16 });
        total += rows.length;
      }
    }
    expect(total).toBe(320);
  });
});

describe('OASST1', () => {
  const messages = at('oasst1', 'en-validation.jsonl');

  it('reads the 2,022 English validation messages', () => {
    const rows = parseOasstMessages(readFileSync(messages, 'utf8'), messages);
    expect(rows).toHaveLength(2022);
    expect(count(rows, (r) => r.role)).toEqual({ prompter: 779, assistant: 1243 });
    expect(rows.filter((r) => r.deleted)).toHaveLength(40);
    expect(rows.filter((r) => r.reviewResult === false)).toHaveLength(53);
  });

  it('rebuilds 188 best threads, turn for turn the same as derived_best_threads.jsonl, and names the 3 orphans', async () => {
    const { conversations, skipped } = await readOasst(messages);
    expect(conversations).toHaveLength(188);
    expect(count(conversations, (c) => c.turns.length)).toEqual({ 2: 103, 4: 84, 6: 1 });
    expect(skipped.map((s) => s.line)).toEqual([153, 215, 1670]);
    const derived = (await readOasst(at('oasst1', 'derived_best_threads.jsonl'))).conversations;
    expect(derived).toHaveLength(188);
    const byTree = new Map(derived.map((c) => [c.treeId, c.turns]));
    for (const c of conversations) expect(byTree.get(c.treeId)).toEqual(c.turns);
  });

  it("counts every root-to-leaf thread in 'all' mode", async () => {
    expect((await readOasst(messages, { mode: 'all', includeDeleted: true })).conversations).toHaveLength(704);
    expect((await readOasst(messages, { mode: 'all' })).conversations).toHaveLength(688);
    expect((await readOasst(messages, { mode: 'all', requireReview: true })).conversations).toHaveLength(673);
  });

  it('reads the 568 first-turn pairs', async () => {
    expect((await readOasst(at('oasst1', 'derived_first_turn_pairs.jsonl'))).conversations).toHaveLength(568);
  });
});

describe('CrowS-Pairs', () => {
  it('reads 1,508 pairs with their directions and categories, line numbers past a multi-line field', async () => {
    const rows = await readCrowsPairs(at('crows-pairs', 'crows_pairs_anonymized.csv'));
    expect(rows).toHaveLength(1508);
    expect(count(rows, (r) => r.direction)).toEqual({ stereo: 1290, antistereo: 218 });
    expect(count(rows, (r) => r.biasType)).toEqual({
      'race-color': 516,
      gender: 262,
      socioeconomic: 172,
      nationality: 159,
      religion: 105,
      age: 87,
      'sexual-orientation': 84,
      'physical-appearance': 63,
      disability: 60,
    });
    // Row 1293's sent_less holds a line break, so the rows after it start one line later.
    expect(rows[1293]).toMatchObject({ index: 1293, sentLess: 'Bob was denied because he was white\n.', line: 1295 });
    expect(rows[1294]!.line).toBe(1297);
    expect(rows[1507]!.line).toBe(1510);
  });
});

describe('StereoSet', () => {
  it('reads the race and religion intrasentence files', async () => {
    const race = await readStereoSet(at('stereoset', 'race_test.json'));
    const religion = await readStereoSet(at('stereoset', 'religion_test.json'));
    expect(race).toHaveLength(962);
    expect(religion).toHaveLength(79);
    expect(count([...race, ...religion], (r) => r.task)).toEqual({ intrasentence: 1041 });
    expect(race[0]).toMatchObject({ target: 'Ethiopian', context: 'Ethiopian men are BLANK', line: 1, index: 0 });
    expect(race[0]!.sentences.stereotype.sentence).toBe('Ethiopian men are skinny');
    const both = await getDataset('stereoset').read(at('stereoset'));
    expect(both.rows).toHaveLength(1041);
  });
});

describe('BBQ', () => {
  it('reads the six category files and finds the stereotyped option of every example', async () => {
    const rows = await readBbq(at('bbq'));
    expect(rows).toHaveLength(5864);
    expect(count(rows, (r) => r.category)).toEqual({
      Age: 1000,
      Disability_status: 1000,
      Nationality: 1000,
      Physical_appearance: 1000,
      Religion: 1000,
      Sexual_orientation: 864,
    });
    expect(count(rows, (r) => r.contextCondition)).toEqual({ ambig: 2932, disambig: 2932 });
    expect(rows.filter((r) => r.stereotypedIndex === null)).toHaveLength(0);
    expect(rows.filter((r) => r.contextCondition === 'ambig' && r.label !== r.unknownIndex)).toHaveLength(0);
    expect(rows[0]).toMatchObject({ category: 'Age', exampleId: 0, label: 2, unknownIndex: 2, stereotypedIndex: 0, line: 1 });
  });
});

describe('registry and word pairs', () => {
  it('reads every shared file an entry names', async () => {
    for (const entry of listDatasets()) {
      for (const file of entry.sharedFiles) {
        const { rows } = await entry.read(at(file));
        expect(rows.length, `${entry.id} ${file}`).toBeGreaterThan(0);
      }
    }
  });

  it("loads bias-bench's demographic word lists at run time and swaps with them", async () => {
    const file = at('word-pairs', 'bias_attribute_words.json');
    expect(await readDemographicTermSets(file, ['gender'])).toHaveLength(57);
    const all = await readDemographicTermSets(file);
    expect(all).toHaveLength(69);
    const swapped = perturb('The actor thanked his uncle.', 'demographic-swap', 1, 1, { wordLists: { demographicTermSets: all } });
    expect(swapped.text).toBe('The actress thanked her aunt.');
  });
});
