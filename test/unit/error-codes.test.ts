// Issue 15, finding 10: what the user's data or paths say is never mistaken for a crash or for memory
// trouble. "OOM" inside a word (room, bloom) no longer means out of memory; data errors from the templates
// and a mismatched checkpoint are their own codes; a form's own check is shown as a field error.
import { describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { describeError } from '../../src-renderer/lib/errors.ts';
import { FormError } from '../../src-renderer/lib/eval-form.ts';
import { qqpTemplate, conversationTemplate } from '../../src-worker/data/templates.ts';
import { tf } from '../../src-worker/tf.ts';
import { AdamW } from '../../src-worker/train/adamw.ts';

describe('WorkbenchError.from', () => {
  it.each([
    "ENOENT: no such file or directory, open '/home/me/models/bloom-560m/config.json'",
    'Cannot read /srv/classroom/data.jsonl',
    "EACCES: permission denied, mkdir '/mnt/storeroom/exports'",
  ])('keeps "%s" out of out_of_memory', (message) => {
    expect(WorkbenchError.from(new Error(message)).code).toBe('internal');
  });

  it.each(['OOM when allocating tensor with shape[4096,4096]', 'WebGPU: out of memory', 'Failed to allocate 1.5 GB'])(
    'classifies "%s" as out_of_memory',
    (message) => {
      expect(WorkbenchError.from(new Error(message)).code).toBe('out_of_memory');
    },
  );
});

describe('user-data errors', () => {
  it('a QQP pair without a label and a conversation without a reply are dataset_invalid with their line', () => {
    expect(() => qqpTemplate({ id: '7', question1: 'a?', question2: 'b?', label: null, line: 8 })).toThrow(
      expect.objectContaining({ code: 'dataset_invalid', details: { line: 8 } }),
    );
    const conversation = { line: 3, turns: [{ role: 'user' as const, text: 'hello' }] };
    expect(() => conversationTemplate(conversation as never)).toThrow(expect.objectContaining({ code: 'dataset_invalid', details: { line: 3 } }));
  });

  it('a checkpoint whose optimizer state does not match is format_invalid, with what to do', () => {
    const a = tf.variable(tf.tensor1d([1, 2]));
    const optimizer = new AdamW([{ name: 'g', lr: 0.1, weightDecay: 0, params: [{ name: 'a', variable: a }] }]);
    try {
      const wrong = new Map([['a.exp_avg', { shape: [3], data: new Float32Array(3) }]]);
      expect(() => optimizer.loadStateDict(wrong, 1)).toThrow(
        expect.objectContaining({ code: 'format_invalid', message: expect.stringMatching(/Resume from a checkpoint of this run/) }),
      );
    } finally {
      a.dispose();
    }
  });
});

describe('the error panel', () => {
  it("shows a form's own check as a field error, not as a crash with checkpoint advice", () => {
    const shown = describeError(new FormError('datasets', 'Give the path of the CrowS-Pairs CSV.'));
    expect(shown.code).toBe('invalid_input');
    expect(shown.hint).not.toMatch(/checkpoint/);
    expect(describeError(new Error('something odd')).hint).not.toMatch(/checkpoint/);
  });
});
