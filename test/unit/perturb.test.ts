import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { mulberry32 } from '../../src-worker/rng.ts';
import { PERTURBATION_FAMILIES, PERTURBATION_LEVELS, countWords, perturb, splitWords, type PerturbationFamily } from '../../src-worker/eval/perturb.ts';
import { DEFAULT_WORD_LISTS, readDemographicTermSets } from '../../src-worker/eval/wordlists.ts';

const SENTENCE = "He said he didn't know whether John and Mary would arrive at the big city before noon, but I am sure they do not want to be late.";

/** A text of n words drawn (seeded) from `vocabulary`, one space apart, ending with a full stop. */
function textOf(vocabulary: readonly string[], n: number, seed: number): string {
  const rng = mulberry32(seed);
  return `${Array.from({ length: n }, () => vocabulary[Math.floor(rng.next() * vocabulary.length)]!).join(' ')}.`;
}

const LONG_WORDS = ['garden', 'window', 'silver', 'planet', 'market', 'forest', 'bridge', 'coffee', 'rabbit', 'winter'];
/** Texts on which every word can take the family's edit, so the count is exact (or within one for pairs). */
const VOCABULARY: Record<PerturbationFamily, readonly string[]> = {
  typo: LONG_WORDS,
  'char-swap': LONG_WORDS,
  'char-drop': LONG_WORDS,
  'char-insert': LONG_WORDS,
  'char-keyboard': LONG_WORDS,
  misspelling: Object.keys(DEFAULT_WORD_LISTS.misspellings).filter((w) => !w.includes("'")),
  'word-dropout': LONG_WORDS,
  'word-swap': LONG_WORDS,
  synonym: Object.keys(DEFAULT_WORD_LISTS.synonyms),
  contraction: ['do not', 'is not', 'cannot', 'they are'],
  expansion: ["don't", "isn't", "can't", "they're"],
  'extra-space': LONG_WORDS,
  filler: LONG_WORDS,
  'name-swap': DEFAULT_WORD_LISTS.names['female']!,
  'demographic-swap': DEFAULT_WORD_LISTS.demographicTermSets.flat(),
  dialect: Object.keys(DEFAULT_WORD_LISTS.dialect).filter((w) => !w.includes("'")),
};
const PAIRED = new Set<PerturbationFamily>(['word-swap', 'contraction']);

