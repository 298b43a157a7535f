// A JSON file the workbench wrote, read back and checked against its schema, with errors that say
// which file and what is wrong with it.
import fs from 'node:fs';
import type { z } from 'zod';
import { WorkbenchError } from '../../src-shared/errors.ts';

/**
 * Reads `file` as `schema`. A missing file is not_found with `whenMissing` as the message; invalid JSON
 * or content is format_invalid, the content's problems prefixed by `what` (e.g. "is not a workbench
 * adapter description").
 */
export async function readCheckedJson<S extends z.ZodType>(file: string, schema: S, messages: { whenMissing: string; what?: string }): Promise<z.infer<S>> {
  let json: unknown;
  try {
    json = JSON.parse(await fs.promises.readFile(file, 'utf8'));
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new WorkbenchError(missing ? 'not_found' : 'format_invalid', missing ? messages.whenMissing : `${file} is not valid JSON: ${(e as Error).message}`, {
      file,
    });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new WorkbenchError('format_invalid', `${file}${messages.what ? ` ${messages.what}` : ''}: ${issues}`, { file });
  }
  return parsed.data;
}
