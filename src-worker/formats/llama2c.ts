// Karpathy's llama2.c checkpoints (https://github.com/karpathy/llama2.c) as Hugging Face Llama folders,
// so the TinyStories models load like any other Llama.
//
// model .bin, legacy version 0 (export.py legacy_export, read by run.c): 7 int32 dim, hidden_dim,
// n_layers, n_heads, n_kv_heads, vocab_size (negative: the classifier is not shared with the
// embedding), seq_len; then float32 token_embedding [V, dim], rms_att [L, dim], wq [L, dim, dim],
// wk [L, kv_dim, dim], wv [L, kv_dim, dim], wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim],
// w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim], freq_cis_real and _imag
// [seq_len, head_size / 2] (unused), and wcls [V, dim] when not shared. Matrices are [out, in].
// llama2.c applies RoPE to adjacent pairs (2i, 2i+1) as Meta's code does; HF's rotate_half pairs i with
// i + head_size / 2, so wq and wk rows are permuted exactly as HF's convert_llama_weights_to_hf.py and
// llama2.c's own export.py (version -1, HF export) do.
//
// tokenizer.bin (tokenizer.py): int32 max_token_length, then per token float32 score, int32 byte length,
// UTF-8 bytes. Ids 0 <unk>, 1 BOS (stored as "\n<s>\n"), 2 EOS ("\n</s>\n"), 3..258 byte fallback
// <0x00>..<0xFF>, then SentencePiece BPE pieces with U+2581 turned into ' '. run.c encodes by
// prepending a space and merging the adjacent pair whose concatenation scores highest; an HF BPE
// model whose merges are ranked by the merged piece's score does the same (transformers'
// SentencePieceExtractor builds LlamaTokenizerFast's merges this way).
import fs from 'node:fs';
import path from 'node:path';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { serializeSafetensors, type TensorData } from './safetensors.ts';

export interface Llama2cParams {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  /** vocab_size > 0 in the header: the classifier is the token embedding. */
  sharedClassifier: boolean;
}

const HEADER_BYTES = 28;
// export.py's version 1 and 2 files start with this magic ("ak42") instead of dim.
const MAGIC_AK42 = 0x616b3432;
const SPACE = '\u2581';

function invalid(source: string, message: string): never {
  throw new WorkbenchError('format_invalid', `${source}: ${message}`, { file: source });
}

