// Checks that @huggingface/tokenizers (what the app tokenizes with) encodes strings exactly as the
// Python BPE in bpe.py that trained the default model, and decodes them back to the same text.
//   node --import tsx scripts/default-model/tokenizer-parity.ts CASES_JSON
// CASES_JSON: {"tokenizerDir": "...", "cases": [{"text": "...", "ids": [...]}]}, written by make-default-model.py.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '@huggingface/tokenizers';

export interface ParityCase {
  text: string;
  ids: number[];
}

export interface ParityMismatch {
  text: string;
  python: number[];
  js: number[];
  decoded: string;
}

export function loadTokenizer(dir: string): Tokenizer {
  const read = (name: string): object => JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as object;
  return new Tokenizer(read('tokenizer.json'), read('tokenizer_config.json'));
}

/** Cases whose JS ids differ from the Python ids, or whose ids do not decode back to the text. */
export function findMismatches(tokenizer: Tokenizer, cases: readonly ParityCase[]): ParityMismatch[] {
  const bad: ParityMismatch[] = [];
  for (const c of cases) {
    const js = tokenizer.encode(c.text, { add_special_tokens: false }).ids;
    // decode() rejects an empty id list, which is what the empty string encodes to.
    const decoded = js.length === 0 ? '' : tokenizer.decode(js, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    const same = js.length === c.ids.length && js.every((id, i) => id === c.ids[i]);
    if (!same || decoded !== c.text) bad.push({ text: c.text, python: c.ids, js, decoded });
  }
  return bad;
}

function main(): void {
  const file = process.argv[2];
  if (!file) throw new Error('usage: tokenizer-parity.ts CASES_JSON');
  const { tokenizerDir, cases } = JSON.parse(readFileSync(file, 'utf8')) as { tokenizerDir: string; cases: ParityCase[] };
  const bad = findMismatches(loadTokenizer(tokenizerDir), cases);
  for (const b of bad.slice(0, 10)) console.error('mismatch:', JSON.stringify(b));
  if (bad.length > 0) {
    console.error(`${bad.length} of ${cases.length} strings tokenize differently in JS and Python`);
    process.exit(1);
  }
  console.log(`tokenizer parity: ${cases.length} strings encode and decode identically in JS and Python`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
