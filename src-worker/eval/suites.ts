// Evaluation suites: run a model (with or without an adapter) over a dataset slice and turn its
// scores into the figures of EVALUATION.md through the pure metric functions of metrics.ts and
// bias-metrics.ts. Every suite also returns per-item records, so the UI can show which items moved.
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { BbqExample } from '../data/readers/bbq.ts';
import type { CrowsPair } from '../data/readers/crows-pairs.ts';
import type { HotpotQaExample } from '../data/readers/hotpotqa.ts';
import type { QqpPair } from '../data/readers/qqp.ts';
import type { Conversation } from '../data/readers/oasst1.ts';
import type { StereoSetExample } from '../data/readers/stereoset.ts';
import type { TextDocument } from '../data/readers/text-corpus.ts';
import { bbqCandidates, conversationTemplate, hotpotQaTemplate, qqpCandidates, type HotpotTemplateOptions } from '../data/templates.ts';
import type { TextTokenizer } from '../formats/tokenizer.ts';
import { generate } from '../generate.ts';
import type { AdapterModel } from '../methods/types.ts';
import type { CausalLM } from '../models/types.ts';
import { tf } from '../tf.ts';
import {
  bbqScores,
  crowsBiasScore,
  crowsPairsScores,
  representationShift,
  stereoSetScores,
  type BbqScoreItem,
  type CrowsScoreItem,
  type StereoSetScoreItem,
} from './bias-metrics.ts';
import { classificationScores, corpusScores, hotpotQaReport, wordCount } from './metrics.ts';
import {
  conditionalWindows,
  encodePair,
  pairLogLikelihood,
  prefixTokenOf,
  rollingWindows,
  scoreRequests,
  ScoringStopped,
  sequenceLogLikelihood,
  type ScoreOptions,
  type ScoreRequest,
} from './score.ts';
import { binaryOutcome, choiceOutcome, counterfactualTwins, measureCounterfactual, type CounterfactualResult, type Outcome } from './counterfactual.ts';
import { semSimScores, withSemSim, type SemanticEncoder } from './semsim.ts';
import { multipleChoiceLogLikelihood } from './shared-prefix.ts';

export interface SuiteContext {
  model: CausalLM;
  tokenizer: TextTokenizer;
  adapters: AdapterModel | null;
  /** See ScoreOptions.prefixTokenId. */
  prefixTokenId?: number;
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
  shouldStop?: () => boolean;
  /** Embeds HotpotQA predictions and gold answers for SemSim; absent or null leaves SemSim out. */
  semanticEncoder?: SemanticEncoder | null;
}

/** Items scored per progress report (and per check of shouldStop between reports). */
const CHUNK = 32;

/**
 * `limit` rows spread evenly over the file (rows floor(i * n / limit)), not its first rows: BBQ and
 * CrowS-Pairs files are sorted by category, and a head slice would test one category only.
 */
export function evenSlice<T>(rows: readonly T[], limit: number | null | undefined): T[] {
  if (limit === null || limit === undefined || limit >= rows.length) return [...rows];
  if (!Number.isInteger(limit) || limit < 1) throw new WorkbenchError('invalid_input', `The evaluation limit must be a whole number >= 1; got ${limit}.`);
  return Array.from({ length: limit }, (_, i) => rows[Math.floor((i * rows.length) / limit)]!);
}

/** Runs `work` over items in chunks, reporting progress against a shared counter. */
class Progress {
  done = 0;
  constructor(
    readonly total: number,
    private readonly ctx: SuiteContext,
  ) {}

  async chunks<T, R>(items: readonly T[], work: (chunk: T[]) => Promise<R[]>): Promise<R[]> {
    const out: R[] = [];
    for (let i = 0; i < items.length; i += CHUNK) {
      if (this.ctx.shouldStop?.()) throw new ScoringStopped();
      const chunk = items.slice(i, i + CHUNK);
      out.push(...(await work(chunk)));
      this.done += chunk.length;
      this.ctx.onProgress?.(this.done, this.total);
    }
    return out;
  }
}

function scoreOptions(ctx: SuiteContext): ScoreOptions {
  return { adapters: ctx.adapters, batchSize: ctx.batchSize, prefixTokenId: ctx.prefixTokenId, shouldStop: ctx.shouldStop };
}

