// A bigram "model" over the tokens "a", "b", "c" for scoring tests: the logits at a position depend only
// on its token, p(next | t) = BIGRAM_TABLE[t], so every score is a sum of known log-probabilities.
import type { TextTokenizer } from '../../src-worker/formats/tokenizer.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { tf } from '../../src-worker/tf.ts';

export const BIGRAM_TABLE = [
  [0.5, 0.25, 0.25],
  [0.1, 0.2, 0.7],
  [1 / 3, 1 / 3, 1 / 3],
];

/** Refuses inputs longer than maxPositions, as a real model's window would. */
export function bigram(maxPositions: number): CausalLM {
  const logTable = tf.tensor2d(BIGRAM_TABLE.map((row) => row.map(Math.log)));
  return {
    config: { family: 'gpt2', modelType: 'bigram', vocabSize: 3, hiddenSize: 3, numLayers: 1, numHeads: 1, maxPositions },
    linearModules: () => [],
    forward: (ids) => {
      if (ids.shape[1] > maxPositions) throw new Error(`input of ${ids.shape[1]} positions > ${maxPositions}`);
      return tf.tidy(() => tf.gather(logTable, ids) as unknown as tf.Tensor3D);
    },
    forwardWithCache: () => {
      throw new Error('unused');
    },
    hiddenStates: (ids) => tf.tidy(() => tf.gather(logTable, ids) as unknown as tf.Tensor3D),
    parameterCount: () => 9,
    dispose: () => logTable.dispose(),
  };
}

/** Tokens are the characters "a", "b", "c"; token 2 ("c") is also the prefix token. */
export const charTokenizer: TextTokenizer = {
  encode: (text) => Array.from(text).map((ch) => 'abc'.indexOf(ch)),
  decode: (ids) => ids.map((i) => 'abc'[i]).join(''),
  eosTokenId: 2,
  padTokenId: 2,
  vocabSize: 3,
};
