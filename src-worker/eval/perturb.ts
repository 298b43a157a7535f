// Seeded input perturbations for the robustness evaluation (EVALUATION.md, "Robustness to
// perturbation"), after the catalogue of HELM's augmentations: character typos, misspellings,
// word dropout and order swaps, synonyms, contractions / expansions, extra spaces, filler words,
// person-name swaps, demographic-term swaps and dialect (SAE -> AAE word substitutions, as HELM's
// DialectPerturbation).
//
// perturb(text, family, level, seed) touches round(level * nWords) words (half up), each chosen
// once (dialect: round(level * the words its mapping covers)); families that act on two words at
// a time (word-swap, two-word contractions) land within one word of it. Families that need a particular word (a synonym, a name, a contraction) touch
// at most the words that have one. Choices depend only on (seed, family, text): the words touched
// at level 0.1 are among those touched at 0.2, and a word gets the same edit at every level, so
// metric curves over the levels compare like with like. Level 0 returns the text unchanged.
import { WorkbenchError } from '../../src-shared/errors.ts';
import { perturbationFamilies } from '../../src-shared/eval.ts';
import { deriveSeed, mulberry32, shuffled } from '../rng.ts';
import { DEFAULT_WORD_LISTS, type WordLists } from './wordlists.ts';

/** The families, named once in src-shared/eval.ts (the request's schema, the CLI and the form list the same). */
export const PERTURBATION_FAMILIES = perturbationFamilies;
export type PerturbationFamily = (typeof PERTURBATION_FAMILIES)[number];

/** The levels EVALUATION.md reports, as fractions of words touched. */
export const PERTURBATION_LEVELS = [0, 0.1, 0.2, 0.3, 0.4] as const;

export interface PerturbResult {
  text: string;
  /** Indices (into the original text's words, ascending) of the words changed. */
  touchedWordIndices: number[];
  wordCount: number;
}

export interface PerturbOptions {
  /** Replaces some default lists, e.g. demographicTermSets read with readDemographicTermSets. Pass the same object each call and do not change it: its lookups are cached. */
  wordLists?: Partial<WordLists>;
}

