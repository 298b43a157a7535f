// Evaluation jobs and their results, as the worker returns them to the main process (which will
// store them with the run, the adapter, the dataset slice and the backend: EVALUATION.md).
import { z } from 'zod';
import { BackendChoiceSchema } from './config.ts';
import { BackendInfoSchema } from './runs.ts';

export const evalSuites = ['bias', 'qqp', 'hotpotqa', 'robustness', 'perplexity'] as const;
export const EvalSuiteSchema = z.enum(evalSuites);
export type EvalSuite = z.infer<typeof EvalSuiteSchema>;

/** The robustness evaluation's perturbations (src-worker/eval/perturb.ts implements each). */
export const perturbationFamilies = [
  'typo', // one of the four character typos below, per word
  'char-swap',
  'char-drop',
  'char-insert',
  'char-keyboard',
  'misspelling',
  'word-dropout',
  'word-swap',
  'synonym',
  'contraction',
  'expansion',
  'extra-space',
  'filler',
  'name-swap',
  'demographic-swap',
  'dialect', // SAE -> AAE word substitutions (resources/wordlists/dialect.json)
] as const;

export const EvalJobSchema = z
  .object({
    type: z.literal('eval'),
    /** Resolved absolute paths. */
    modelDir: z.string(),
    /** An adapter or checkpoint folder the workbench wrote; null evaluates the base model. */
    adapterDir: z.string().nullable(),
    suite: EvalSuiteSchema,
    /** Files (or folders: StereoSet, BBQ) per dataset; the suite says which it needs. */
    datasets: z.object({
      crowsPairs: z.string().optional(),
      stereoSet: z.string().optional(),
      bbq: z.string().optional(),
      qqp: z.string().optional(),
      hotpotqa: z.string().optional(),
      /** A text corpus (perplexity): plain text, documents split at `<|endoftext|>` lines or blank lines, or JSONL with "text". */
      text: z.string().optional(),
      oasst1: z.string().optional(),
    }),
    /** Items per dataset, spread evenly over the file; null = all. */
    limit: z.number().int().min(1).nullable().default(null),
    seed: z.number().int().min(0).default(0),
    backend: BackendChoiceSchema.default('auto'),
    batchSize: z.number().int().min(1).max(1024).default(8),
    /** HotpotQA: generated tokens per answer, and which paragraphs the prompt holds. */
    maxNewTokens: z.number().int().min(1).max(512).default(16),
    paragraphs: z.enum(['all', 'supporting', 'none']).default('supporting'),
    /** HotpotQA SemSim: a BERT-style encoder folder (resolved); absent: the base model's pooled hidden states. */
    encoderDir: z.string().min(1).optional(),
    /** Robustness: the task it perturbs, the families and the levels (fractions of words). */
    robustness: z
      .object({
        task: z.enum(['qqp', 'hotpotqa']),
        families: z.array(z.enum(perturbationFamilies)).min(1),
        levels: z.array(z.number().min(0).max(1)).min(1).default([0, 0.1, 0.2, 0.3, 0.4]),
      })
      .optional(),
  })
  .superRefine((job, ctx) => {
    const need = (key: keyof typeof job.datasets, why: string) => {
      if (!job.datasets[key]) ctx.addIssue({ code: 'custom', path: ['datasets', key], message: `${why} needs a ${key} dataset path` });
    };
    if (job.suite === 'bias' && !job.datasets.crowsPairs && !job.datasets.stereoSet && !job.datasets.bbq) {
      ctx.addIssue({ code: 'custom', path: ['datasets'], message: 'the bias suite needs at least one of crowsPairs, stereoSet, bbq' });
    }
    if (job.suite === 'qqp') need('qqp', 'the qqp suite');
    if (job.suite === 'hotpotqa') need('hotpotqa', 'the hotpotqa suite');
    if (job.suite === 'perplexity' && !job.datasets.text && !job.datasets.oasst1) {
      ctx.addIssue({ code: 'custom', path: ['datasets'], message: 'the perplexity suite needs a text corpus or an oasst1 file' });
    }
    if (job.suite === 'robustness') {
      if (!job.robustness) ctx.addIssue({ code: 'custom', path: ['robustness'], message: 'the robustness suite needs its task and perturbation families' });
      else need(job.robustness.task, 'the robustness suite');
    }
  });
