// The process boundaries of ARCHITECTURE.md, enforced: each folder imports only what its runtime allows
// (the role ESLint's import/no-restricted-paths plays in STYLE.md, without a linter to install).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

interface Zone {
  folder: string;
  /** Each import specifier must match one of these… */
  allowed: RegExp[];
  /** …and none of these. */
  forbidden: RegExp[];
}

const relativeTo = (...folders: string[]) => new RegExp(`^(\\.{1,2}/)+(${folders.join('|')})/`);

const zones: Zone[] = [
  { folder: 'src-shared', allowed: [/^\.\//, /^zod$/], forbidden: [] },
  {
    folder: 'src-worker',
    allowed: [/^\.{1,2}\//, /^node:/, /^@tensorflow\//, /^@huggingface\//, /^webgpu$/, /^zod$/],
    forbidden: [relativeTo('src-main', 'src-renderer'), /electron/, /better-sqlite3/],
  },
  {
    folder: 'src-main',
    allowed: [/^\.{1,2}\//, /^node:/, /^zod$/, /^ws$/, /^better-sqlite3$/, /^electron$/],
    forbidden: [relativeTo('src-renderer', 'src-worker')],
  },
  {
    folder: 'src-renderer',
    allowed: [/^\.{1,2}\//, /^svelte(\/|$)/, /^chart\.js(\/|$)/, /^zod$/, /^vite$/, /^@sveltejs\//],
    forbidden: [relativeTo('src-main', 'src-worker'), /^node:/],
  },
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|svelte)$/.test(name) ? [path] : [];
  });
}

function importsOf(source: string): string[] {
  const found = new Set<string>();
  for (const m of source.matchAll(/(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g)) {
    found.add((m[1] ?? m[2] ?? m[3])!);
  }
  return [...found];
}

describe('import boundaries', () => {
  for (const zone of zones) {
    it(`${zone.folder} imports only what its runtime allows`, () => {
      const violations: string[] = [];
      for (const file of sourceFiles(join(root, zone.folder))) {
        for (const spec of importsOf(readFileSync(file, 'utf8'))) {
          const ok = zone.allowed.some((re) => re.test(spec)) && !zone.forbidden.some((re) => re.test(spec));
          if (!ok) violations.push(`${relative(root, file)} imports "${spec}"`);
        }
      }
      expect(violations).toEqual([]);
    });
  }

  it('only src-main/store talks to SQLite', () => {
    const offenders = sourceFiles(join(root, 'src-main'))
      .filter((f) => !relative(root, f).startsWith('src-main/store/'))
      .filter((f) => importsOf(readFileSync(f, 'utf8')).includes('better-sqlite3'))
      .map((f) => relative(root, f));
    expect(offenders).toEqual([]);
  });

  it('the checker sees imports of every form', () => {
    const sample = `import a from 'x';\nimport { b } from "y";\nexport * from './z.ts';\nimport 'side';\nconst m = await import('dyn');`;
    expect(importsOf(sample).sort()).toEqual(['./z.ts', 'dyn', 'side', 'x', 'y']);
  });
});
