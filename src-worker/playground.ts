// The Playground's `generate` job: one prompt through the base model and, with an adapter, through the
// adapted model, each with the same sampling seed, so the two outputs differ only by the adapter.
// The model is loaded once; the adapter is read back as evaluations read it (eval/job.ts loadAdapter).
import { GenerateResultSchema, type GenerateResult, type Generation } from '../src-shared/models.ts';
import type { GenerateJob } from '../src-shared/worker-protocol.ts';
import { initBackend } from './backend.ts';
import { loadAdapter } from './eval/job.ts';
import { chatFormatter } from './formats/chat-template.ts';
import { loadCausalLM } from './formats/model-folder.ts';
import { loadTokenizer, type TextTokenizer } from './formats/tokenizer.ts';
import { generate } from './generate.ts';
import type { AdapterHooks, CausalLM } from './models/types.ts';

/** Prompt token ids: BOS first when the tokenizer adds one and the (templated) text does not already start with it. */
export function promptIds(tokenizer: TextTokenizer, text: string): number[] {
  const ids = tokenizer.encode(text);
  const bos = tokenizer.bosTokenId;
  return bos === null || bos === undefined || ids[0] === bos ? ids : [bos, ...ids];
}

async function generateOnce(model: CausalLM, tokenizer: TextTokenizer, ids: number[], job: GenerateJob, adapters: AdapterHooks | null): Promise<Generation> {
  const started = performance.now();
  const { tokens, stoppedBy } = await generate(model, ids, {
    ...job.sampling,
    adapters,
    stopTokenIds: [tokenizer.eosTokenId],
  });
  const seconds = (performance.now() - started) / 1000;
  // The stop token ends the text; it is counted but not shown.
  const shown = stoppedBy === 'stop_token' ? tokens.slice(0, -1) : tokens;
  return { text: tokenizer.decode(shown), tokens: tokens.length, stoppedBy, tokensPerSecond: seconds > 0 ? tokens.length / seconds : 0 };
}

export async function runGenerateJob(job: GenerateJob, log: (message: string) => void = () => {}): Promise<GenerateResult> {
  const started = Date.now();
  const backend = await initBackend(job.backend, log);
  const model = await loadCausalLM(job.modelDir);
  let adapter: Awaited<ReturnType<typeof loadAdapter>> | null = null;
  try {
    const tokenizer = await loadTokenizer(job.modelDir);
    if (job.adapterDir) adapter = await loadAdapter(model, job.adapterDir);
    // The chat template is asked for explicitly: a folder without one is an error, not a silent plain prompt.
    const renderedPrompt = job.useChatTemplate
      ? (await chatFormatter(job.modelDir, 'error'))([{ role: 'user', content: job.prompt }], { addGenerationPrompt: true })
      : job.prompt;
    let ids = promptIds(tokenizer, renderedPrompt);
    // Keep room for at least one new token; the start of a too-long prompt is what goes.
    const room = model.config.maxPositions - 1;
    if (ids.length > room) {
      log(`The prompt has ${ids.length} tokens; the model has ${model.config.maxPositions} positions, so only its last ${room} tokens are used.`);
      ids = ids.slice(-room);
    }
    // One untimed prefill and cached step first: the backend's first calls compile and allocate, and
    // counting that against the base output alone would make the adapter look faster than the base.
    await generate(model, ids, { maxNewTokens: 2 });
    const base = await generateOnce(model, tokenizer, ids, job, null);
    // Conditional adapters (SeLoRA) compute their weights from the prompt before generating, as training does.
    adapter?.adapter.prepare?.(model, [ids]);
    const adapted = adapter ? await generateOnce(model, tokenizer, ids, job, adapter.adapter) : null;
    return GenerateResultSchema.parse({ renderedPrompt, base, adapter: adapted, backend, durationMs: Date.now() - started });
  } finally {
    adapter?.adapter.dispose();
    model.dispose();
  }
}
