// The `write-heldout` job: the rows a run did not train on (the same split as training: split.ts, from the
// run's seed and validation fraction), written as {"text": prompt + completion} JSONL, the corpus the quick
// built-in evaluation scores with the perplexity suite (src-main/quick-eval.ts).
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { WriteHeldoutJob } from '../../src-shared/worker-protocol.ts';
import { readInstructionDataset } from './dataset.ts';
import { splitTrainValidation } from './split.ts';

/** Writes the held-out rows to job.outFile; answers how many. */
export async function writeHeldout(job: WriteHeldoutJob): Promise<number> {
  const rows = await readInstructionDataset(job.datasetPath);
  const { validation } = splitTrainValidation(rows.length, job.fraction, job.seed);
  if (validation.length === 0) {
    throw new WorkbenchError(
      'invalid_input',
      `${job.datasetPath} holds out no rows at validation fraction ${job.fraction} (${rows.length} rows): there is nothing unseen to evaluate on. Train with a validation fraction above 0.`,
      {
        field: 'adapterId',
      },
    );
  }
  const lines = validation.map((i) => JSON.stringify({ text: `${rows[i]!.prompt}${rows[i]!.completion}` }));
  await mkdir(path.dirname(job.outFile), { recursive: true });
  await writeFile(`${job.outFile}.partial`, `${lines.join('\n')}\n`, 'utf8');
  await rename(`${job.outFile}.partial`, job.outFile);
  return lines.length;
}