// --- Bias suite -----------------------------------------------------------------------------

export interface CrowsItemRecord extends CrowsScoreItem {
  id: number;
}

export interface StereoSetItemRecord extends StereoSetScoreItem {
  id: string;
  task: StereoSetExample['task'];
  /** Total log-likelihood of [stereotype, anti-stereotype, unrelated]; the scores above are these per token. */
  totals: [number, number, number];
  tokens: [number, number, number];
}

export interface BbqItemRecord extends BbqScoreItem {
  id: string;
  /** Log-likelihood of each option as the answer. */
  scores: [number, number, number];
}

export interface BiasSuiteResult {
  crowsPairs: {
    overall: ReturnType<typeof crowsPairsScores>['overall'];
    byBiasType: ReturnType<typeof crowsPairsScores>['byBiasType'];
    /** Mean over categories of |stereo% - 50| / 50 (lower is better). */
    biasScore: number;
    items: CrowsItemRecord[];
  } | null;
  stereoSet: {
    intrasentence: ReturnType<typeof stereoSetScores> | null;
    intersentence: ReturnType<typeof stereoSetScores> | null;
    items: StereoSetItemRecord[];
  } | null;
  bbq: (ReturnType<typeof bbqScores> & { items: BbqItemRecord[] }) | null;
  /** BBQ items against their demographic-term-swapped twins; null without BBQ. */
  counterfactual: CounterfactualResult | null;
}

export interface BiasDatasets {
  crowsPairs?: readonly CrowsPair[];
  stereoSet?: readonly StereoSetExample[];
  bbq?: readonly BbqExample[];
}

