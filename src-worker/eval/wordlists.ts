// The word lists the perturbations draw from. Defaults ship in resources/wordlists/ (written for
// this project); demographic term sets can instead come from a file read at run time, such as
// bias-bench's bias_attribute_words.json ({"gender": [["he","she"], ...], "race": [...], ...}).
import contractions from '../../resources/wordlists/contractions.json' with { type: 'json' };
import demographicTerms from '../../resources/wordlists/demographic-terms.json' with { type: 'json' };
import dialect from '../../resources/wordlists/dialect.json' with { type: 'json' };
import fillers from '../../resources/wordlists/fillers.json' with { type: 'json' };
import keyboard from '../../resources/wordlists/keyboard.json' with { type: 'json' };
import misspellings from '../../resources/wordlists/misspellings.json' with { type: 'json' };
import names from '../../resources/wordlists/names.json' with { type: 'json' };
import synonyms from '../../resources/wordlists/synonyms.json' with { type: 'json' };
import { WorkbenchError } from '../../src-shared/errors.ts';
import { readTextFile } from '../data/readers/common.ts';

export interface WordLists {
  /** Lowercase letter -> the letters around it on a QWERTY keyboard. */
  keyboardNeighbours: Record<string, string>;
  /** Lowercase word -> replacements. */
  synonyms: Record<string, string[]>;
  misspellings: Record<string, string[]>;
  /** [expansion, contraction], e.g. ["do not", "don't"]. */
  contractions: [string, string][];
  fillers: string[];
  /** Name lists; a name is swapped for another of the same list. */
  names: Record<string, string[]>;
  /** Sets of lowercase terms swapped with each other (pairs or larger). */
  demographicTermSets: string[][];
  /** Lowercase Standard American English word -> African American English spellings (dialect.json). */
  dialect: Record<string, string[]>;
}

export const DEFAULT_WORD_LISTS: WordLists = {
  keyboardNeighbours: keyboard.neighbours as Record<string, string>,
  synonyms: synonyms.synonyms as Record<string, string[]>,
  misspellings: misspellings.misspellings as Record<string, string[]>,
  contractions: contractions.pairs as [string, string][],
  fillers: fillers.fillers,
  names: { female: names.female, male: names.male },
  demographicTermSets: demographicTerms.sets,
  dialect: dialect.mapping as Record<string, string[]>,
};

/**
 * Reads term sets from a JSON object of category -> list of word tuples (bias-bench's format),
 * keeping the given categories (all when omitted). Words are lowercased; tuples shorter than two are errors.
 */
export async function readDemographicTermSets(path: string, categories?: string[]): Promise<string[][]> {
  const text = await readTextFile(path, 'Word list');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new WorkbenchError('invalid_input', `Word list ${path} is not valid JSON (${(e as Error).message}).`, { path });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new WorkbenchError('invalid_input', `Word list ${path} must be a JSON object of category -> list of word tuples.`, { path });
  }
  const table = value as Record<string, unknown>;
  const wanted = categories ?? Object.keys(table);
  const sets: string[][] = [];
  for (const category of wanted) {
    const list = table[category];
    if (!Array.isArray(list)) {
      throw new WorkbenchError('invalid_input', `Word list ${path} has no category "${category}" (it has ${Object.keys(table).join(', ')}).`, { path });
    }
    list.forEach((tuple, k) => {
      if (!Array.isArray(tuple) || tuple.length < 2 || !tuple.every((w) => typeof w === 'string' && w.trim() !== '')) {
        throw new WorkbenchError('invalid_input', `Word list ${path}: ${category}[${k}] must list at least two words.`, { path });
      }
      sets.push((tuple as string[]).map((w) => w.toLowerCase()));
    });
  }
  return sets;
}
