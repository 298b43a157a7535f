// The JSON Schemas (and the default RunConfig its tests start from) the Python engine validates its input and output against, generated from the zod
// schemas the TypeScript side uses (z.toJSONSchema), so the contract is written once. Run:
//   node --import tsx engine-torch/scripts/generate-schemas.ts          (writes them)
//   node --import tsx engine-torch/scripts/generate-schemas.ts --check  (fails when they are stale; test:torch runs it)
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { methodIds, RunConfigSchema } from '../../src-shared/config.ts';
import { TrainJobSchema, WorkerToMainSchema } from '../../src-shared/worker-protocol.ts';
import { DataPlanSchema } from '../../src-worker/data/data-plan.ts';

const PACKAGE_ROOT = path.join(import.meta.dirname, '..');

/** File (relative to engine-torch/) -> content. The default RunConfigs serve the package's tests and bench. */
export function generatedFiles(): Record<string, string> {
  const render = (value: unknown) => `${JSON.stringify(value, null, 1)}\n`;
  const schema = (s: z.ZodType) => render(z.toJSONSchema(s, { io: 'output' }));
  return {
    'workbench_torch/schemas/train-job.schema.json': schema(TrainJobSchema),
    'workbench_torch/schemas/worker-to-main.schema.json': schema(WorkerToMainSchema),
    'workbench_torch/schemas/data-plan.schema.json': schema(DataPlanSchema),
    // Each method's configuration with its defaults (RunConfig is a union on method: each carries only its sections).
    'tests/default-run-configs.json': render(Object.fromEntries(methodIds.map((method) => [method, RunConfigSchema.parse({ method })]))),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const check = process.argv.includes('--check');
  const stale: string[] = [];
  for (const [name, text] of Object.entries(generatedFiles())) {
    const file = path.join(PACKAGE_ROOT, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
    if (current === text) continue;
    if (check) stale.push(name);
    else fs.writeFileSync(file, text);
  }
  if (stale.length) {
    console.error(
      `Stale generated files in engine-torch/: ${stale.join(', ')}. Run node --import tsx engine-torch/scripts/generate-schemas.ts and commit them.`,
    );
    process.exit(1);
  }
}
