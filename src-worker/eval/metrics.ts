// Task-quality metrics as pure functions over predictions and references (EVALUATION.md,
// "Task quality"). Fractions are in [0, 1]; the UI formats them.
import { WorkbenchError } from '../../src-shared/errors.ts';

// --- HotpotQA (hotpot_evaluate_v1.py) -------------------------------------------------------

/** Python's str.isspace() set, which str.split() splits on; JS's \s differs (\x1c-\x1f, \x85, \ufeff). */
const PY_WHITESPACE = /[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;
/** string.punctuation: ASCII only, so "–" or "’" survive normalisation exactly as in the official script. */
const PY_PUNCTUATION = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');
/** re.sub(r'\b(a|an|the)\b', ' ', text): Python's \b is Unicode-aware, \w = letters, digits, underscore. */
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;

/** Python's str.split() with no argument: split on whitespace runs, drop empty ends. */
function pySplit(text: string): string[] {
  return text.split(PY_WHITESPACE).filter((t) => t !== '');
}

/** HotpotQA's (and SQuAD's) normalize_answer: lower, remove punctuation, remove articles, fix whitespace. */
export function normalizeAnswer(s: string): string {
  const lower = s.toLowerCase();
  let noPunc = '';
  for (const ch of lower) if (!PY_PUNCTUATION.has(ch)) noPunc += ch;
  return pySplit(noPunc.replace(ARTICLES, ' ')).join(' ');
}

export interface F1Result {
  f1: number;
  precision: number;
  recall: number;
}

const SPECIAL_ANSWERS = new Set(['yes', 'no', 'noanswer']);

/**
 * HotpotQA's f1_score: token F1 of the normalized strings, except that a yes / no / noanswer
 * prediction or gold scores 0 unless both are equal. Nothing in common (which includes an empty
 * prediction or an empty gold) is 0, as in the official script: unlike SQuAD 2.0 it gives no
 * credit for two empty answers.
 */
export function hotpotF1(prediction: string, gold: string): F1Result {
  const p = normalizeAnswer(prediction);
  const g = normalizeAnswer(gold);
  const zero = { f1: 0, precision: 0, recall: 0 };
  if ((SPECIAL_ANSWERS.has(p) || SPECIAL_ANSWERS.has(g)) && p !== g) return zero;
  const pTokens = pySplit(p);
  const gTokens = pySplit(g);
  const counts = new Map<string, number>();
  for (const t of gTokens) counts.set(t, (counts.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of pTokens) {
    const left = counts.get(t) ?? 0;
    if (left > 0) {
      same++;
      counts.set(t, left - 1);
    }
  }
  if (same === 0) return zero;
  const precision = same / pTokens.length;
  const recall = same / gTokens.length;
  return { f1: (2 * precision * recall) / (precision + recall), precision, recall };
}

/** HotpotQA's exact_match_score: equality after normalisation (two empty answers match). */
export function hotpotExactMatch(prediction: string, gold: string): boolean {
  return normalizeAnswer(prediction) === normalizeAnswer(gold);
}

export interface QaItem {
  prediction: string;
  gold: string;
  type?: string | null;
  level?: string | null;
}

export interface QaScores {
  count: number;
  em: number;
  f1: number;
  precision: number;
  recall: number;
}

export interface QaReport {
  overall: QaScores;
  /** By question type (bridge / comparison) and by level, for items that carry them. */
  byType: Record<string, QaScores>;
  byLevel: Record<string, QaScores>;
}

function qaScores(items: QaItem[]): QaScores {
  let em = 0;
  let f1 = 0;
  let precision = 0;
  let recall = 0;
  for (const item of items) {
    em += hotpotExactMatch(item.prediction, item.gold) ? 1 : 0;
    const r = hotpotF1(item.prediction, item.gold);
    f1 += r.f1;
    precision += r.precision;
    recall += r.recall;
  }
  const n = items.length;
  return { count: n, em: em / n, f1: f1 / n, precision: precision / n, recall: recall / n };
}

function groupBy<T>(items: T[], key: (item: T) => string | null | undefined): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    if (k === null || k === undefined) continue;
    (groups.get(k) ?? groups.set(k, []).get(k)!).push(item);
  }
  return groups;
}

function requireItems(n: number, what: string): void {
  if (n === 0) throw new WorkbenchError('invalid_input', `${what} needs at least one item; the evaluation slice is empty.`);
}

/** Averages as the official script does (means over questions), overall and per type and level. */
export function hotpotQaReport(items: QaItem[]): QaReport {
  requireItems(items.length, 'HotpotQA EM/F1');
  const split = (key: (i: QaItem) => string | null | undefined) => Object.fromEntries([...groupBy(items, key)].map(([k, group]) => [k, qaScores(group)]));
  return { overall: qaScores(items), byType: split((i) => i.type), byLevel: split((i) => i.level) };
}

// --- SemSim ---------------------------------------------------------------------------------

/** Cosine similarity; 0 when either vector is all zeros (no direction to compare). */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new WorkbenchError('invalid_input', `Cosine similarity of vectors of length ${a.length} and ${b.length}.`);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

/** Mean cosine similarity between prediction and gold embeddings, pair by pair. */
export function semSim(predictions: ArrayLike<number>[], golds: ArrayLike<number>[]): { count: number; mean: number; perItem: number[] } {
  if (predictions.length !== golds.length) {
    throw new WorkbenchError('invalid_input', `SemSim got ${predictions.length} predictions for ${golds.length} answers.`);
  }
  requireItems(predictions.length, 'SemSim');
  const perItem = predictions.map((p, i) => cosineSimilarity(p, golds[i]!));
  return { count: perItem.length, mean: perItem.reduce((s, v) => s + v, 0) / perItem.length, perItem };
}

