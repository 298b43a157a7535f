// `lora-workbench import-llama2c`: a llama2.c checkpoint converted into a Hugging Face Llama folder (models.import).
import path from 'node:path';
import type { ModelImportResult } from '../../src-shared/models.ts';
import { call, DATA_DIR_HELP, openSession, parse, UsageError, type CliIo } from './common.ts';

const IMPORT_HELP = `Usage: lora-workbench import-llama2c MODEL.bin TOKENIZER.bin --out DIR

Converts a checkpoint of Karpathy's llama2.c (legacy version 0 .bin, as run.c reads it) and its
tokenizer .bin into a Hugging Face Llama folder (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json, generation_config.json). The folder then trains, evaluates and generates
like any Llama folder: pass it as "model" in a run configuration, or as --model to eval.

Options:
  --out DIR         the new folder (it must not exist, or be empty)
  --json            print the result (files and the folder's inspection) as JSON
${DATA_DIR_HELP}
  -h, --help        show this help`;

export async function importLlama2cCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { out: { type: 'string' }, json: { type: 'boolean' } }, 2);
  if (values.help) return (io.out(IMPORT_HELP), 0);
  const [checkpoint, tokenizer] = positionals;
  if (!checkpoint || !tokenizer) throw new UsageError('import-llama2c needs the model .bin and the tokenizer .bin');
  if (typeof values.out !== 'string') throw new UsageError('import-llama2c needs --out DIR');
  const session = openSession(values['data-dir'] as string | undefined, 'headless');
  try {
    const result = await call<ModelImportResult>(session.api, 'models.import', {
      format: 'llama2c',
      checkpoint: path.resolve(checkpoint),
      tokenizer: path.resolve(tokenizer),
      outDir: path.resolve(values.out),
    });
    if (values.json) return (io.out(JSON.stringify(result, null, 2)), 0);
    const i = result.inspection;
    io.out(`Imported ${path.resolve(checkpoint)} into ${result.outDir}: ${i.modelType}, ${i.parameterCount.toLocaleString('en-US')} parameters.`);
    for (const file of result.files) io.out(`  ${file}`);
    for (const warning of i.warnings) io.err(`warning: ${warning}`);
    return 0;
  } finally {
    await session.close();
  }
}
