// What the repositories share for reading a row by its id: the mapped row, or for an id with no row
// the not_found error that names the id and says how to list the ids that exist.
import type Database from 'better-sqlite3';
import { WorkbenchError } from '../../src-shared/errors.ts';

/** `found`, or the not_found error for `id` (`list`: how to see the ids that exist, "List runs"). */
export function orNotFound<T>(found: T | undefined, id: string, kind: string, list = `List ${kind}s`): T {
  if (found === undefined) throw new WorkbenchError('not_found', `No ${kind} with id "${id}". ${list} to see the ids that exist.`, { id });
  return found;
}

/** A table read by id: get(id) maps the row `selectById` returns; require(id) refuses an id with no row. */
export abstract class ByIdRepository<Row, Item> {
  constructor(
    private readonly selectById: Database.Statement,
    private readonly toItem: (row: Row) => Item,
    private readonly kind: string,
  ) {}

  get(id: string): Item | undefined {
    const row = this.selectById.get(id) as Row | undefined;
    return row && this.toItem(row);
  }

  require(id: string): Item {
    return orNotFound(this.get(id), id, this.kind);
  }
}
