// SQLite answers rows under the tables' snake_case column names; the shared types name the same fields
// in camelCase. camelCased renames every column, so a row mapper spells out only the columns it
// converts (JSON text, the backend pair) or leaves out, and a new column needs no new mapper line;
// patchColumns goes the other way for updates.
import type Database from 'better-sqlite3';
import type { z } from 'zod';
import type { BackendInfo } from '../../src-shared/runs.ts';

type CamelCase<Name extends string> = Name extends `${infer Head}_${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}` : Name;
/** A row's columns under their camelCase names (run_id: runId), with their types. */
export type CamelCased<Row> = { [Column in keyof Row & string as CamelCase<Column>]: Row[Column] };

export function camelCased<Row extends object>(row: Row): CamelCased<Row> {
  const fields = Object.entries(row).map(([column, value]) => [column.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase()), value]);
  return Object.fromEntries(fields) as CamelCased<Row>;
}

/** A JSON text column read back through its schema (which also fills in fields added since it was stored); no text: null. */
export function parsedJson<T>(schema: z.ZodType<T>, text: string | null): T | null {
  return text ? schema.parse(JSON.parse(text)) : null;
}

/** The backend a run or evaluation reported, kept as two columns; null until it reported one. */
export function backendOf(name: BackendInfo['name'] | null, adapter: string | null): BackendInfo | null {
  return name ? { name, adapter: adapter ?? '' } : null;
}

/** A backend patch as its two columns (null clears both). */
export function backendColumns(backend: BackendInfo | null): { backend_name: string | null; backend_adapter: string | null } {
  return { backend_name: backend?.name ?? null, backend_adapter: backend?.adapter ?? null };
}

/** The columns a patch sets: snake_case names, objects and arrays as JSON text; a field left undefined is left alone, null clears it. */
export function patchColumns(patch: object): Record<string, unknown> {
  const columns: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    const column = field.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
    columns[column] = value !== null && typeof value === 'object' ? JSON.stringify(value) : value;
  }
  return columns;
}

const assignments = (columns: Record<string, unknown>): string =>
  Object.keys(columns)
    .map((column) => `${column} = @${column}`)
    .join(', ');

/** Sets `columns` on the rows of `table` whose `key` columns hold the given values; nothing to set: no statement. */
export function updateColumns(db: Database.Database, table: string, columns: Record<string, unknown>, key: Record<string, unknown>): void {
  if (Object.keys(columns).length === 0) return;
  const where = Object.keys(key)
    .map((column) => `${column} = @${column}`)
    .join(' AND ');
  db.prepare(`UPDATE ${table} SET ${assignments(columns)} WHERE ${where}`).run({ ...columns, ...key });
}

/**
 * Sets `columns` on the rows of `table` still 'queued' or 'running' whose owning process is gone, and
 * answers their ids. IMMEDIATE: another process must not claim a row between the check and the update.
 */
export function markOrphans(db: Database.Database, table: string, isOwnerGone: (pid: number | null) => boolean, columns: Record<string, unknown>): string[] {
  const select = db.prepare(`SELECT id, owner_pid FROM ${table} WHERE status IN ('queued', 'running')`);
  const mark = db.prepare(`UPDATE ${table} SET ${assignments(columns)} WHERE id = @id`);
  return db
    .transaction(() => {
      const candidates = select.all() as { id: string; owner_pid: number | null }[];
      const orphans = candidates.filter((c) => isOwnerGone(c.owner_pid)).map((c) => c.id);
      for (const id of orphans) mark.run({ ...columns, id });
      return orphans;
    })
    .immediate();
}
