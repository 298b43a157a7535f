// Prompt/completion -> token ids and a loss mask, so the loss falls on the completion only.
import type { InstructionExample } from './dataset.ts';

/** What tokenization needs from a tokenizer (formats/tokenizer.ts's TextTokenizer has more). */
export interface EncodingTokenizer {
  encode(text: string): number[];
  readonly eosTokenId: number;
  /** Prepended to every example when set, as the model's tokenizer does (Llama's <s>). */
  readonly bosTokenId?: number | null;
}

export interface TokenizedExample {
  inputIds: number[];
  /** 1 where the token is a target of the loss (completion and EOS), 0 on prompt tokens. */
  lossMask: number[];
  /** Number of prompt tokens kept after truncation, counting the BOS token when there is one. */
  promptLength: number;
  /** 1 when inputIds starts with the model's BOS token; absent means 0. */
  bosLength?: number;
  /** True when the prompt (and possibly the completion's end) was cut to fit maxSeqLen. */
  truncated: boolean;
}

/**
 * Prompt and completion are encoded separately and concatenated, so the boundary between them is
 * exact (encoding the joined string could merge the last prompt and first completion bytes into
 * one BPE token, which would be half prompt, half target). EOS ends every completion so the model
 * learns to stop. Too-long examples lose prompt tokens from the left first (the end of the prompt,
 * next to the answer, matters most), then completion tokens from the right. A BOS token, where the
 * model has one, stays first: the model never saw a sequence without it.
 */
export function tokenizeExample(tokenizer: EncodingTokenizer, example: InstructionExample, maxSeqLen: number): TokenizedExample {
  const bos = tokenizer.bosTokenId === null || tokenizer.bosTokenId === undefined ? [] : [tokenizer.bosTokenId];
  const prompt = example.prompt === '' ? [] : tokenizer.encode(example.prompt);
  let target = [...tokenizer.encode(example.completion), tokenizer.eosTokenId];
  let truncated = false;
  let keptPrompt = [...bos, ...prompt];
  if (keptPrompt.length + target.length > maxSeqLen) {
    truncated = true;
    const room = maxSeqLen - bos.length;
    const promptRoom = Math.max(0, room - target.length);
    keptPrompt = [...bos, ...(promptRoom === 0 ? [] : prompt.slice(prompt.length - promptRoom))];
    if (target.length > room) target = target.slice(0, room);
  }
  return {
    inputIds: [...keptPrompt, ...target],
    lossMask: [...keptPrompt.map(() => 0), ...target.map(() => 1)],
    promptLength: keptPrompt.length,
    bosLength: bos.length,
    truncated,
  };
}

/** Number of tokens the loss sees in an example: targets that have a preceding token to predict them. */
export function targetCount(example: TokenizedExample): number {
  let n = 0;
  for (let t = 1; t < example.lossMask.length; t++) n += example.lossMask[t]!;
  return n;
}