/** A word: letters and digits, with inner apostrophes kept ("don't" is one word). */
const WORD = /[\p{L}\p{N}]+(?:['\u2019][\p{L}\p{N}]+)*/gu;

/** The text as gaps[0] words[0] gaps[1] ... words[n-1] gaps[n]; joining them gives the text back. */
export function splitWords(text: string): { words: string[]; gaps: string[] } {
  const words: string[] = [];
  const gaps: string[] = [];
  let last = 0;
  for (const m of text.matchAll(WORD)) {
    gaps.push(text.slice(last, m.index));
    words.push(m[0]);
    last = m.index + m[0].length;
  }
  gaps.push(text.slice(last));
  return { words, gaps };
}

export function countWords(text: string): number {
  return splitWords(text).words.length;
}

function joinSegments(words: string[], gaps: string[]): string {
  let out = gaps[0]!;
  words.forEach((w, i) => (out += w + gaps[i + 1]!));
  return out;
}

/** FNV-1a over UTF-16 code units: ties the random stream to the text being perturbed. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

type Rng = { next(): number };
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng.next() * items.length)]!;
const isUpper = (s: string) => s !== s.toLowerCase() && s === s.toUpperCase();
const normalizeApostrophe = (s: string) => s.replace(/\u2019/g, "'");

/** Gives `replacement` the case pattern of `source`: ALL CAPS, Capitalized, or as written. */
export function matchCase(source: string, replacement: string): string {
  if (Array.from(source).length > 1 && isUpper(source)) return replacement.toUpperCase();
  if (isUpper(source[0] ?? '')) return replacement.charAt(0).toUpperCase() + replacement.slice(1);
  return replacement;
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
const ONE_WORD = /^[\p{L}\p{N}]+(?:['\u2019][\p{L}\p{N}]+)*$/u;
/** A typo must leave one word ("didn'" would split into a word and a stray apostrophe). */
const staysOneWord = (c: string[]) => ONE_WORD.test(c.join(''));

function swapAt(c: string[], j: number): string[] {
  const out = c.slice();
  [out[j], out[j + 1]] = [out[j + 1]!, out[j]!];
  return out;
}
const dropAt = (c: string[], j: number) => [...c.slice(0, j), ...c.slice(j + 1)];

/** Character typos on code points, each returning a word different from its input. */
const TYPOS = {
  'char-swap': {
    positions: (c: string[]) => c.flatMap((ch, j) => (j + 1 < c.length && ch !== c[j + 1] && staysOneWord(swapAt(c, j)) ? [j] : [])),
    apply: swapAt,
  },
  'char-drop': {
    positions: (c: string[]) => (c.length >= 2 ? c.flatMap((_, j) => (staysOneWord(dropAt(c, j)) ? [j] : [])) : []),
    apply: dropAt,
  },
  'char-insert': {
    positions: (c: string[]) => c.map((_, j) => j),
    apply(c: string[], j: number, rng: Rng, lists: WordLists): string[] {
      const near = lists.keyboardNeighbours[c[j]!.toLowerCase()];
      let inserted = pick(rng, near ? Array.from(near) : Array.from(LETTERS));
      if (isUpper(c.join('')) && c.length > 1) inserted = inserted.toUpperCase();
      return [...c.slice(0, j + 1), inserted, ...c.slice(j + 1)];
    },
  },
  'char-keyboard': {
    positions: (c: string[], lists: WordLists) => c.flatMap((ch, j) => (lists.keyboardNeighbours[ch.toLowerCase()] ? [j] : [])),
    apply(c: string[], j: number, rng: Rng, lists: WordLists): string[] {
      const replacement = pick(rng, Array.from(lists.keyboardNeighbours[c[j]!.toLowerCase()]!));
      const out = c.slice();
      out[j] = isUpper(c[j]!) ? replacement.toUpperCase() : replacement;
      return out;
    },
  },
} satisfies Record<string, { positions(c: string[], lists: WordLists): number[]; apply(c: string[], j: number, rng: Rng, lists: WordLists): string[] }>;
type TypoKind = keyof typeof TYPOS;
const TYPO_KINDS = Object.keys(TYPOS) as TypoKind[];

function applicableTypos(word: string, lists: WordLists, kinds: readonly TypoKind[]): TypoKind[] {
  const chars = Array.from(word);
  return kinds.filter((k) => TYPOS[k].positions(chars, lists).length > 0);
}

function typo(word: string, rng: Rng, lists: WordLists, kinds: readonly TypoKind[]): string {
  const chars = Array.from(word);
  const kind = pick(rng, applicableTypos(word, lists, kinds));
  const j = pick(rng, TYPOS[kind].positions(chars, lists));
  return TYPOS[kind].apply(chars, j, rng, lists).join('');
}

interface Lookups {
  lists: WordLists;
  synonyms: Map<string, string[]>;
  misspellings: Map<string, string[]>;
  dialect: Map<string, string[]>;
  contraction: Map<string, string>;
  expansion: Map<string, string>;
  nameList: Map<string, string[]>;
  termSwaps: Map<string, string[]>;
}

function lookups(lists: WordLists): Lookups {
  const lower = (table: Record<string, string[]>) => new Map(Object.entries(table).map(([k, v]) => [normalizeApostrophe(k.toLowerCase()), v]));
  const contraction = new Map<string, string>();
  const expansion = new Map<string, string>();
  for (const [long, short] of lists.contractions) {
    const l = long.toLowerCase();
    const s = normalizeApostrophe(short.toLowerCase());
    if (!contraction.has(l)) contraction.set(l, short);
    if (!expansion.has(s)) expansion.set(s, long);
  }
  const nameList = new Map<string, string[]>();
  for (const list of Object.values(lists.names)) for (const name of list) if (!nameList.has(name)) nameList.set(name, list);
  const termSwaps = new Map<string, string[]>();
  for (const set of lists.demographicTermSets) {
    for (const term of set) {
      const t = normalizeApostrophe(term.toLowerCase());
      if (!termSwaps.has(t))
        termSwaps.set(
          t,
          set.filter((other) => other.toLowerCase() !== t),
        );
    }
  }
  return {
    lists,
    synonyms: lower(lists.synonyms),
    misspellings: lower(lists.misspellings),
    dialect: lower(lists.dialect),
    contraction,
    expansion,
    nameList,
    termSwaps,
  };
}

/** Lookups are built once per word-list object: an evaluation calls perturb thousands of times. */
const lookupCache = new WeakMap<object, Lookups>();
const DEFAULT_KEY = {};
function lookupsFor(overrides: Partial<WordLists> | undefined): Lookups {
  const cacheKey = overrides ?? DEFAULT_KEY;
  let l = lookupCache.get(cacheKey);
  if (!l) {
    l = lookups({ ...DEFAULT_WORD_LISTS, ...overrides });
    lookupCache.set(cacheKey, l);
  }
  return l;
}

/** A one-word edit: whether a word can take it, and the edit (never equal to the word). */
interface WordEdit {
  eligible(word: string, l: Lookups): boolean;
  apply(word: string, rng: Rng, l: Lookups, index: number): string;
  /** Draw from a stream keyed by the word instead of its position, so one name always maps to one name. */
  keyedByWord?: boolean;
}

const key = (word: string) => normalizeApostrophe(word.toLowerCase());
const replaceFrom = (table: (l: Lookups) => Map<string, string[]>): WordEdit => ({
  eligible: (w, l) => (table(l).get(key(w)) ?? []).some((r) => r.toLowerCase() !== key(w)),
  apply: (w, rng, l) =>
    matchCase(
      w,
      pick(
        rng,
        table(l)
          .get(key(w))!
          .filter((r) => r.toLowerCase() !== key(w)),
      ),
    ),
});

const typoEdit = (kinds: readonly TypoKind[]): WordEdit => ({
  eligible: (w, l) => applicableTypos(w, l.lists, kinds).length > 0,
  apply: (w, rng, l) => typo(w, rng, l.lists, kinds),
});

const WORD_EDITS: Partial<Record<PerturbationFamily, WordEdit>> = {
  typo: typoEdit(TYPO_KINDS),
  'char-swap': typoEdit(['char-swap']),
  'char-drop': typoEdit(['char-drop']),
  'char-insert': typoEdit(['char-insert']),
  'char-keyboard': typoEdit(['char-keyboard']),
  misspelling: replaceFrom((l) => l.misspellings),
  synonym: replaceFrom((l) => l.synonyms),
  // Keyed by word: one SAE word takes the same AAE form wherever it occurs in a text.
  dialect: { ...replaceFrom((l) => l.dialect), keyedByWord: true },
  expansion: {
    eligible: (w, l) => l.expansion.has(key(w)),
    apply: (w, _rng, l) => matchCase(w, l.expansion.get(key(w))!),
  },
  'extra-space': {
    eligible: () => true,
    // Spaces go before the word (after it for the first word), so each touched word shows the change.
    apply: (w, rng, _l, index) => {
      const spaces = ' '.repeat(1 + Math.floor(rng.next() * 3));
      return index === 0 ? w + spaces : spaces + w;
    },
  },
  filler: {
    eligible: () => true,
    apply: (w, rng, l) => `${pick(rng, l.lists.fillers)} ${w}`,
  },
  'name-swap': {
    eligible: (w, l) => (l.nameList.get(w)?.length ?? 0) > 1,
    apply: (w, rng, l) =>
      pick(
        rng,
        l.nameList.get(w)!.filter((n) => n !== w),
      ),
    keyedByWord: true,
  },
  'demographic-swap': {
    eligible: (w, l) => (l.termSwaps.get(key(w))?.length ?? 0) > 0,
    apply: (w, rng, l) => matchCase(w, pick(rng, l.termSwaps.get(key(w))!)),
    keyedByWord: true,
  },
};

/** Merges the gaps around a dropped word: one space between neighbours, punctuation and line breaks kept. */
function joinGaps(left: string, right: string): string {
  if (left.trim() === '' && right.trim() === '') return left.includes('\n') ? left : right;
  const core = left.trimEnd();
  return core === '' ? right : core + right;
}

function validate(family: string, level: number, seed: number): void {
  if (!(PERTURBATION_FAMILIES as readonly string[]).includes(family)) {
    throw new WorkbenchError('invalid_input', `Unknown perturbation "${family}"; pick one of ${PERTURBATION_FAMILIES.join(', ')}.`, { family });
  }
  if (!Number.isFinite(level) || level < 0 || level > 1) {
    throw new WorkbenchError('invalid_input', `Perturbation level must be a fraction of words from 0 to 1; got ${level}.`, { level });
  }
  if (!Number.isInteger(seed)) throw new WorkbenchError('invalid_input', `Perturbation seed must be an integer; got ${seed}.`, { seed });
}

export function perturb(text: string, family: PerturbationFamily, level: number, seed: number, options: PerturbOptions = {}): PerturbResult {
  validate(family, level, seed);
  const { words, gaps } = splitWords(text);
  const n = words.length;
  // Half up, robust to 0.3 * 5 = 1.4999999999999998.
  const wanted = Math.floor(level * n + 0.5 + 1e-9);
  if (wanted === 0) return { text, touchedWordIndices: [], wordCount: n };
  const l = lookupsFor(options.wordLists);
  const base = deriveSeed(seed >>> 0, hashString(family), hashString(text));
  const order = <T>(items: T[]) => shuffled(items, deriveSeed(base, 1));
  const touched: number[] = [];
  const out = { words: words.slice(), gaps: gaps.slice() };

  if (family === 'word-swap') {
    // k disjoint adjacent pairs, uniformly: choose k of the n - k slots of a tiling by k
    // dominoes and n - 2k single words; the i-th chosen slot s starts a pair at word s + i.
    const k = Math.min(Math.floor(n / 2), Math.round(wanted / 2));
    const slots = order(Array.from({ length: n - k }, (_, s) => s))
      .slice(0, k)
      .sort((a, b) => a - b);
    slots.forEach((s, i) => {
      const p = s + i;
      [out.words[p], out.words[p + 1]] = [out.words[p + 1]!, out.words[p]!];
      touched.push(p, p + 1);
    });
  } else if (family === 'contraction') {
    // Units are single words ("cannot") or two words one space apart ("do not"), left to right,
    // never overlapping; units are taken in seeded order until `wanted` words are touched.
    const units: number[][] = [];
    for (let i = 0; i < n; i++) {
      const pair = i + 1 < n && out.gaps[i + 1] === ' ' ? `${key(words[i]!)} ${key(words[i + 1]!)}` : null;
      if (pair !== null && l.contraction.has(pair)) units.push([i, i + 1]);
      else if (l.contraction.has(key(words[i]!))) units.push([i]);
      else continue;
      if (units[units.length - 1]!.length === 2) i++;
    }
    for (const unit of order(units)) {
      if (touched.length >= wanted) break;
      const phrase = unit.map((i) => key(words[i]!)).join(' ');
      out.words[unit[0]!] = matchCase(words[unit[0]!]!, l.contraction.get(phrase)!);
      if (unit.length === 2) {
        out.words[unit[1]!] = '';
        out.gaps[unit[1]!] = '';
      }
      touched.push(...unit);
    }
  } else if (family === 'word-dropout') {
    const dropped = new Set(order(words.map((_, i) => i)).slice(0, wanted));
    for (let i = 0; i < n; i++) {
      if (!dropped.has(i)) continue;
      out.words[i] = '';
      out.gaps[i + 1] = joinGaps(out.gaps[i]!, out.gaps[i + 1]!);
      out.gaps[i] = '';
      touched.push(i);
    }
    let result = joinSegments(out.words, out.gaps);
    if (!/^\s/.test(text)) result = result.trimStart();
    if (!/\s$/.test(text)) result = result.trimEnd();
    return { text: result, touchedWordIndices: touched.sort((a, b) => a - b), wordCount: n };
  } else {
    const edit = WORD_EDITS[family]!;
    const eligible = words.flatMap((w, i) => (edit.eligible(w, l) ? [i] : []));
    // Dialect acts on the words the mapping covers, as HELM's DialectPerturbation does (each mapped
    // word with probability p): here exactly round(p * mapped words), so a level means the same
    // thing on texts with few or many mapped words.
    const count = family === 'dialect' ? Math.floor(level * eligible.length + 0.5 + 1e-9) : wanted;
    for (const i of order(eligible).slice(0, count)) {
      const rng = mulberry32(deriveSeed(base, 2, edit.keyedByWord ? hashString(key(words[i]!)) : i));
      out.words[i] = edit.apply(words[i]!, rng, l, i);
      touched.push(i);
    }
  }
  return { text: joinSegments(out.words, out.gaps), touchedWordIndices: touched.sort((a, b) => a - b), wordCount: n };
}