export type EvalJob = z.infer<typeof EvalJobSchema>;
export type EvalJobInput = z.input<typeof EvalJobSchema>;

export const DatasetSliceSchema = z.object({
  dataset: z.string(),
  path: z.string(),
  limit: z.number().int().nullable(),
  /** Items evaluated, after the limit. */
  count: z.number().int(),
  /** sha256 of the file bytes (a folder: of each file's name and bytes, in name order). */
  sha256: z.string(),
});
export type DatasetSlice = z.infer<typeof DatasetSliceSchema>;

export const EvalAdapterInfoSchema = z.object({
  dir: z.string(),
  method: z.string(),
  runId: z.string(),
  step: z.number().int(),
  trainableParams: z.number().int(),
});

const num = z.number();
const nullableNum = z.number().nullable();

const CrowsScoresSchema = z.object({
  count: z.number().int(),
  stereoPercent: num,
  tiePercent: num,
  meanLogLikDiff: num,
  /** lm-evaluation-harness's likelihood_diff: mean |logLikMore - logLikLess| (absent in results stored before it existed). */
  meanAbsLogLikDiff: num.optional(),
  stereoDirectionPercent: nullableNum,
  antistereoDirectionPercent: nullableNum,
});
const StereoSetScoresSchema = z.object({ count: z.number().int(), lms: num, ss: num, icat: num });
const StereoSetReportSchema = z.object({
  overall: StereoSetScoresSchema,
  pooled: StereoSetScoresSchema,
  byBiasType: z.record(z.string(), StereoSetScoresSchema),
});
const BbqConditionSchema = z
  .object({
    count: z.number().int(),
    accuracy: num,
    biasScore: num,
    biasedAnswers: z.number().int(),
    nonUnknownAnswers: z.number().int(),
    withoutTarget: z.number().int(),
  })
  .nullable();
const BbqScoresSchema = z.object({ ambig: BbqConditionSchema, disambig: BbqConditionSchema });
const Option = z.union([z.literal(0), z.literal(1), z.literal(2)]);

/**
 * Counterfactual fairness: each input beside its demographic-term-swapped twin (every listed term
 * replaced by the next of its set), over the items the swap changed (`count` of `total`).
 * `probability` is P(yes) for QQP and P(gold option) for BBQ, normalised over the options.
 */
const CounterfactualSchema = z.object({
  total: z.number().int(),
  count: z.number().int(),
  probabilityOf: z.enum(['yes', 'gold']),
  accuracy: nullableNum,
  accuracySwapped: nullableNum,
  /** accuracy - accuracySwapped (signed). */
  accuracyGap: nullableNum,
  meanAbsProbabilityGap: nullableNum,
  maxAbsProbabilityGap: nullableNum,
  /** Fraction of changed items whose prediction differs on the twin. */
  flipRate: nullableNum,
  items: z.array(
    z.object({
      id: z.string(),
      swapped: z.string(),
      prediction: z.number().int(),
      predictionSwapped: z.number().int(),
      correct: z.boolean(),
      correctSwapped: z.boolean(),
      probability: num,
      probabilitySwapped: num,
    }),
  ),
});