export async function runBiasSuite(ctx: SuiteContext & { datasets: BiasDatasets; limit?: number | null }): Promise<BiasSuiteResult> {
  const crows = ctx.datasets.crowsPairs ? evenSlice(ctx.datasets.crowsPairs, ctx.limit) : null;
  const stereo = ctx.datasets.stereoSet ? evenSlice(ctx.datasets.stereoSet, ctx.limit) : null;
  const bbq = ctx.datasets.bbq ? evenSlice(ctx.datasets.bbq, ctx.limit) : null;
  if (!crows && !stereo && !bbq) throw new WorkbenchError('invalid_input', 'The bias suite needs at least one of CrowS-Pairs, StereoSet or BBQ.');
  // Context, question and answers are swapped alike, so the gold index still names the right answer.
  // The twins are known before scoring starts, so progress counts them from the first report.
  const twins = bbq
    ? counterfactualTwins(
        bbq,
        (e) => [e.context, e.question, ...e.answers],
        (e, [context, question, a0, a1, a2]) => ({ ...e, context: context!, question: question!, answers: [a0!, a1!, a2!] as [string, string, string] }),
      )
    : [];
  const progress = new Progress((crows?.length ?? 0) + (stereo?.length ?? 0) + (bbq?.length ?? 0) + twins.length, ctx);
  const opts = scoreOptions(ctx);
  const { model, tokenizer } = ctx;

  let crowsResult: BiasSuiteResult['crowsPairs'] = null;
  if (crows) {
    const items = await progress.chunks(crows, async (chunk) => {
      const s = await sequenceLogLikelihood(
        model,
        tokenizer,
        chunk.flatMap((p) => [p.sentMore, p.sentLess]),
        opts,
      );
      return chunk.map(
        (p, i): CrowsItemRecord => ({
          id: p.index,
          biasType: p.biasType,
          direction: p.direction,
          logLikMore: s[2 * i]!.logLikelihood,
          logLikLess: s[2 * i + 1]!.logLikelihood,
        }),
      );
    });
    const scores = crowsPairsScores(items);
    crowsResult = { ...scores, biasScore: crowsBiasScore(scores.byBiasType), items };
  }

  let stereoResult: BiasSuiteResult['stereoSet'] = null;
  if (stereo) {
    const items = await progress.chunks(stereo, async (chunk) => {
      const intra = chunk.filter((e) => e.task === 'intrasentence');
      const inter = chunk.filter((e) => e.task === 'intersentence');
      const labels = ['stereotype', 'anti-stereotype', 'unrelated'] as const;
      // Intrasentence: the whole filled-in sentence; intersentence: the next sentence given the context.
      const intraScores = await sequenceLogLikelihood(
        model,
        tokenizer,
        intra.flatMap((e) => labels.map((l) => e.sentences[l].sentence)),
        opts,
      );
      const interScores = await pairLogLikelihood(
        model,
        tokenizer,
        inter.flatMap((e) => labels.map((l) => ({ context: e.context, continuation: ` ${e.sentences[l].sentence}` }))),
        opts,
      );
      // Ranked by mean log-likelihood per token, as the official scorer; the totals are kept beside them.
      const record = (e: StereoSetExample, s: { logLikelihood: number; tokens: number }[], i: number): StereoSetItemRecord => {
        const [st, anti, unrel] = [s[3 * i]!, s[3 * i + 1]!, s[3 * i + 2]!];
        return {
          id: e.id,
          task: e.task,
          target: e.target,
          biasType: e.biasType,
          stereotype: st.logLikelihood / st.tokens,
          antiStereotype: anti.logLikelihood / anti.tokens,
          unrelated: unrel.logLikelihood / unrel.tokens,
          totals: [st.logLikelihood, anti.logLikelihood, unrel.logLikelihood],
          tokens: [st.tokens, anti.tokens, unrel.tokens],
        };
      };
      const byId = new Map([
        ...intra.map((e, i) => [e.id, record(e, intraScores, i)] as const),
        ...inter.map((e, i) => [e.id, record(e, interScores, i)] as const),
      ]);
      return chunk.map((e) => byId.get(e.id)!);
    });
    const of = (task: StereoSetExample['task']) => {
      const subset = items.filter((i) => i.task === task);
      return subset.length === 0 ? null : stereoSetScores(subset);
    };
    stereoResult = { intrasentence: of('intrasentence'), intersentence: of('intersentence'), items };
  }

  // The three options share the prompt: it runs once per item (shared-prefix.ts).
  const scoreBbq = (examples: readonly BbqExample[]) =>
    multipleChoiceLogLikelihood(
      model,
      tokenizer,
      examples.map((e) => {
        const candidates = bbqCandidates(e);
        return { context: candidates[0]!.prompt, continuations: candidates.map((c) => c.completion) };
      }),
      opts,
    );
  let bbqResult: BiasSuiteResult['bbq'] = null;
  let counterfactual: CounterfactualResult | null = null;
  if (bbq) {
    const items = await progress.chunks(bbq, async (chunk) => {
      const s = await scoreBbq(chunk);
      return chunk.map((e, i): BbqItemRecord => {
        const scores = s[i]!.map((o) => o.logLikelihood) as [number, number, number];
        // The first of equal scores wins, as argmax does in the harness.
        const prediction = scores.indexOf(Math.max(...scores)) as 0 | 1 | 2;
        return {
          id: `${e.category}/${e.exampleId}`,
          category: e.category,
          contextCondition: e.contextCondition,
          questionPolarity: e.questionPolarity,
          label: e.label,
          prediction,
          unknownIndex: e.unknownIndex,
          stereotypedIndex: e.stereotypedIndex,
          scores,
        };
      });
    });
    bbqResult = { ...bbqScores(items), items };
    counterfactual = await measureCounterfactual({
      ids: items.map((i) => i.id),
      original: items.map((i) => choiceOutcome(i.scores, i.label)),
      twins,
      score: (examples) =>
        progress.chunks(examples, async (chunk) =>
          (await scoreBbq(chunk)).map((options, k) =>
            choiceOutcome(
              options.map((o) => o.logLikelihood),
              chunk[k]!.label,
            ),
          ),
        ),
      probabilityOf: 'gold',
    });
  }
  return { crowsPairs: crowsResult, stereoSet: stereoResult, bbq: bbqResult, counterfactual };
}

// --- Representation shift --------------------------------------------------------------------

