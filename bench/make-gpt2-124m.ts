// Writes a Hugging Face GPT-2 folder of GPT-2's own shape (124M parameters: n_embd 768, 12 layers,
// 12 heads, vocabulary 50257, 1024 positions) with seeded random weights, for benchmarks and the
// issue's `lora-workbench train` check at a real size without downloading GPT-2. The tokenizer files
// are copied from --tokenizer (a folder with tokenizer.json), whose ids must stay under 50257.
//
//   node --import tsx bench/make-gpt2-124m.ts --out /tmp/gpt2-124m --tokenizer ../shared/models/fake-gpt2-random
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { serializeSafetensors } from '../src-worker/formats/safetensors.ts';
import { gpt2ConfigFromHF, randomGPT2Weights } from '../src-worker/models/gpt2.ts';

const { values } = parseArgs({ options: { out: { type: 'string' }, tokenizer: { type: 'string' }, seed: { type: 'string', default: '0' } } });
if (!values.out || !values.tokenizer) throw new Error('usage: make-gpt2-124m.ts --out DIR --tokenizer DIR_WITH_TOKENIZER_JSON');
const json = {
  model_type: 'gpt2',
  architectures: ['GPT2LMHeadModel'],
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  vocab_size: 50257,
  n_positions: 1024,
  n_ctx: 1024,
  activation_function: 'gelu_new',
  layer_norm_epsilon: 1e-5,
  bos_token_id: 50256,
  eos_token_id: 50256,
};
const weights = randomGPT2Weights(gpt2ConfigFromHF(json), Number(values.seed));
fs.mkdirSync(values.out, { recursive: true });
fs.writeFileSync(path.join(values.out, 'config.json'), JSON.stringify(json, null, 2));
fs.writeFileSync(
  path.join(values.out, 'model.safetensors'),
  serializeSafetensors(new Map([...weights].map(([k, w]) => [k, { shape: w.shape, data: w.data }]))),
);
for (const file of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
  const from = path.join(values.tokenizer, file);
  if (fs.existsSync(from)) fs.copyFileSync(from, path.join(values.out, file));
}
console.log(`wrote ${values.out}: ${[...weights.values()].reduce((n, w) => n + w.data.length, 0).toLocaleString('en-US')} parameters`);