export const BiasResultSchema = z.object({
  crowsPairs: z
    .object({
      overall: CrowsScoresSchema,
      byBiasType: z.record(z.string(), CrowsScoresSchema),
      biasScore: num,
      items: z.array(z.object({ id: z.number().int(), biasType: z.string(), direction: z.enum(['stereo', 'antistereo']), logLikMore: num, logLikLess: num })),
    })
    .nullable(),
  stereoSet: z
    .object({
      intrasentence: StereoSetReportSchema.nullable(),
      intersentence: StereoSetReportSchema.nullable(),
      items: z.array(
        z.object({
          id: z.string(),
          task: z.enum(['intrasentence', 'intersentence']),
          target: z.string(),
          biasType: z.string(),
          /** Mean log-likelihood per token of each sentence (the official scorer's ranking). */
          stereotype: num,
          antiStereotype: num,
          unrelated: num,
          /** Total log-likelihood and token count of [stereotype, anti-stereotype, unrelated] (absent in results stored before they existed). */
          totals: z.tuple([num, num, num]).optional(),
          tokens: z.tuple([z.number().int(), z.number().int(), z.number().int()]).optional(),
        }),
      ),
    })
    .nullable(),
  bbq: z
    .object({
      overall: BbqScoresSchema,
      byCategory: z.record(z.string(), BbqScoresSchema),
      items: z.array(
        z.object({
          id: z.string(),
          category: z.string(),
          contextCondition: z.enum(['ambig', 'disambig']),
          questionPolarity: z.enum(['neg', 'nonneg']),
          label: Option,
          prediction: Option,
          unknownIndex: Option,
          stereotypedIndex: Option.nullable(),
          scores: z.tuple([num, num, num]),
        }),
      ),
    })
    .nullable(),
  /** 1 - cos(base, adapted) of pooled final hidden states over the CrowS-Pairs sentences; null without an adapter. */
  representationShift: z.object({ count: z.number().int(), shift: num }).nullable(),
  /** On the BBQ items (null without BBQ). */
  counterfactual: CounterfactualSchema.nullable().optional(),
  /** The adapter's trainable parameters / the base model's, in % (null without an adapter). */
  parameterOverhead: z.object({ trainable: z.number().int(), base: z.number().int(), percent: num }).nullable().optional(),
});

const ClassificationSchema = z.object({
  tp: z.number().int(),
  fp: z.number().int(),
  tn: z.number().int(),
  fn: z.number().int(),
  count: z.number().int(),
  accuracy: num,
  precision: num,
  recall: num,
  f1: num,
  mcc: num,
});
export const QqpResultSchema = z.object({
  scores: ClassificationSchema,
  items: z.array(
    z.object({
      id: z.string(),
      label: z.union([z.literal(0), z.literal(1)]),
      prediction: z.union([z.literal(0), z.literal(1)]),
      logLikYes: num,
      logLikNo: num,
    }),
  ),
  counterfactual: CounterfactualSchema.nullable().optional(),
});

/** semsim: mean cosine of prediction and gold embeddings (absent in results from before SemSim). */
const QaScoresSchema = z.object({ count: z.number().int(), em: num, f1: num, precision: num, recall: num, semsim: num.optional() });
export const HotpotResultSchema = z.object({
  report: z.object({ overall: QaScoresSchema, byType: z.record(z.string(), QaScoresSchema), byLevel: z.record(z.string(), QaScoresSchema) }),
  items: z.array(
    z.object({ id: z.string(), type: z.string().nullable(), level: z.string().nullable(), gold: z.string(), prediction: z.string(), semsim: num.optional() }),
  ),
  /** Which encoder SemSim used: "base model ..." or the encoder folder. */
  semanticEncoder: z.string().optional(),
});

/**
 * Language modelling on one corpus, as lm-evaluation-harness scores wikitext (loglikelihood_rolling):
 * every scored token once, with as much context as the model's window holds. loss is the mean negative
 * log-likelihood per token (nats), perplexity exp(loss); the word and byte figures divide the same sum
 * by the words (whitespace-separated) and UTF-8 bytes of the scored text, so tokenizers compare.
 */
const LanguageModellingSchema = z.object({
  count: z.number().int(),
  tokens: z.number().int(),
  words: z.number().int(),
  bytes: z.number().int(),
  loss: num,
  perplexity: num,
  wordPerplexity: num,
  bytePerplexity: num,
  bitsPerByte: num,
  items: z.array(z.object({ id: z.string(), tokens: z.number().int(), logLikelihood: num, loss: num })),
});
export type LanguageModelling = z.infer<typeof LanguageModellingSchema>;
/** text: whole documents; oasst1: the last assistant reply given the conversation before it (what training learns). */
export const PerplexityResultSchema = z.object({ text: LanguageModellingSchema.nullable(), oasst1: LanguageModellingSchema.nullable() });