export function parseLlama2cHeader(bytes: Uint8Array, source: string): Llama2cParams {
  if (bytes.length < HEADER_BYTES) invalid(source, `file is ${bytes.length} bytes, shorter than the 28-byte llama2.c header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const h = Array.from({ length: 7 }, (_, i) => view.getInt32(4 * i, true));
  if (h[0]! >>> 0 === MAGIC_AK42) {
    invalid(
      source,
      'this is a version 1/2 llama2.c export; only the legacy version 0 format is read. Re-export with `python export.py model.bin --version 0 --checkpoint ckpt.pt`.',
    );
  }
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = h as [number, number, number, number, number, number, number];
  const names = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'];
  h.forEach((v, i) => {
    if (v === 0 || (v < 0 && i !== 5)) invalid(source, `header field ${names[i]} is ${v}: not a llama2.c checkpoint`);
  });
  if (dim % nHeads !== 0 || (dim / nHeads) % 2 !== 0) invalid(source, `dim ${dim} does not split into ${nHeads} heads of even size`);
  if (nHeads % nKvHeads !== 0) invalid(source, `n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`);
  return { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(vocab), seqLen, sharedClassifier: vocab > 0 };
}

/**
 * HF's permute for q/k: rows of each head go from llama2.c's interleaved pairs (2i, 2i+1) to halves
 * (i, i + hs/2): w.view(heads, hs/2, 2, in).transpose(1, 2).reshape(out, in).
 */
export function permuteForRotateHalf(w: Float32Array, heads: number, rows: number, cols: number): Float32Array {
  const hs = rows / heads;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < hs / 2; i++) {
      for (let parity = 0; parity < 2; parity++) {
        const from = (h * hs + 2 * i + parity) * cols;
        const to = (h * hs + parity * (hs / 2) + i) * cols;
        out.set(w.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

/** Reads a version-0 checkpoint into HF LlamaForCausalLM tensors (q/k permuted, lm_head only when untied). */
export function llama2cToHFWeights(bytes: Uint8Array, source: string): { params: Llama2cParams; tensors: Map<string, TensorData> } {
  const p = parseLlama2cHeader(bytes, source);
  const { dim, hiddenDim: hidden, nLayers: L, vocabSize: V } = p;
  const hs = dim / p.nHeads;
  const kvDim = p.nKvHeads * hs;
  const sizes: [string, number][] = [
    ['token_embedding', V * dim],
    ['rms_att', L * dim],
    ['wq', L * dim * dim],
    ['wk', L * kvDim * dim],
    ['wv', L * kvDim * dim],
    ['wo', L * dim * dim],
    ['rms_ffn', L * dim],
    ['w1', L * hidden * dim],
    ['w2', L * dim * hidden],
    ['w3', L * hidden * dim],
    ['rms_final', dim],
    ['freq_cis_real', (p.seqLen * hs) / 2],
    ['freq_cis_imag', (p.seqLen * hs) / 2],
  ];
  if (!p.sharedClassifier) sizes.push(['wcls', V * dim]);
  const floats = sizes.reduce((n, [, s]) => n + s, 0);
  const expected = HEADER_BYTES + 4 * floats;
  if (bytes.length !== expected) {
    invalid(
      source,
      `is ${bytes.length} bytes but a version-0 llama2.c checkpoint with dim ${dim}, hidden_dim ${hidden}, n_layers ${L}, n_heads ${p.nHeads}, n_kv_heads ${p.nKvHeads}, vocab ${V}${p.sharedClassifier ? '' : ' (untied)'}, seq_len ${p.seqLen} has ${expected}: the file is truncated or not in this format`,
    );
  }
  const start = bytes.byteOffset + HEADER_BYTES;
  // A file buffer at an unaligned offset cannot back a Float32Array: copy it then.
  const all = start % 4 === 0 ? new Float32Array(bytes.buffer, start, floats) : new Float32Array(bytes.slice(HEADER_BYTES).buffer);
  const part = new Map<string, Float32Array>();
  let at = 0;
  for (const [name, size] of sizes) {
    part.set(name, all.subarray(at, at + size));
    at += size;
  }
  const layer = (name: string, l: number, size: number) => part.get(name)!.slice(l * size, (l + 1) * size);
  const tensors = new Map<string, TensorData>();
  tensors.set('model.embed_tokens.weight', { shape: [V, dim], data: part.get('token_embedding')!.slice() });
  for (let l = 0; l < L; l++) {
    const x = `model.layers.${l}`;
    tensors.set(`${x}.input_layernorm.weight`, { shape: [dim], data: layer('rms_att', l, dim) });
    tensors.set(`${x}.self_attn.q_proj.weight`, { shape: [dim, dim], data: permuteForRotateHalf(layer('wq', l, dim * dim), p.nHeads, dim, dim) });
    tensors.set(`${x}.self_attn.k_proj.weight`, { shape: [kvDim, dim], data: permuteForRotateHalf(layer('wk', l, kvDim * dim), p.nKvHeads, kvDim, dim) });
    tensors.set(`${x}.self_attn.v_proj.weight`, { shape: [kvDim, dim], data: layer('wv', l, kvDim * dim) });
    tensors.set(`${x}.self_attn.o_proj.weight`, { shape: [dim, dim], data: layer('wo', l, dim * dim) });
    tensors.set(`${x}.post_attention_layernorm.weight`, { shape: [dim], data: layer('rms_ffn', l, dim) });
    tensors.set(`${x}.mlp.gate_proj.weight`, { shape: [hidden, dim], data: layer('w1', l, hidden * dim) });
    tensors.set(`${x}.mlp.down_proj.weight`, { shape: [dim, hidden], data: layer('w2', l, dim * hidden) });
    tensors.set(`${x}.mlp.up_proj.weight`, { shape: [hidden, dim], data: layer('w3', l, hidden * dim) });
  }
  tensors.set('model.norm.weight', { shape: [dim], data: part.get('rms_final')!.slice() });
  if (!p.sharedClassifier) tensors.set('lm_head.weight', { shape: [V, dim], data: part.get('wcls')!.slice() });
  return { params: p, tensors };
}

export interface Llama2cVocab {
  /** Pieces as HF vocabularies spell them: U+2581 for space, <s> and </s> for BOS and EOS. */
  pieces: string[];
  scores: number[];
}

export function parseLlama2cTokenizer(bytes: Uint8Array, vocabSize: number, source: string): Llama2cVocab {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  if (bytes.length < 4) invalid(source, 'file is shorter than its 4-byte max_token_length');
  const maxTokenLength = view.getInt32(0, true);
  const pieces: string[] = [];
  const scores: number[] = [];
  let at = 4;
  for (let id = 0; id < vocabSize; id++) {
    if (at + 8 > bytes.length)
      invalid(source, `ends after ${id} tokens but the model has a vocabulary of ${vocabSize}: the tokenizer does not belong to this model`);
    const score = view.getFloat32(at, true);
    const length = view.getInt32(at + 4, true);
    at += 8;
    if (length < 0 || length > maxTokenLength || at + length > bytes.length)
      invalid(source, `token ${id} has byte length ${length} (max_token_length ${maxTokenLength}): the file is damaged`);
    let text: string;
    try {
      text = decoder.decode(bytes.subarray(at, at + length));
    } catch {
      invalid(source, `token ${id} is not valid UTF-8`);
    }
    at += length;
    if (id === 0) text = '<unk>';
    else if (id === 1 || id === 2)
      text = text.trim(); // "\n<s>\n" and "\n</s>\n" as tokenizer.py writes them
    else if (!/^<0x[0-9A-F]{2}>$/.test(text)) text = text.replaceAll(' ', SPACE);
    pieces.push(text);
    scores.push(score);
  }
  if (at !== bytes.length) {
    invalid(source, `holds more than the model's ${vocabSize} tokens (${bytes.length - at} bytes left over): the tokenizer does not belong to this model`);
  }
  const seen = new Map<string, number>();
  pieces.forEach((piece, id) => {
    if (seen.has(piece)) invalid(source, `tokens ${seen.get(piece)} and ${id} are both "${piece}"`);
    seen.set(piece, id);
  });
  for (let b = 0; b < 256; b++) {
    const expected = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
    if (pieces[3 + b] !== expected)
      invalid(
        source,
        `token ${3 + b} is "${pieces[3 + b]}", expected the byte-fallback token ${expected}: not a SentencePiece BPE tokenizer with byte fallback`,
      );
  }
  return { pieces, scores };
}

