// What every repository's require(id) does with an id it has no row for.
import { WorkbenchError } from '../../src-shared/errors.ts';

/** `found`, or the not_found error that names the id and says how to list the ids that exist (`list`: "List runs"). */
export function orNotFound<T>(found: T | undefined, id: string, kind: string, list = `List ${kind}s`): T {
  if (found === undefined) throw new WorkbenchError('not_found', `No ${kind} with id "${id}". ${list} to see the ids that exist.`, { id });
  return found;
}
