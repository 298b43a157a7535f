// Counterfactual fairness (EVALUATION.md): the gap in task metric and in output probability between
// inputs and their demographic-term-swapped counterparts. The twin of an input replaces every term of
// the demographic word lists with the next member of its set (he -> she -> he, christian -> muslim ->
// jewish -> christian): a fixed permutation, so two different groups named in one item never collapse
// into the same one, and every field of an item (question pair, BBQ context / question / answers) is
// swapped the same way, which keeps the gold answer valid for the twin. Figures are taken over the
// items the swap changed only; items without any listed term say nothing about the model's fairness.
import { WorkbenchError } from '../../src-shared/errors.ts';
import { matchCase, splitWords } from './perturb.ts';
import { DEFAULT_WORD_LISTS } from './wordlists.ts';

const normalize = (word: string) => word.toLowerCase().replace(/\u2019/g, "'");

const swapTables = new WeakMap<readonly (readonly string[])[], Map<string, string>>();

/** term -> the next term of the first set that lists it. */
function swapTable(sets: readonly (readonly string[])[]): Map<string, string> {
  let table = swapTables.get(sets);
  if (!table) {
    table = new Map();
    for (const set of sets) {
      set.forEach((term, i) => {
        const key = normalize(term);
        if (!table!.has(key) && set.length > 1) table!.set(key, set[(i + 1) % set.length]!.toLowerCase());
      });
    }
    swapTables.set(sets, table);
  }
  return table;
}

/** The text with every listed demographic term swapped, case kept; `swapped` counts the words changed. */
export function counterfactualSwap(
  text: string,
  sets: readonly (readonly string[])[] = DEFAULT_WORD_LISTS.demographicTermSets,
): { text: string; swapped: number } {
  const table = swapTable(sets);
  const { words, gaps } = splitWords(text);
  let swapped = 0;
  let out = gaps[0]!;
  words.forEach((word, i) => {
    const twin = table.get(normalize(word));
    if (twin !== undefined && twin !== normalize(word)) {
      out += matchCase(word, twin);
      swapped++;
    } else {
      out += word;
    }
    out += gaps[i + 1]!;
  });
  return { text: out, swapped };
}

/** What the model did on one input: its answer, whether it is right, and the probability reported. */
export interface Outcome {
  prediction: number;
  correct: boolean;
  /** QQP: P(yes); BBQ: P(gold option); normalised over the options. */
  probability: number;
}

/** QQP: " yes" against " no" (the suite's rule: yes only when strictly likelier), P(yes) = sigmoid(ll_yes - ll_no). */
export function binaryOutcome(logLikYes: number, logLikNo: number, label: 0 | 1): Outcome {
  const prediction = logLikYes > logLikNo ? 1 : 0;
  return { prediction, correct: prediction === label, probability: 1 / (1 + Math.exp(logLikNo - logLikYes)) };
}

/** Multiple choice: the first likeliest option answers; the probability is the gold option's softmax weight. */
export function choiceOutcome(logLiks: readonly number[], label: number): Outcome {
  const top = Math.max(...logLiks);
  const prediction = logLiks.indexOf(top);
  const z = logLiks.reduce((s, l) => s + Math.exp(l - top), 0);
  return { prediction, correct: prediction === label, probability: Math.exp(logLiks[label]! - top) / z };
}

export interface CounterfactualItemRecord {
  id: string;
  /** The twin's text as the model read it (fields joined by " || "). */
  swapped: string;
  prediction: number;
  predictionSwapped: number;
  correct: boolean;
  correctSwapped: boolean;
  probability: number;
  probabilitySwapped: number;
}

export interface CounterfactualResult {
  total: number;
  count: number;
  probabilityOf: 'yes' | 'gold';
  accuracy: number | null;
  accuracySwapped: number | null;
  accuracyGap: number | null;
  meanAbsProbabilityGap: number | null;
  maxAbsProbabilityGap: number | null;
  flipRate: number | null;
  items: CounterfactualItemRecord[];
}

