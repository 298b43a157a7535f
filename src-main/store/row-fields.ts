// SQLite answers rows under the tables' snake_case column names; the shared types name the same fields
// in camelCase. camelCased renames every column, so a row mapper spells out only the columns it
// converts (JSON text, the backend pair) or leaves out, and a new column needs no new mapper line.
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