describe('perturb', () => {
  it('returns the text unchanged at level 0 for every family', () => {
    for (const family of PERTURBATION_FAMILIES) {
      expect(perturb(SENTENCE, family, 0, 1)).toEqual({ text: SENTENCE, touchedWordIndices: [], wordCount: 28 });
    }
  });

  it('touches round(level * words) words: exactly for one-word edits, within one word for paired edits', () => {
    for (const family of PERTURBATION_FAMILIES) {
      for (const n of [1, 3, 7, 10, 16, 25]) {
        for (const level of PERTURBATION_LEVELS) {
          const text = textOf(VOCABULARY[family], n, n * 31 + 5);
          const words = countWords(text);
          const result = perturb(text, family, level, 42);
          const wanted = Math.floor(level * words + 0.5 + 1e-9);
          const touched = result.touchedWordIndices.length;
          const context = `${family} n=${words} level=${level}: ${touched} touched, wanted ${wanted}`;
          if (PAIRED.has(family)) {
            // A lone word cannot be swapped with a neighbour.
            if (family !== 'word-swap' || words > 1) expect(Math.abs(touched - wanted), context).toBeLessThanOrEqual(1);
          } else {
            expect(touched, context).toBe(wanted);
          }
          expect(new Set(result.touchedWordIndices).size, context).toBe(touched);
          if (wanted > 0 && touched > 0) expect(result.text, context).not.toBe(text);
        }
      }
    }
  });

  it('uses round half up: 0.1 of 5 words is 1 word, 0.3 of 5 is 2', () => {
    const text = 'alpha bravo charlie delta echo';
    expect(perturb(text, 'word-dropout', 0.1, 3).touchedWordIndices).toHaveLength(1);
    expect(perturb(text, 'word-dropout', 0.3, 3).touchedWordIndices).toHaveLength(2);
  });

  it('is deterministic for a seed and changes with the seed', () => {
    for (const family of ['typo', 'word-dropout', 'synonym', 'filler', 'word-swap'] as const) {
      const a = perturb(SENTENCE, family, 0.3, 123);
      expect(perturb(SENTENCE, family, 0.3, 123)).toEqual(a);
      const others = [1, 2, 3, 4].map((seed) => perturb(SENTENCE, family, 0.3, seed).text);
      expect(
        others.some((t) => t !== a.text),
        family,
      ).toBe(true);
    }
  });

  it('nests the levels: words touched at a lower level are touched, the same way, at a higher one', () => {
    for (const family of ['typo', 'char-keyboard', 'synonym', 'filler', 'word-dropout'] as const) {
      let previous: number[] = [];
      for (const level of PERTURBATION_LEVELS) {
        const touched = perturb(SENTENCE, family, level, 9).touchedWordIndices;
        expect(
          previous.every((i) => touched.includes(i)),
          `${family} ${level}`,
        ).toBe(true);
        previous = touched;
      }
    }
    const low = splitWords(perturb(SENTENCE, 'typo', 0.1, 9).text).words;
    const high = splitWords(perturb(SENTENCE, 'typo', 0.4, 9).text).words;
    for (const i of perturb(SENTENCE, 'typo', 0.1, 9).touchedWordIndices) expect(high[i]).toBe(low[i]);
  });

  it('changes exactly the touched words for character typos, and only by one character', () => {
    const original = splitWords(SENTENCE).words;
    for (const family of ['char-swap', 'char-drop', 'char-insert', 'char-keyboard'] as const) {
      const result = perturb(SENTENCE, family, 0.4, 5);
      const words = splitWords(result.text).words;
      expect(words, family).toHaveLength(original.length);
      words.forEach((w, i) => {
        if (result.touchedWordIndices.includes(i)) {
          expect(w, `${family} word ${i}`).not.toBe(original[i]);
          expect(Math.abs(w.length - original[i]!.length)).toBeLessThanOrEqual(1);
        } else {
          expect(w, `${family} word ${i}`).toBe(original[i]);
        }
      });
    }
  });

  it('replaces a keyboard typo with a neighbouring key', () => {
    const result = perturb('pppp', 'char-keyboard', 1, 1);
    // "p" neighbours "o" and "l" on a QWERTY keyboard.
    expect(result.text).toMatch(/^p*[ol]p*$/);
  });

  it('swaps adjacent words without losing any', () => {
    const result = perturb(SENTENCE, 'word-swap', 0.4, 8);
    const before = splitWords(SENTENCE).words;
    const after = splitWords(result.text).words;
    expect([...after].sort()).toEqual([...before].sort());
    for (let k = 0; k < result.touchedWordIndices.length; k += 2) {
      const i = result.touchedWordIndices[k]!;
      expect(result.touchedWordIndices[k + 1]).toBe(i + 1);
      expect([after[i], after[i + 1]]).toEqual([before[i + 1], before[i]]);
    }
  });

  it('drops words with their spacing, keeping punctuation', () => {
    const result = perturb('Hello, world.', 'word-dropout', 0.5, 2);
    const expected = result.touchedWordIndices[0] === 0 ? ', world.' : 'Hello.';
    expect(result.text).toBe(expected);
    expect(perturb('one two three', 'word-dropout', 1, 2).text).toBe('');
    const kept = perturb('alpha beta gamma delta', 'word-dropout', 0.5, 4);
    expect(kept.text.split(' ')).toHaveLength(2);
  });

  it('contracts and expands with the case of the first word kept', () => {
    expect(perturb('Do not worry, it is fine and I am here.', 'contraction', 1, 1).text).toBe("Don't worry, it's fine and I'm here.");
    expect(perturb("DON'T go; I'm sure it\u2019s fine.", 'expansion', 1, 1).text).toBe('DO NOT go; I am sure it is fine.');
    expect(perturb('I cannot', 'contraction', 1, 1)).toEqual({ text: "I can't", touchedWordIndices: [1], wordCount: 2 });
  });

  it('replaces synonyms and misspellings from the word lists, keeping case', () => {
    const synonyms = perturb('Big, big BIG', 'synonym', 1, 3);
    const options = DEFAULT_WORD_LISTS.synonyms['big']!;
    const [a, b, c] = splitWords(synonyms.text).words;
    expect(options.map((o) => o.charAt(0).toUpperCase() + o.slice(1))).toContain(a);
    expect(options).toContain(b);
    expect(options.map((o) => o.toUpperCase())).toContain(c);
    expect(perturb('Receive the letter', 'misspelling', 1, 1).text).toBe('Recieve teh letter');
  });

  it('adds filler words and extra spaces around the touched words only', () => {
    const filler = perturb('alpha beta', 'filler', 1, 6);
    const fillers = DEFAULT_WORD_LISTS.fillers.map((f) => f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
    expect(filler.text).toMatch(new RegExp(`^(${fillers}) alpha (${fillers}) beta$`));
    const spaced = perturb('alpha beta gamma', 'extra-space', 1, 6);
    // The first word takes its spaces after it, the others before them.
    expect(spaced.text).toMatch(/^alpha {3,7}beta {2,4}gamma$/);
    expect(spaced.text.replace(/ +/g, ' ')).toBe('alpha beta gamma');
  });

  it('swaps each name for another of the same list, the same way every time it occurs', () => {
    const result = perturb('John met Mary. John left.', 'name-swap', 1, 4);
    const [first, , second, third] = splitWords(result.text).words;
    expect(first).toBe(third);
    expect(DEFAULT_WORD_LISTS.names['male']).toContain(first);
    expect(first).not.toBe('John');
    expect(DEFAULT_WORD_LISTS.names['female']).toContain(second);
    expect(second).not.toBe('Mary');
  });

  it('swaps every demographic term at level 1 (the counterfactual input), from the defaults or a loaded file', async () => {
    expect(perturb('He told his Sister and the KING.', 'demographic-swap', 1, 1).text).toBe('She told her Brother and the QUEEN.');
    // A word in no set is left alone, so fewer words than asked are touched.
    expect(perturb('The table is red.', 'demographic-swap', 1, 1).touchedWordIndices).toEqual([]);
    const dir = mkdtempSync(join(tmpdir(), 'terms-'));
    const file = join(dir, 'terms.json');
    writeFileSync(file, JSON.stringify({ pets: [['Cat', 'dog']], colours: [['red', 'blue', 'green']] }));
    const sets = await readDemographicTermSets(file, ['pets']);
    expect(sets).toEqual([['cat', 'dog']]);
    expect(perturb('My cat and his dog.', 'demographic-swap', 1, 1, { wordLists: { demographicTermSets: sets } }).text).toBe('My dog and his cat.');
    await expect(readDemographicTermSets(file, ['nope'])).rejects.toThrow(/no category "nope"/);
  });

  it('substitutes AAE forms for the requested fraction of the SAE words the dialect list covers', () => {
    // 10 words, 5 of them mapped (about, going, with, them, nothing): level 0.4 touches round(0.4 * 5) = 2.
    const text = 'We are going to talk about it with them and nothing else today.';
    const mapped = [2, 5, 7, 8, 10];
    for (const [level, wanted] of [
      [0, 0],
      [0.1, 1],
      [0.2, 1],
      [0.3, 2],
      [0.4, 2],
      [1, 5],
    ] as const) {
      const result = perturb(text, 'dialect', level, 11);
      expect(result.touchedWordIndices, `level ${level}`).toHaveLength(wanted);
      expect(result.touchedWordIndices.every((i) => mapped.includes(i))).toBe(true);
    }
    expect(perturb(text, 'dialect', 1, 11).text).toBe('We are goin to talk bout it wit dem and nothin else today.');
    expect(perturb(text, 'dialect', 0, 11).text).toBe(text);
    // Deterministic for a seed; another seed picks other words at a partial level.
    expect(perturb(text, 'dialect', 0.4, 5)).toEqual(perturb(text, 'dialect', 0.4, 5));
    const picks = new Set([1, 2, 3, 4, 5, 6].map((seed) => perturb(text, 'dialect', 0.4, seed).touchedWordIndices.join(',')));
    expect(picks.size).toBeGreaterThan(1);
    // Case is kept, and words outside the list are never touched.
    expect(perturb('THIS is My Brother.', 'dialect', 1, 2).text).toBe('DIS is My Brotha.');
    expect(perturb('The table is red.', 'dialect', 1, 2).touchedWordIndices).toEqual([]);
    // The mapping is data: every entry is lowercase and never maps a word to itself.
    for (const [sae, aae] of Object.entries(DEFAULT_WORD_LISTS.dialect)) {
      expect(sae).toBe(sae.toLowerCase());
      expect(aae.length).toBeGreaterThan(0);
      expect(aae).not.toContain(sae);
    }
  });

  it('refuses an unknown family, a level outside [0, 1] and a fractional seed', () => {
    const codeOf = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return (e as WorkbenchError).code;
      }
      return 'no error';
    };
    expect(codeOf(() => perturb('a b', 'shout' as PerturbationFamily, 0.1, 1))).toBe('invalid_input');
    expect(codeOf(() => perturb('a b', 'typo', 1.5, 1))).toBe('invalid_input');
    expect(codeOf(() => perturb('a b', 'typo', -0.1, 1))).toBe('invalid_input');
    expect(codeOf(() => perturb('a b', 'typo', 0.1, 1.5))).toBe('invalid_input');
  });

  it('splits text into words and gaps that join back to the text', () => {
    const text = "  It's 5 o'clock\u2014time, isn\u2019t it? ";
    const { words, gaps } = splitWords(text);
    expect(words).toEqual(["It's", '5', "o'clock", 'time', 'isn\u2019t', 'it']);
    expect(gaps.length).toBe(words.length + 1);
    expect(gaps.map((g, i) => g + (words[i] ?? '')).join('')).toBe(text);
    expect(perturb('', 'typo', 0.4, 1)).toEqual({ text: '', touchedWordIndices: [], wordCount: 0 });
  });
});