// --- Binary classification (GLUE QQP) -------------------------------------------------------

export interface ConfusionMatrix {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

type Binary = 0 | 1 | boolean;

export function confusionMatrix(predictions: readonly Binary[], labels: readonly Binary[]): ConfusionMatrix {
  if (predictions.length !== labels.length) {
    throw new WorkbenchError('invalid_input', `Got ${predictions.length} predictions for ${labels.length} labels.`);
  }
  const m = { tp: 0, fp: 0, tn: 0, fn: 0 };
  predictions.forEach((p, i) => {
    const pred = p === true || p === 1;
    const gold = labels[i] === true || labels[i] === 1;
    if (pred && gold) m.tp++;
    else if (pred) m.fp++;
    else if (gold) m.fn++;
    else m.tn++;
  });
  return m;
}

/** Matthews correlation, (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)); 0 when a factor is 0. */
export function matthewsCorrelation({ tp, fp, tn, fn }: ConfusionMatrix): number {
  const denominator = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn);
  return denominator === 0 ? 0 : (tp * tn - fp * fn) / Math.sqrt(denominator);
}

export interface ClassificationScores extends ConfusionMatrix {
  count: number;
  accuracy: number;
  precision: number;
  recall: number;
  /** F1 of the positive class (duplicate); 0 when there is no true positive. */
  f1: number;
  mcc: number;
}

/** Accuracy, positive-class precision / recall / F1 and MCC; undefined ratios are 0 (sklearn's zero_division=0). */
export function classificationScores(predictions: readonly Binary[], labels: readonly Binary[]): ClassificationScores {
  const m = confusionMatrix(predictions, labels);
  const count = m.tp + m.fp + m.tn + m.fn;
  requireItems(count, 'Classification scores');
  const precision = m.tp + m.fp === 0 ? 0 : m.tp / (m.tp + m.fp);
  const recall = m.tp + m.fn === 0 ? 0 : m.tp / (m.tp + m.fn);
  // 2TP / (2TP + FP + FN) equals the harmonic mean of precision and recall, and is defined whenever either is.
  const f1 = m.tp === 0 ? 0 : (2 * m.tp) / (2 * m.tp + m.fp + m.fn);
  return { ...m, count, accuracy: (m.tp + m.tn) / count, precision, recall, f1, mcc: matthewsCorrelation(m) };
}

// --- Language modelling ---------------------------------------------------------------------

export interface TokenNll {
  /** Sum of the negative log-likelihoods (natural log) of the scored tokens of one text. */
  nllSum: number;
  /** How many tokens were scored. */
  tokens: number;
}

/**
 * Token-level loss (mean NLL per token, pooled over all texts so long texts weigh by their length)
 * and perplexity exp(loss).
 */
export function languageModelScores(items: readonly TokenNll[]): { tokens: number; loss: number; perplexity: number } {
  let nll = 0;
  let tokens = 0;
  for (const item of items) {
    if (!Number.isFinite(item.nllSum) || !Number.isInteger(item.tokens) || item.tokens < 0) {
      throw new WorkbenchError('invalid_input', `Bad token NLL ${JSON.stringify(item)}: nllSum must be finite and tokens a count.`);
    }
    nll += item.nllSum;
    tokens += item.tokens;
  }
  if (tokens === 0) throw new WorkbenchError('invalid_input', 'Loss needs at least one scored token; the evaluation slice is empty.');
  const loss = nll / tokens;
  return { tokens, loss, perplexity: Math.exp(loss) };
}

export interface ScoredText extends TokenNll {
  /** Whitespace-separated words of the scored text. */
  words: number;
  /** UTF-8 bytes of the scored text. */
  bytes: number;
}

/**
 * languageModelScores plus the tokenizer-independent figures of lm-evaluation-harness's wikitext task:
 * word perplexity exp(NLL / words), byte perplexity exp(NLL / bytes) and bits per byte NLL / (bytes ln 2),
 * each over the pooled sums.
 */
export function corpusScores(items: readonly ScoredText[]): {
  count: number;
  tokens: number;
  words: number;
  bytes: number;
  loss: number;
  perplexity: number;
  wordPerplexity: number;
  bytePerplexity: number;
  bitsPerByte: number;
} {
  const { tokens, loss, perplexity } = languageModelScores(items);
  const nll = items.reduce((sum, item) => sum + item.nllSum, 0);
  const words = items.reduce((sum, item) => sum + item.words, 0);
  const bytes = items.reduce((sum, item) => sum + item.bytes, 0);
  if (words < 1 || bytes < 1) throw new WorkbenchError('invalid_input', 'Word and byte perplexity need some text; every scored text is empty.');
  return {
    count: items.length,
    tokens,
    words,
    bytes,
    loss,
    perplexity,
    wordPerplexity: Math.exp(nll / words),
    bytePerplexity: Math.exp(nll / bytes),
    bitsPerByte: nll / bytes / Math.LN2,
  };
}

/** Words as the harness counts them for word perplexity: the pieces between runs of whitespace. */
export function wordCount(text: string): number {
  const trimmed = text.trim();
  return trimmed === '' ? 0 : trimmed.split(/\s+/).length;
}