/** Mean of the final hidden states over a text's tokens: the pooled representation f(x). */
export async function pooledRepresentations(ctx: SuiteContext, texts: readonly string[], adapters: AdapterModel | null): Promise<Float32Array[]> {
  const { model, tokenizer } = ctx;
  const out: Float32Array[] = [];
  for (const text of texts) {
    if (ctx.shouldStop?.()) throw new ScoringStopped();
    const ids = tokenizer.encode(text).slice(0, model.config.maxPositions);
    if (ids.length === 0) throw new WorkbenchError('invalid_input', 'Representation shift got an empty text.');
    adapters?.prepare?.(model, [ids]);
    const pooled = tf.tidy(() => {
      const input = tf.tensor2d([ids], [1, ids.length], 'int32');
      return tf.mean(model.hiddenStates(input, { adapters, training: false }), 1);
    });
    out.push(Float32Array.from((await pooled.data()) as Float32Array));
    pooled.dispose();
  }
  return out;
}

/** EVALUATION.md's Representation Shift: mean of 1 - cos(f_base(x), f_adapted(x)); lower is better. */
export async function measureRepresentationShift(
  ctx: SuiteContext & { adapters: AdapterModel },
  texts: readonly string[],
): Promise<{ count: number; shift: number }> {
  const base = await pooledRepresentations(ctx, texts, null);
  const adapted = await pooledRepresentations(ctx, texts, ctx.adapters);
  return { count: texts.length, shift: representationShift(base, adapted) };
}

// --- Task suites -----------------------------------------------------------------------------

export interface QqpItemRecord {
  id: string;
  label: 0 | 1;
  prediction: 0 | 1;
  logLikYes: number;
  logLikNo: number;
}

export interface QqpSuiteResult {
  scores: ReturnType<typeof classificationScores>;
  items: QqpItemRecord[];
  /** Pairs against their demographic-term-swapped twins, when asked for. */
  counterfactual?: CounterfactualResult;
}

/**
 * QQP as lm-evaluation-harness's glue qqp task: the likelier of " yes" / " no" after the prompt.
 * With `counterfactual`, pairs holding demographic terms are scored again with the terms swapped.
 */
export async function runQqpSuite(
  ctx: SuiteContext & { pairs: readonly QqpPair[]; limit?: number | null; progress?: Progress; counterfactual?: boolean },
): Promise<QqpSuiteResult> {
  const labelled = evenSlice(
    ctx.pairs.filter((p) => p.label !== null),
    ctx.limit,
  );
  if (labelled.length === 0) throw new WorkbenchError('invalid_input', 'The QQP file has no labelled pairs to evaluate; pick a train or dev split.');
  const progress = ctx.progress ?? new Progress(labelled.length, ctx);
  const opts = scoreOptions(ctx);
  // Both label words follow the same prompt: it runs once per pair (shared-prefix.ts).
  const score = async (pairs: readonly QqpPair[]): Promise<{ yes: number; no: number }[]> => {
    const s = await multipleChoiceLogLikelihood(
      ctx.model,
      ctx.tokenizer,
      pairs.map((p) => {
        const candidates = qqpCandidates(p);
        return { context: candidates[0]!.prompt, continuations: candidates.map((c) => c.completion) };
      }),
      opts,
    );
    // qqpCandidates lists label words by label: index 0 "no", index 1 "yes".
    return s.map(([no, yes]) => ({ no: no!.logLikelihood, yes: yes!.logLikelihood }));
  };
  const items = await progress.chunks(labelled, async (chunk) =>
    (await score(chunk)).map(
      ({ yes, no }, i): QqpItemRecord => ({ id: chunk[i]!.id, label: chunk[i]!.label!, prediction: yes > no ? 1 : 0, logLikYes: yes, logLikNo: no }),
    ),
  );
  const result: QqpSuiteResult = {
    scores: classificationScores(
      items.map((i) => i.prediction),
      items.map((i) => i.label),
    ),
    items,
  };
  if (ctx.counterfactual) {
    result.counterfactual = await measureCounterfactual({
      ids: items.map((i) => i.id),
      original: items.map((i): Outcome => binaryOutcome(i.logLikYes, i.logLikNo, i.label)),
      twins: counterfactualTwins(
        labelled,
        (p) => [p.question1, p.question2],
        (p, [question1, question2]) => ({ ...p, question1: question1!, question2: question2! }),
      ),
      score: async (pairs) => (await score(pairs)).map(({ yes, no }, k) => binaryOutcome(yes, no, pairs[k]!.label!)),
      probabilityOf: 'yes',
    });
  }
  return result;
}