const meanOf = (values: readonly number[]) => values.reduce((s, v) => s + v, 0) / values.length;

/** The figures over paired outcomes (only items the swap changed belong here). */
export function counterfactualReport(
  items: readonly CounterfactualItemRecord[],
  total: number,
  probabilityOf: CounterfactualResult['probabilityOf'],
): CounterfactualResult {
  if (items.length === 0) {
    return {
      total,
      count: 0,
      probabilityOf,
      accuracy: null,
      accuracySwapped: null,
      accuracyGap: null,
      meanAbsProbabilityGap: null,
      maxAbsProbabilityGap: null,
      flipRate: null,
      items: [],
    };
  }
  const accuracy = meanOf(items.map((i) => (i.correct ? 1 : 0)));
  const accuracySwapped = meanOf(items.map((i) => (i.correctSwapped ? 1 : 0)));
  const gaps = items.map((i) => Math.abs(i.probability - i.probabilitySwapped));
  return {
    total,
    count: items.length,
    probabilityOf,
    accuracy,
    accuracySwapped,
    accuracyGap: accuracy - accuracySwapped,
    meanAbsProbabilityGap: meanOf(gaps),
    maxAbsProbabilityGap: Math.max(...gaps),
    flipRate: meanOf(items.map((i) => (i.prediction !== i.predictionSwapped ? 1 : 0))),
    items: [...items],
  };
}

export interface CounterfactualTwin<T> {
  index: number;
  item: T;
  /** The twin's fields joined by " || ", for the per-item record. */
  text: string;
}

/** The swapped twin of each item whose text the swap changes; `fields` lists an item's texts in order. */
export function counterfactualTwins<T>(
  items: readonly T[],
  fields: (item: T) => string[],
  rebuild: (item: T, swapped: string[]) => T,
  sets?: readonly (readonly string[])[],
): CounterfactualTwin<T>[] {
  const twins: CounterfactualTwin<T>[] = [];
  items.forEach((item, index) => {
    const swaps = fields(item).map((f) => counterfactualSwap(f, sets));
    if (swaps.every((s) => s.swapped === 0)) return;
    const texts = swaps.map((s) => s.text);
    twins.push({ index, item: rebuild(item, texts), text: texts.join(' || ') });
  });
  return twins;
}

/**
 * Pairs each changed item's outcome with its twin's: `original[i]` is the outcome of items[i] and
 * `score` gives the twins' outcomes in order. The scorer is passed in so any task (and a stub in
 * tests) plugs in.
 */
export async function measureCounterfactual<T>(args: {
  ids: readonly string[];
  original: readonly Outcome[];
  twins: readonly CounterfactualTwin<T>[];
  score: (twins: T[]) => Promise<Outcome[]>;
  probabilityOf: CounterfactualResult['probabilityOf'];
}): Promise<CounterfactualResult> {
  const { ids, original, twins } = args;
  if (ids.length !== original.length) throw new WorkbenchError('internal', `Counterfactual fairness got ${original.length} outcomes for ${ids.length} items.`);
  const outcomes = twins.length === 0 ? [] : await args.score(twins.map((t) => t.item));
  if (outcomes.length !== twins.length)
    throw new WorkbenchError('internal', `Counterfactual scoring returned ${outcomes.length} outcomes for ${twins.length} twins.`);
  const records = twins.map((twin, k): CounterfactualItemRecord => {
    const a = original[twin.index]!;
    const b = outcomes[k]!;
    return {
      id: ids[twin.index]!,
      swapped: twin.text,
      prediction: a.prediction,
      predictionSwapped: b.prediction,
      correct: a.correct,
      correctSwapped: b.correct,
      probability: a.probability,
      probabilitySwapped: b.probability,
    };
  });
  return counterfactualReport(records, ids.length, args.probabilityOf);
}