const Metrics = z.record(z.string(), num);
const Family = z.enum(perturbationFamilies);
export const RobustnessResultSchema = z.object({
  task: z.enum(['qqp', 'hotpotqa']),
  primaryMetric: z.string(),
  seed: z.number().int(),
  levels: z.array(num),
  families: z.array(Family),
  count: z.number().int(),
  original: z.object({ base: Metrics, adapter: Metrics.nullable() }),
  curves: z.array(z.object({ family: Family, level: num, base: Metrics, adapter: Metrics.nullable() })),
  worstCase: z.array(z.object({ level: num, base: z.object({ family: Family, value: num }), adapter: z.object({ family: Family, value: num }).nullable() })),
  changes: z.array(
    z.object({
      id: z.string(),
      family: Family,
      level: num,
      input: z.string(),
      base: z.object({ original: num, perturbed: num }),
      adapter: z.object({ original: num, perturbed: num }).nullable(),
    }),
  ),
});

export const EvalResultSchema = z.object({
  suite: EvalSuiteSchema,
  modelDir: z.string(),
  adapter: EvalAdapterInfoSchema.nullable(),
  backend: BackendInfoSchema,
  seed: z.number().int(),
  slices: z.array(DatasetSliceSchema),
  startedAt: z.string(),
  finishedAt: z.string(),
  durationMs: z.number(),
  bias: BiasResultSchema.optional(),
  qqp: QqpResultSchema.optional(),
  hotpotqa: HotpotResultSchema.optional(),
  robustness: RobustnessResultSchema.optional(),
  perplexity: PerplexityResultSchema.optional(),
  /** Things the user should know (rows a reader left out, unmatched BBQ targets). */
  notes: z.array(z.string()),
});
export type EvalResult = z.infer<typeof EvalResultSchema>;

export const evaluationStatuses = ['queued', 'running', 'completed', 'failed', 'stopped'] as const;
export const EvaluationStatusSchema = z.enum(evaluationStatuses);
export type EvaluationStatus = z.infer<typeof EvaluationStatusSchema>;

export const EvalDatasetsSchema = EvalJobSchema.shape.datasets;
export type EvalDatasets = z.infer<typeof EvalDatasetsSchema>;

/** What `evals.start` takes: paths are the caller's to choose (no bundled benchmark data). */
export const EvalStartRequestSchema = z.object({
  suite: EvalSuiteSchema,
  /** An adapter the workbench trained; omitted evaluates the base model alone. */
  adapterId: z.string().min(1).optional(),
  /** 'default' or a model folder; omitted: the adapter's base model, else 'default'. */
  model: z.string().min(1).optional(),
  datasets: EvalDatasetsSchema,
  limit: z.number().int().min(1).nullable().optional(),
  seed: z.number().int().min(0).optional(),
  backend: BackendChoiceSchema.optional(),
  robustness: EvalJobSchema.shape.robustness,
  /** SemSim's encoder folder (BERT-style); omitted: the base model embeds the answers. */
  encoderDir: z.string().min(1).optional(),
});
export type EvalStartRequest = z.infer<typeof EvalStartRequestSchema>;
export type EvalStartRequestInput = z.input<typeof EvalStartRequestSchema>;

export const EvalProgressSchema = z.object({ done: z.number().int().min(0), total: z.number().int().min(0) });

/** One stored evaluation. `summary` holds the headline figures, flat ("crowsPairs.overall.stereoPercent"). */
export const EvaluationSchema = z.object({
  id: z.string(),
  runId: z.string().nullable(),
  adapterId: z.string().nullable(),
  suite: EvalSuiteSchema,
  status: EvaluationStatusSchema,
  model: z.string(),
  backendChoice: BackendChoiceSchema,
  backend: BackendInfoSchema.nullable(),
  seed: z.number().int(),
  limit: z.number().int().nullable(),
  datasets: EvalDatasetsSchema,
  slices: z.array(DatasetSliceSchema).nullable(),
  summary: z.record(z.string(), z.number()).nullable(),
  /** <dataDir>/evals/<id>.json: the whole EvalResult with every item. */
  resultPath: z.string().nullable(),
  progress: EvalProgressSchema.nullable(),
  error: z.string().nullable(),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
});
export type Evaluation = z.infer<typeof EvaluationSchema>;
