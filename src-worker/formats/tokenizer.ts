// Tokenizers from a Hugging Face model folder (tokenizer.json + tokenizer_config.json), run by
// @huggingface/tokenizers, a pure-JS port of the Rust `tokenizers` crate.
import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { WorkbenchError } from '../../src-shared/errors.ts';

export interface TextTokenizer {
  /** Token ids without special tokens: causal LMs like GPT-2 add none, the data pipeline appends EOS itself. */
  encode(text: string): number[];
  /** The exact text of `ids` (no clean-up of spaces before punctuation, so encode/decode round-trips). */
  decode(ids: number[]): string;
  eosTokenId: number;
  padTokenId: number;
  /**
   * The token a sequence starts with when the model's own tokenizer would add one (Llama's <s>,
   * Llama 3's <|begin_of_text|>); null for models trained without it (GPT-2, Qwen2).
   */
  bosTokenId?: number | null;
  /**
   * The bos_token tokenizer_config.json names (config.json's bos_token_id where it names none), whether
   * or not encoding adds it: Hugging Face's tokenizer.bos_token_id, which lm-evaluation-harness
   * conditions a text's first token on (GPT-2's <|endoftext|>, Llama's <s>); null when there is none.
   */
  namedBosTokenId?: number | null;
  vocabSize: number;
}

/** What loadTokenizer returns: a TextTokenizer plus what encoders (BERT) need. */
export interface HFTokenizer extends TextTokenizer {
  /**
   * Token ids with the special tokens of tokenizer.json's post-processor (BERT: [CLS] text [SEP]).
   * Encoders need them; decoders keep using encode().
   */
  encodeWithSpecialTokens(text: string): number[];
  /** Ids of the added tokens marked special ([CLS], [SEP], [PAD], <s>, ...). */
  specialTokenIds: ReadonlySet<number>;
  /** The masked-LM mask token ([MASK]) from tokenizer_config.json, or null (decoders have none). */
  maskTokenId: number | null;
}

async function readJson(file: string, required: boolean): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf-8');
  } catch (error) {
    if (!required && (error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new WorkbenchError(
      'model_invalid',
      `Cannot read ${file}: ${(error as Error).message}. A model folder needs tokenizer.json (save the tokenizer with save_pretrained from a "fast" tokenizer).`,
      { file },
    );
  }
  try {
    const json: unknown = JSON.parse(text);
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('not a JSON object');
    return json as Record<string, unknown>;
  } catch (error) {
    throw new WorkbenchError('format_invalid', `${file} is not valid JSON: ${(error as Error).message}`, { file });
  }
}

/** tokenizer_config.json writes special tokens as a string or as a serialized AddedToken {content, …}. */
function tokenContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return null;
}

function firstId(value: unknown): number | null {
  const id = Array.isArray(value) ? value[0] : value;
  return typeof id === 'number' && Number.isInteger(id) && id >= 0 ? id : null;
}

/**
 * tokenizer_config.json's add_bos_token decides where it is set (Llama 2's slow and fast tokenizers);
 * otherwise the tokenizer.json post-processor does: a special token it puts in front of the text
 * (Llama 3's TemplateProcessing) is the BOS the model was trained with.
 */
function bosTokenIdOf(tokenizer: Tokenizer, tokenizerConfig: Record<string, unknown>, configuredBos: number | null): number | null {
  if (tokenizerConfig.add_bos_token === false) return null;
  if (tokenizerConfig.add_bos_token === true) return configuredBos;
  const plain = tokenizer.encode('a', { add_special_tokens: false }).ids;
  const withSpecial = tokenizer.encode('a', { add_special_tokens: true }).ids;
  const added = withSpecial.length === plain.length + 1 && withSpecial.slice(1).every((id, i) => id === plain[i]);
  return added ? withSpecial[0]! : null;
}

/** The files a folder's tokenizer is read from: tokenizer.json, else GPT-2's vocab.json + merges.txt; null when neither is there. */
export async function tokenizerFilesIn(dir: string): Promise<string[] | null> {
  const isFile = (name: string) =>
    fs.promises.stat(path.join(dir, name)).then(
      (s) => s.isFile(),
      () => false,
    );
  if (await isFile('tokenizer.json')) return ['tokenizer.json'];
  if ((await isFile('vocab.json')) && (await isFile('merges.txt'))) return ['vocab.json', 'merges.txt'];
  return null;
}

/**
 * The tokenizer.json that GPT2TokenizerFast converts vocab.json + merges.txt into (transformers'
 * convert_slow_tokenizer GPT2Converter): byte-level BPE without unknown token, the ByteLevel
 * pre-tokenizer (GPT-2's split regex, add_prefix_space from tokenizer_config.json), decoder and
 * post-processor, and the special tokens tokenizer_config.json, special_tokens_map.json or
 * added_tokens.json name as added tokens, so text holding them keeps them whole.
 */