export interface HotpotItemRecord {
  id: string;
  type: string | null;
  level: string | null;
  gold: string;
  prediction: string;
  /** Cosine similarity of prediction and gold embeddings, when a semantic encoder was given. */
  semsim?: number;
}

type QaScoresWithSemSim = ReturnType<typeof hotpotQaReport>['overall'] & { semsim?: number };

export interface HotpotSuiteResult {
  report: { overall: QaScoresWithSemSim; byType: Record<string, QaScoresWithSemSim>; byLevel: Record<string, QaScoresWithSemSim> };
  items: HotpotItemRecord[];
}

export interface HotpotOptions {
  maxNewTokens?: number;
  paragraphs?: HotpotTemplateOptions['paragraphs'];
}

/** The answer is the generated text up to the first line break (the template puts one answer a line). */
export function answerFromGeneration(text: string): string {
  return text.split('\n', 1)[0]!.trim();
}

const lineBreakTokens = new WeakMap<TextTokenizer, number[]>();

/** Ids whose text holds a line break: generation stops on them, as the answer ends there anyway. */
function lineBreakTokenIds(tokenizer: TextTokenizer): number[] {
  let ids = lineBreakTokens.get(tokenizer);
  if (!ids) {
    ids = [];
    for (let id = 0; id < tokenizer.vocabSize; id++) if (tokenizer.decode([id]).includes('\n')) ids.push(id);
    lineBreakTokens.set(tokenizer, ids);
  }
  return ids;
}

/** HotpotQA: greedy answers, EM / F1 (and SemSim with an encoder) overall and by type and level. */
export async function runHotpotSuite(
  ctx: SuiteContext & { examples: readonly HotpotQaExample[]; limit?: number | null; options?: HotpotOptions; progress?: Progress },
): Promise<HotpotSuiteResult> {
  const examples = evenSlice(ctx.examples, ctx.limit);
  if (examples.length === 0) throw new WorkbenchError('invalid_input', 'The HotpotQA slice is empty.');
  const maxNewTokens = ctx.options?.maxNewTokens ?? 16;
  const { model, tokenizer } = ctx;
  const room = model.config.maxPositions - maxNewTokens;
  if (room < 8)
    throw new WorkbenchError(
      'invalid_input',
      `maxNewTokens ${maxNewTokens} leaves no room for a question in the model's ${model.config.maxPositions} positions.`,
    );
  const virtualTokens = ctx.adapters?.inputEmbeddingPrefix?.()?.shape[0] ?? 0;
  if (room - virtualTokens < 8)
    throw new WorkbenchError(
      'invalid_input',
      `maxNewTokens ${maxNewTokens} and ${virtualTokens} virtual tokens leave no room for a question in the model's ${model.config.maxPositions} positions.`,
    );
  const progress = ctx.progress ?? new Progress(examples.length, ctx);
  const items = await progress.chunks(examples, async (chunk) => {
    const out: HotpotItemRecord[] = [];
    for (const example of chunk) {
      if (ctx.shouldStop?.()) throw new ScoringStopped();
      const { prompt } = hotpotQaTemplate(example, { paragraphs: ctx.options?.paragraphs ?? 'supporting' });
      // Left truncation keeps the question and the "Answer:" cue when the paragraphs do not fit; prompt
      // tuning's virtual tokens take positions too.
      const ids = tokenizer.encode(prompt).slice(-(room - virtualTokens));
      ctx.adapters?.prepare?.(model, [ids]);
      const stopTokenIds = [tokenizer.eosTokenId, ...lineBreakTokenIds(tokenizer)];
      const result = await generate(model, ids, { maxNewTokens, adapters: ctx.adapters, stopTokenIds });
      const tokens = result.tokens.filter((t) => t !== tokenizer.eosTokenId);
      out.push({ id: example.id, type: example.type, level: example.level, gold: example.answer, prediction: answerFromGeneration(tokenizer.decode(tokens)) });
    }
    return out;
  });
  const report = hotpotQaReport(items);
  if (!ctx.semanticEncoder) return { report, items };
  const similarities = await semSimScores(ctx.semanticEncoder, items);
  const scored = items.map((item, i) => ({ ...item, semsim: similarities[i]! }));
  return { report: withSemSim(report, scored), items: scored };
}

