// `lora-workbench adapters import DIR --base MODEL`: a PEFT LoRA folder trained elsewhere joins the library (adapters.import).
import path from 'node:path';
import { BackendChoiceSchema } from '../../src-shared/config.ts';
import type { AdapterImportResult } from '../../src-shared/api.ts';
import { call, DATA_DIR_HELP, openSession, parse, UsageError, type CliIo } from './common.ts';

const ADAPTERS_HELP = `Usage: lora-workbench adapters import DIR --base MODEL [--name NAME]

Adds a PEFT LoRA adapter folder trained elsewhere (adapter_config.json + adapter_model.safetensors, as
PEFT's save_pretrained writes it) to the library, after checking it against the base model: module
names, tensor shapes and target_modules (a list or a regular expression; rsLoRA and fan_in_fan_out are
read). It then works like a trained adapter: Playground, eval --adapter, SG-LoRA's bank, merge, export.
Other PEFT types (LoHa, IA3, ...), DoRA, modules_to_save, trained biases and per-module ranks are
refused with the reason.

Options:
  --base MODEL      "default" (the embedded model) or the Hugging Face model folder it was trained on
  --name NAME       the adapter's name in the library (default: the folder's name)
  --backend B       ${BackendChoiceSchema.options.join(', ')} (default: auto)
  --json            print the imported adapter, its LoRA settings and any warnings as JSON
${DATA_DIR_HELP}
  -h, --help        show this help`;

export async function adaptersCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(
    args,
    { base: { type: 'string' }, name: { type: 'string' }, backend: { type: 'string' }, json: { type: 'boolean' } },
    2,
  );
  if (values.help) return (io.out(ADAPTERS_HELP), 0);
  const [sub, dir] = positionals;
  if (sub !== 'import') throw new UsageError(sub ? `Unknown adapters command "${sub}" (only "import")` : 'adapters needs a command: import');
  if (!dir) throw new UsageError('adapters import needs the adapter folder');
  if (typeof values.base !== 'string') throw new UsageError('adapters import needs --base MODEL (the model the adapter was trained on)');
  const session = openSession(values['data-dir'] as string | undefined, 'headless');
  try {
    const result = await call<AdapterImportResult>(session.api, 'adapters.import', {
      dir: path.resolve(dir),
      baseModel: values.base === 'default' ? 'default' : path.resolve(values.base),
      ...(typeof values.name === 'string' ? { name: values.name } : {}),
      ...(typeof values.backend === 'string' ? { backend: values.backend } : {}),
    });
    if (values.json) return (io.out(JSON.stringify(result, null, 2)), 0);
    const { adapter, settings } = result;
    io.out(
      `Imported ${path.resolve(dir)} as adapter ${adapter.id} ("${adapter.name}"): LoRA r=${settings.r}, alpha=${settings.alpha}${settings.useRslora ? ' (rsLoRA)' : ''} on ${settings.targetModules.join(', ')}, ${adapter.trainableParams.toLocaleString('en-US')} parameters.`,
    );
    for (const warning of result.warnings) io.err(`warning: ${warning}`);
    return 0;
  } finally {
    await session.close();
  }
}