/**
 * BPE merges as transformers' SentencePieceExtractor derives them: every split of a piece into two
 * pieces, ordered by the merged piece's score (best first), ties by the halves' ids.
 */
export function mergesFromScores({ pieces, scores }: Llama2cVocab): [string, string][] {
  const ids = new Map(pieces.map((p, i) => [p, i]));
  const normal = (id: number | undefined) => id !== undefined && id >= 259;
  const merges: { left: string; right: string; score: number; l: number; r: number }[] = [];
  pieces.forEach((piece, id) => {
    if (!normal(id)) return;
    const chars = Array.from(piece);
    for (let k = 1; k < chars.length; k++) {
      const left = chars.slice(0, k).join('');
      const right = chars.slice(k).join('');
      const l = ids.get(left);
      const r = ids.get(right);
      if (normal(l) && normal(r)) merges.push({ left, right, score: scores[id]!, l: l!, r: r! });
    }
  });
  // Array.prototype.sort is stable: equal scores keep vocabulary order, as Python's sorted does.
  merges.sort((a, b) => b.score - a.score || a.l - b.l || a.r - b.r);
  return merges.map((m) => [m.left, m.right]);
}

const specialToken = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

/** tokenizer.json as LlamaTokenizerFast (legacy) saves it for Llama 2. */
export function llama2cTokenizerJson(vocab: Llama2cVocab): Record<string, unknown> {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: vocab.pieces.slice(0, 3).map((p, id) => specialToken(id, p)),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPACE },
        { type: 'Replace', pattern: { String: ' ' }, content: SPACE },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab: Object.fromEntries(vocab.pieces.map((p, i) => [p, i])),
      // "left right" strings: pieces hold no plain spaces (they are U+2581), and older readers need this form.
      merges: mergesFromScores(vocab).map(([l, r]) => `${l} ${r}`),
    },
  };
}

