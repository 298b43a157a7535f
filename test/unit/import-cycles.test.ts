// No module in src-* imports itself back through others: a cycle makes load order decide which
// binding is still undefined, and it hides which module owns what. Type-only imports count too,
// since they are how a cycle usually starts.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const roots = ['src-shared', 'src-main', 'src-worker', join('src-renderer', 'lib')];

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Relative import specifiers of a source file (static, re-export, side-effect and dynamic imports). */
function relativeImportsOf(source: string): string[] {
  const found = new Set<string>();
  for (const m of source.matchAll(/(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g)) {
    const spec = (m[1] ?? m[2] ?? m[3])!;
    if (spec.startsWith('.')) found.add(spec);
  }
  return [...found];
}

/** Every elementary cycle's first sighting in a depth-first walk, as the list of files around it. */
function findCycles(graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
  return cycles;
}

describe('import cycles', () => {
  it('no module in src-shared, src-main, src-worker or src-renderer/lib imports itself back', () => {
    const graph = new Map<string, string[]>();
    for (const folder of roots) {
      for (const file of tsFiles(join(root, folder))) {
        const targets = relativeImportsOf(readFileSync(file, 'utf8'))
          .map((spec) => resolve(dirname(file), spec))
          .filter((target) => target.endsWith('.ts'));
        graph.set(
          relative(root, file),
          targets.map((t) => relative(root, t)),
        );
      }
    }
    expect(graph.size).toBeGreaterThan(100);
    expect(findCycles(graph).map((cycle) => cycle.join(' -> '))).toEqual([]);
  });

  it('the walk finds a cycle of three and ignores a diamond', () => {
    const cyclic = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
    ]);
    expect(findCycles(cyclic)).toEqual([['a', 'b', 'c', 'a']]);
    const diamond = new Map([
      ['a', ['b', 'c']],
      ['b', ['d']],
      ['c', ['d']],
      ['d', []],
    ]);
    expect(findCycles(diamond)).toEqual([]);
  });
});