// --- Language modelling ---------------------------------------------------------------------

/** What is scored of one item: `text` given `context` ('' for a whole document, scored from the prefix token). */
export interface ScoredSpan {
  id: string;
  context: string;
  text: string;
}

export interface LanguageModellingResult extends ReturnType<typeof corpusScores> {
  items: { id: string; tokens: number; logLikelihood: number; loss: number }[];
}

export interface PerplexitySuiteResult {
  text: LanguageModellingResult | null;
  oasst1: LanguageModellingResult | null;
}

/**
 * Whole documents from the prefix token (longer ones than the window go in rolling windows, loglikelihood_rolling);
 * a document with a context (a prompt/completion line) scores its text given the context.
 */
export const documentSpans = (documents: readonly TextDocument[]): ScoredSpan[] => documents.map((d) => ({ id: d.id, context: d.context ?? '', text: d.text }));

/** The last assistant reply given the conversation before it, in the template training uses. */
export const replySpans = (conversations: readonly Conversation[]): ScoredSpan[] =>
  conversations.map((c) => {
    const { prompt, completion } = conversationTemplate(c);
    return { id: `${c.treeId}@${c.line}`, context: prompt, text: completion };
  });

async function scoreSpans(ctx: SuiteContext, spans: readonly ScoredSpan[], progress: Progress): Promise<LanguageModellingResult> {
  const { model, tokenizer } = ctx;
  const prefix = ctx.prefixTokenId ?? prefixTokenOf(tokenizer);
  const maxPositions = model.config.maxPositions;
  const items = await progress.chunks(spans, async (chunk) => {
    const requests: ScoreRequest[] = [];
    const owner: number[] = [];
    chunk.forEach((span, i) => {
      const pair =
        span.context === '' ? { context: [prefix], continuation: tokenizer.encode(span.text) } : encodePair(tokenizer, span.context, span.text, prefix);
      if (pair.continuation.length === 0) throw new WorkbenchError('invalid_input', `Item ${span.id} has no text to score.`);
      const windows =
        span.context === '' ? rollingWindows(pair.continuation, prefix, maxPositions) : conditionalWindows(pair.context, pair.continuation, maxPositions);
      for (const w of windows) {
        requests.push(w);
        owner.push(i);
      }
    });
    const scores = await scoreRequests(model, requests, scoreOptions(ctx));
    const sums = chunk.map(() => ({ logLikelihood: 0, tokens: 0 }));
    scores.forEach((score, r) => {
      sums[owner[r]!]!.logLikelihood += score.logLikelihood;
      sums[owner[r]!]!.tokens += score.tokens;
    });
    return sums.map((sum, i) => ({ id: chunk[i]!.id, ...sum, loss: -sum.logLikelihood / sum.tokens, text: chunk[i]!.text }));
  });
  const scores = corpusScores(
    items.map((item) => ({ nllSum: -item.logLikelihood, tokens: item.tokens, words: wordCount(item.text), bytes: Buffer.byteLength(item.text, 'utf8') })),
  );
  return { ...scores, items: items.map(({ text: _text, ...item }) => item) };
}

/** Loss and perplexity (per token, word and byte) of a text corpus and/or OASST1 replies. */
export async function runPerplexitySuite(
  ctx: SuiteContext & { documents?: readonly TextDocument[]; conversations?: readonly Conversation[]; limit?: number | null },
): Promise<PerplexitySuiteResult> {
  const text = ctx.documents ? documentSpans(evenSlice(ctx.documents, ctx.limit)) : null;
  const oasst1 = ctx.conversations ? replySpans(evenSlice(ctx.conversations, ctx.limit)) : null;
  if (!text && !oasst1) throw new WorkbenchError('invalid_input', 'The perplexity suite needs a text corpus or OASST1 conversations.');
  const progress = new Progress((text?.length ?? 0) + (oasst1?.length ?? 0), ctx);
  return {
    text: text && (await scoreSpans(ctx, text, progress)),
    oasst1: oasst1 && (await scoreSpans(ctx, oasst1, progress)),
  };
}

export { Progress };
