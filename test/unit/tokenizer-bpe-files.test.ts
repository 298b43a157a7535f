// A model folder with GPT-2's vocab.json + merges.txt and no tokenizer.json (older checkpoints) loads:
// the tokenizer built from those files gives the ids transformers' GPT2Tokenizer gives from them
// (test/fixtures/tokenizer-bpe-files, made by scripts/make-fixtures-tokenizer-bpe.py).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectModelFolder, loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { loadTokenizer } from '../../src-worker/formats/tokenizer.ts';
import { tempRoot } from './method-run.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
const bpeFiles = path.join(fixtures, 'tokenizer-bpe-files');
const reference = JSON.parse(fs.readFileSync(path.join(bpeFiles, 'reference.json'), 'utf8')) as {
  vocab_size: number;
  eos_token_id: number;
  texts: { text: string; ids: number[]; decoded: string }[];
};

let work: string;
/** gpt2-tiny's config and weights beside the fixture's tokenizer files (and `extra`), without tokenizer.json. */
function modelFolder(name: string, tokenizerFiles: string[]): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(fixtures, 'gpt2-tiny', f), path.join(dir, f));
  for (const f of tokenizerFiles) fs.copyFileSync(path.join(bpeFiles, f), path.join(dir, f));
  return dir;
}
beforeAll(() => {
  work = tempRoot('lw-bpe-files-');
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('a tokenizer from vocab.json + merges.txt', () => {
  it("encodes and decodes as transformers' GPT2Tokenizer does from the same files", async () => {
    const tokenizer = await loadTokenizer(bpeFiles);
    expect(tokenizer.vocabSize).toBe(reference.vocab_size);
    expect(tokenizer.eosTokenId).toBe(reference.eos_token_id);
    for (const { text, ids, decoded } of reference.texts) {
      expect(tokenizer.encode(text), text).toEqual(ids);
      expect(tokenizer.decode(ids)).toBe(decoded);
    }
    // The merges apply: the corpus's frequent words are single tokens.
    expect(reference.texts[0]!.ids.length).toBeLessThan(reference.texts[0]!.text.length / 2);
  });

  it('makes a model folder without tokenizer.json load', async () => {
    const dir = modelFolder('old-gpt2', ['vocab.json', 'merges.txt', 'tokenizer_config.json']);
    const info = await inspectModelFolder(dir);
    expect(info.files.map((f) => f.name)).toEqual(['config.json', 'model.safetensors', 'vocab.json', 'merges.txt', 'tokenizer_config.json']);
    const model = await loadCausalLM(dir);
    model.dispose();
    expect((await loadTokenizer(dir)).encode('The cat')).toEqual(reference.texts[0]!.ids.slice(0, 2));
  });

  it('keeps the clear message when there is no tokenizer at all, or only half of the pair', async () => {
    for (const [name, files] of [
      ['no-tokenizer', []],
      ['vocab-only', ['vocab.json']],
    ] as const) {
      const dir = modelFolder(name, [...files]);
      await expect(inspectModelFolder(dir)).rejects.toThrow(
        /has no tokenizer\.json \(nor a GPT-2 vocab\.json \+ merges\.txt pair\)\. Save the "fast" tokenizer/,
      );
    }
  });
});