async function tokenizerJsonFromBpeFiles(dir: string, tokenizerConfig: Record<string, unknown>): Promise<Record<string, unknown>> {
  const vocabFile = path.join(dir, 'vocab.json');
  const vocab = (await readJson(vocabFile, true))!;
  const ids = Object.values(vocab);
  if (ids.length === 0 || !ids.every((id) => Number.isInteger(id) && (id as number) >= 0)) {
    throw new WorkbenchError('format_invalid', `${vocabFile} must map each token to a whole-number id.`, { file: vocabFile });
  }
  const mergesFile = path.join(dir, 'merges.txt');
  const merges = (await fs.promises.readFile(mergesFile, 'utf-8'))
    .split('\n')
    .map((line) => line.replace(/\r$/, ''))
    // The first line of GPT-2's file is "#version: 0.2"; blank lines carry nothing.
    .filter((line, i) => line.trim() !== '' && !(i === 0 && line.startsWith('#version')));
  const bad = merges.findIndex((m) => m.split(' ').length !== 2);
  if (bad >= 0)
    throw new WorkbenchError('format_invalid', `${mergesFile}: merge "${merges[bad]}" is not two tokens separated by one space.`, { file: mergesFile });

  const specialMap = (await readJson(path.join(dir, 'special_tokens_map.json'), false)) ?? {};
  const addedFile = (await readJson(path.join(dir, 'added_tokens.json'), false)) ?? {};
  const added = new Map<string, number>();
  for (const source of [specialMap, tokenizerConfig]) {
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token']) {
      const content = tokenContent(source[key]);
      if (content !== null && typeof vocab[content] === 'number') added.set(content, vocab[content] as number);
    }
  }
  for (const [content, id] of Object.entries(addedFile)) if (typeof id === 'number') added.set(content, id);
  const addPrefixSpace = tokenizerConfig.add_prefix_space === true;
  const byteLevel = (trimOffsets: boolean) => ({ type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: trimOffsets, use_regex: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [...added].map(([content, id]) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true })),
    normalizer: null,
    pre_tokenizer: byteLevel(true),
    post_processor: byteLevel(false),
    decoder: byteLevel(true),
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

export async function loadTokenizer(modelDir: string): Promise<HFTokenizer> {
  const tokenizerConfig = (await readJson(path.join(modelDir, 'tokenizer_config.json'), false)) ?? {};
  const files = await tokenizerFilesIn(modelDir);
  const tokenizerFile = path.join(modelDir, files?.[0] === 'vocab.json' ? 'vocab.json' : 'tokenizer.json');
  const tokenizerJson = files?.[0] === 'vocab.json' ? await tokenizerJsonFromBpeFiles(modelDir, tokenizerConfig) : (await readJson(tokenizerFile, true))!;
  const modelConfig = (await readJson(path.join(modelDir, 'config.json'), false)) ?? {};

  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
  } catch (error) {
    throw new WorkbenchError('format_invalid', `${tokenizerFile} could not be loaded: ${(error as Error).message}`, { file: tokenizerFile });
  }
  const vocab = tokenizer.get_vocab(true);
  const vocabSize = Math.max(...vocab.values()) + 1;

  const idOf = (key: string): number | null => {
    const content = tokenContent(tokenizerConfig[key]);
    const fromTokenizer = content === null ? undefined : tokenizer.token_to_id(content);
    return fromTokenizer ?? firstId(modelConfig[`${key}_id`]);
  };
  // BERT-style tokenizers have no eos_token; their sequences end with sep_token ([SEP]).
  const eosTokenId = idOf('eos_token') ?? idOf('sep_token');
  if (eosTokenId === null) {
    throw new WorkbenchError(
      'model_invalid',
      `${modelDir} names no end-of-sequence token: set "eos_token" (or "sep_token" for an encoder) in tokenizer_config.json or "eos_token_id" in config.json.`,
      { file: path.join(modelDir, 'tokenizer_config.json') },
    );
  }
  // GPT-2 has no pad token; padded positions are masked out of the loss, so reusing EOS is harmless.
  const padTokenId = idOf('pad_token') ?? eosTokenId;

  const specialTokenIds = new Set<number>();
  for (const token of Array.isArray(tokenizerJson.added_tokens) ? (tokenizerJson.added_tokens as { id?: unknown; special?: unknown }[]) : []) {
    if (token.special === true && typeof token.id === 'number') specialTokenIds.add(token.id);
  }

  return {
    eosTokenId,
    padTokenId,
    bosTokenId: bosTokenIdOf(tokenizer, tokenizerConfig, idOf('bos_token')),
    namedBosTokenId: idOf('bos_token'),
    vocabSize,
    specialTokenIds,
    maskTokenId: idOf('mask_token'),
    encode: (text) => (text.length === 0 ? [] : tokenizer.encode(text, { add_special_tokens: false }).ids),
    encodeWithSpecialTokens: (text) => tokenizer.encode(text, { add_special_tokens: true }).ids,
    decode: (ids) => {
      // A model's embedding may be padded past the tokenizer's vocabulary; such ids have no text.
      const known = ids.filter((id) => Number.isInteger(id) && id >= 0 && tokenizer.id_to_token(id) !== undefined);
      return known.length === 0 ? '' : tokenizer.decode(known, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    },
  };
}
