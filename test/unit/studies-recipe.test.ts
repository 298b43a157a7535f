// Study recipes: validation that names the field, grid expansion into cells, variables and scaling.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RunConfigSchema } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { expandGrid, parseRecipe, recipeVariables, scaleRecipe, setPath, substituteVariables, type StudyRecipeInput } from '../../src-shared/studies.ts';

const recipe = (over: Partial<StudyRecipeInput> = {}): StudyRecipeInput => ({
  name: 'grid',
  title: 'A grid',
  base: { training: { maxSteps: 5 } },
  axes: [
    { name: 'method', values: [{ method: 'lora' }, { method: 'lora-plus', 'loraPlus.ratio': 4 }], labels: ['LoRA', 'LoRA+ λ=4'] },
    { name: 'rank', path: 'lora.r', values: [2, 8] },
  ],
  seeds: [1, 2, 3],
  evaluations: [{ id: 'qqp', suite: 'qqp', datasets: { qqp: '/data/qqp.jsonl' }, limit: 10 }],
  figures: [{ id: 'f1', title: 'F1 by method', x: { axis: 'method' }, series: { axis: 'rank' }, metric: { evaluation: 'qqp', key: 'qqp.scores.f1' } }],
  ...over,
});

function invalidFields(raw: unknown): string[] {
  try {
    parseRecipe(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(WorkbenchError);
    return ((error as WorkbenchError).details as { issues: { path: string }[] }).issues.map((i) => i.path);
  }
  throw new Error('expected the recipe to be refused');
}

describe('study recipes', () => {
  it('expands axes x seeds into cells, the first axis slowest, each config valid and with its values set', () => {
    const cells = expandGrid(parseRecipe(recipe()));
    expect(cells).toHaveLength(2 * 2 * 3);
    expect(cells.map((c) => c.key).slice(0, 4)).toEqual([
      'method=LoRA rank=2 seed=1',
      'method=LoRA rank=2 seed=2',
      'method=LoRA rank=2 seed=3',
      'method=LoRA rank=8 seed=1',
    ]);
    expect(new Set(cells.map((c) => c.key)).size).toBe(12);
    const last = RunConfigSchema.parse(cells[11]!.config);
    expect(last).toMatchObject({ method: 'lora-plus', loraPlus: { ratio: 4 }, lora: { r: 8 }, training: { seed: 3, maxSteps: 5 } });
    const first = RunConfigSchema.parse(cells[0]!.config);
    expect(first).toMatchObject({ method: 'lora', lora: { r: 2 }, training: { seed: 1 } });
    expect(first).not.toHaveProperty('loraPlus'); // each cell keeps only its own method's sections
    expect(cells[0]!.levels).toEqual({ method: 'LoRA', rank: '2' });
    expect(cells.map((c) => c.position)).toEqual([...Array(12).keys()]);
  });

  it('names the field of every mistake', () => {
    expect(invalidFields({ ...recipe(), name: '' })).toContain('name');
    expect(invalidFields(recipe({ axes: [{ name: 'x', values: [] }] }))).toContain('axes.0.values');
    expect(invalidFields(recipe({ axes: [{ name: 'x', values: [1, 2] }] }))).toContain('axes.0.values.0');
    expect(invalidFields(recipe({ axes: [{ name: 'x', path: 'lora.r', values: [1, 2], labels: ['a'] }] }))).toContain('axes.0.labels');
    expect(invalidFields(recipe({ evaluations: [{ id: 'q', suite: 'nope' as 'qqp', datasets: {} }] }))).toContain('evaluations.0.suite');
    expect(invalidFields(recipe({ figures: [{ id: 'f', title: 't', x: { axis: 'depth' }, metric: { evaluation: 'qqp', key: 'k' } }] }))).toContain(
      'figures.0.x.axis',
    );
    expect(invalidFields(recipe({ figures: [{ id: 'f', title: 't', x: { axis: 'rank' }, metric: { evaluation: 'bias', key: 'k' } }] }))).toContain(
      'figures.0.metric.evaluation',
    );
    expect(invalidFields(recipe({ axes: [{ name: 'ratio', path: 'data.imbalance.ratio', values: [1, 2] }], figures: [] }))).toContain('axes.0.path');
  });

  it('refuses a cell whose config the run schema refuses, naming the cell and the field', () => {
    const bad = parseRecipe(recipe({ axes: [{ name: 'rank', path: 'lora.r', values: [8, 0] }], figures: [] }));
    expect(() => expandGrid(bad)).toThrow(/cell "rank=0 seed=1".*lora\.r/);
    const unknown = parseRecipe(recipe({ axes: [{ name: 'depth', path: 'lora.depth', values: [1] }], figures: [] }));
    // The run schema is strict: it names the unknown setting with the cell.
    expect(() => expandGrid(unknown)).toThrow(/cell "depth=1 seed=1".*lora.*depth/);
  });

  it('sets data.… paths on the training-data preparation, not on the run config', () => {
    const cells = expandGrid(
      parseRecipe(
        recipe({
          data: { source: '/d.jsonl', prompt: '{q}', completion: ' {a}', imbalance: { field: 'a', majority: '0', ratio: 1 } },
          axes: [{ name: 'imbalance', path: 'data.imbalance.ratio', values: [1, 5] }],
          seeds: [7],
          figures: [],
        }),
      ),
    );
    expect(cells.map((c) => c.data?.imbalance?.ratio)).toEqual([1, 5]);
    expect(Object.keys(cells[1]!.config).sort()).toEqual(['method', 'name', 'training']);
  });

  it('setPath copies, creates objects on the way and replaces arrays whole', () => {
    const original = { biasAware: { taskMixture: [1, 1], lambdaBias: 0.1 } };
    const changed = setPath(original, 'biasAware.taskMixture', [1, 9]);
    expect(changed).toEqual({ biasAware: { taskMixture: [1, 9], lambdaBias: 0.1 } });
    expect(original.biasAware.taskMixture).toEqual([1, 1]);
    expect(setPath({}, 'a.b.c', 1)).toEqual({ a: { b: { c: 1 } } });
  });

  it('replaces ${variables} and says which one is missing; scaling sets steps, rows, model and seeds', () => {
    const raw = recipe({ evaluations: [{ id: 'qqp', suite: 'qqp', datasets: { qqp: '${data}/qqp.jsonl' } }] });
    expect(recipeVariables(raw)).toEqual(['data']);
    expect(() => substituteVariables(raw, {})).toThrow(/evaluations\.0\.datasets\.qqp uses \$\{data\}.*--data/);
    const parsed = parseRecipe(substituteVariables(raw, { data: '/shared/data' }));
    expect(parsed.evaluations[0]!.datasets.qqp).toBe('/shared/data/qqp.jsonl');
    const scaled = scaleRecipe(parsed, { steps: 3, rows: 7, model: '/models/m', seeds: [5] });
    expect(scaled.base).toMatchObject({ model: '/models/m', training: { maxSteps: 3 } });
    expect(scaled.evaluations[0]).toMatchObject({ limit: 7, model: '/models/m' });
    expect(expandGrid(scaled)).toHaveLength(4);
  });
});

describe('built-in recipes (resources/studies)', () => {
  const dir = path.join(import.meta.dirname, '..', '..', 'resources', 'studies');
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

  it.each(files)('%s validates, names its file, expands and says what it redraws', (file) => {
    const raw = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Record<string, unknown>;
    const recipe = parseRecipe(substituteVariables(raw, { data: '/shared/data' }));
    expect(`${recipe.name}.json`).toBe(file);
    const cells = expandGrid(recipe);
    // A generation recipe: an expert and a generation cell per task and seed.
    const points = recipe.generation ? recipe.generation.tasks.length * 2 : recipe.axes.reduce((n, a) => n * a.values.length, 1);
    expect(cells.length).toBe(points * recipe.seeds.length);
    expect(recipe.figures.length).toBeGreaterThan(0);
    if (recipe.paper) {
      expect(recipe.paper.claims.length).toBeGreaterThan(0);
      for (const claim of recipe.paper.claims) if (claim.figure) expect(recipe.figures.map((f) => f.id)).toContain(claim.figure);
    }
    // Scaling reaches every run and every evaluation.
    const small = expandGrid(scaleRecipe(recipe, { steps: 2, rows: 3 }));
    expect(small.every((c) => (c.config.training as { maxSteps: number }).maxSteps === 2)).toBe(true);
  });

  it('has one recipe for each paper', () => {
    const papers = files.map((f) => (JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as { paper?: { title: string } }).paper?.title).filter(Boolean);
    expect(new Set(papers.map((t) => t!.split(' ')[0]))).toEqual(new Set(['Semantic-guided', 'Bias-aware', 'Improved', 'SG-LoRA:']));
  });
});