export function llama2cConfigJson(p: Llama2cParams): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: p.vocabSize,
    hidden_size: p.dim,
    intermediate_size: p.hiddenDim,
    num_hidden_layers: p.nLayers,
    num_attention_heads: p.nHeads,
    num_key_value_heads: p.nKvHeads,
    max_position_embeddings: p.seqLen,
    rms_norm_eps: 1e-5, // llama2.c ModelArgs.norm_eps and run.c
    rope_theta: 10000.0,
    rope_scaling: null,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: p.sharedClassifier,
    bos_token_id: 1,
    eos_token_id: 2,
    initializer_range: 0.02,
    pretraining_tp: 1,
    use_cache: true,
    torch_dtype: 'float32',
  };
}

export interface Llama2cImport {
  outDir: string;
  params: Llama2cParams;
  files: string[];
}

/**
 * Converts a llama2.c checkpoint and its tokenizer.bin into a Hugging Face Llama folder at `outDir`
 * (created; it must not exist or be empty). Both inputs are parsed and checked before anything is written.
 */
export async function importLlama2c(binPath: string, tokenizerBinPath: string, outDir: string): Promise<Llama2cImport> {
  const read = async (file: string) => {
    try {
      return new Uint8Array(await fs.promises.readFile(file));
    } catch (error) {
      throw new WorkbenchError('not_found', `Cannot read ${file}: ${(error as Error).message}`, { file });
    }
  };
  const { params, tensors } = llama2cToHFWeights(await read(binPath), binPath);
  const vocab = parseLlama2cTokenizer(await read(tokenizerBinPath), params.vocabSize, tokenizerBinPath);
  const existing = await fs.promises.readdir(outDir).catch(() => null);
  if (existing && existing.length > 0) {
    throw new WorkbenchError('invalid_input', `${outDir} already exists and is not empty; choose a new folder for the imported model.`, { file: outDir });
  }
  await fs.promises.mkdir(outDir, { recursive: true });
  const files: [string, Uint8Array | string][] = [
    ['config.json', JSON.stringify(llama2cConfigJson(params), null, 2)],
    // llama2.c's training data separates stories with BOS and run.c stops there; HF generate stops at any listed id.
    ['generation_config.json', JSON.stringify({ bos_token_id: 1, eos_token_id: [2, 1] }, null, 2)],
    ['model.safetensors', serializeSafetensors(tensors, { format: 'pt' })],
    ['tokenizer.json', JSON.stringify(llama2cTokenizerJson(vocab))],
    [
      'tokenizer_config.json',
      JSON.stringify(
        {
          add_bos_token: true,
          add_eos_token: false,
          bos_token: '<s>',
          eos_token: '</s>',
          unk_token: '<unk>',
          pad_token: null,
          clean_up_tokenization_spaces: false,
          legacy: true,
          model_max_length: params.seqLen,
          tokenizer_class: 'LlamaTokenizer',
          added_tokens_decoder: Object.fromEntries(
            vocab.pieces.slice(0, 3).map((p, id) => {
              const { id: _, ...decoderEntry } = specialToken(id, p);
              return [String(id), decoderEntry];
            }),
          ),
        },
        null,
        2,
      ),
    ],
  ];
  for (const [name, content] of files) await fs.promises.writeFile(path.join(outDir, name), content);
  return { outDir, params, files: files.map(([name]) => name) };
}
