// Writes resources/datasets/sample/train.jsonl: the small instruction/QA dataset embedded in the app.
// Every fact lives in the tables below (public knowledge); nothing is downloaded, and a seeded PRNG
// makes the output byte-identical on every run, so the README's SHA-256 stays valid.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SampleRow {
  prompt: string;
  completion: string;
  task: TaskName;
}

export type TaskName = 'antonym' | 'plural' | 'past_tense' | 'comparative' | 'arithmetic' | 'larger_number' | 'capital' | 'category' | 'sentiment' | 'spelling';

const SEED = 20240607;

/** mulberry32: tiny, fast and identical in every JS engine. */
function makeRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle<T>(items: T[], rng: () => number): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const pick = <T>(items: readonly T[], rng: () => number): T => items[Math.floor(rng() * items.length)]!;

const qa = (question: string, answer: string, task: TaskName): SampleRow => ({ prompt: `Question: ${question}\nAnswer:`, completion: ` ${answer}`, task });

// ---- word tables ---------------------------------------------------------------------------

const ANTONYMS: ReadonlyArray<readonly [string, string]> = [
  ['hot', 'cold'],
  ['big', 'small'],
  ['up', 'down'],
  ['day', 'night'],
  ['fast', 'slow'],
  ['happy', 'sad'],
  ['light', 'dark'],
  ['old', 'young'],
  ['open', 'closed'],
  ['rich', 'poor'],
  ['hard', 'soft'],
  ['wet', 'dry'],
  ['full', 'empty'],
  ['early', 'late'],
  ['strong', 'weak'],
  ['tall', 'short'],
  ['thick', 'thin'],
  ['high', 'low'],
  ['loud', 'quiet'],
  ['clean', 'dirty'],
  ['good', 'bad'],
  ['true', 'false'],
  ['left', 'right'],
  ['in', 'out'],
  ['win', 'lose'],
  ['love', 'hate'],
  ['push', 'pull'],
  ['buy', 'sell'],
  ['begin', 'end'],
  ['first', 'last'],
  ['near', 'far'],
  ['inside', 'outside'],
  ['above', 'below'],
  ['before', 'after'],
  ['cheap', 'expensive'],
  ['easy', 'difficult'],
  ['safe', 'dangerous'],
  ['friend', 'enemy'],
  ['north', 'south'],
  ['east', 'west'],
  ['war', 'peace'],
  ['laugh', 'cry'],
  ['sweet', 'sour'],
  ['smooth', 'rough'],
  ['wide', 'narrow'],
  ['deep', 'shallow'],
  ['brave', 'afraid'],
  ['kind', 'cruel'],
  ['always', 'never'],
  ['everything', 'nothing'],
  ['arrive', 'leave'],
  ['remember', 'forget'],
  ['accept', 'refuse'],
  ['question', 'answer'],
  ['summer', 'winter'],
  ['top', 'bottom'],
  ['black', 'white'],
  ['male', 'female'],
  ['alive', 'dead'],
  ['asleep', 'awake'],
  ['give', 'take'],
  ['more', 'less'],
  ['most', 'least'],
  ['many', 'few'],
  ['same', 'different'],
  ['public', 'private'],
  ['sharp', 'blunt'],
  ['tight', 'loose'],
  ['wild', 'tame'],
  ['polite', 'rude'],
  ['borrow', 'lend'],
  ['entrance', 'exit'],
];

// Irregular and spelling-rule nouns mixed with plain ones so both the rule and the exceptions are visible.
const PLURALS: ReadonlyArray<readonly [string, string]> = [
  ['cat', 'cats'],
  ['dog', 'dogs'],
  ['book', 'books'],
  ['tree', 'trees'],
  ['car', 'cars'],
  ['house', 'houses'],
  ['bird', 'birds'],
  ['door', 'doors'],
  ['river', 'rivers'],
  ['girl', 'girls'],
  ['boy', 'boys'],
  ['hand', 'hands'],
  ['road', 'roads'],
  ['ship', 'ships'],
  ['star', 'stars'],
  ['cup', 'cups'],
  ['pen', 'pens'],
  ['shoe', 'shoes'],
  ['apple', 'apples'],
  ['egg', 'eggs'],
  ['table', 'tables'],
  ['chair', 'chairs'],
  ['window', 'windows'],
  ['king', 'kings'],
  ['farmer', 'farmers'],
  ['friend', 'friends'],
  ['garden', 'gardens'],
  ['hill', 'hills'],
  ['song', 'songs'],
  ['letter', 'letters'],
  ['flower', 'flowers'],
  ['horse', 'horses'],
  ['cloud', 'clouds'],
  ['bag', 'bags'],
  ['lamp', 'lamps'],
  ['coat', 'coats'],
  ['ring', 'rings'],
  ['stone', 'stones'],
  ['field', 'fields'],
  ['bell', 'bells'],
  ['cake', 'cakes'],
  ['word', 'words'],
  ['name', 'names'],
  ['town', 'towns'],
  ['box', 'boxes'],
  ['fox', 'foxes'],
  ['bus', 'buses'],
  ['glass', 'glasses'],
  ['dish', 'dishes'],
  ['brush', 'brushes'],
  ['church', 'churches'],
  ['watch', 'watches'],
  ['match', 'matches'],
  ['bench', 'benches'],
  ['class', 'classes'],
  ['kiss', 'kisses'],
  ['wish', 'wishes'],
  ['tax', 'taxes'],
  ['dress', 'dresses'],
  ['beach', 'beaches'],
  ['city', 'cities'],
  ['baby', 'babies'],
  ['lady', 'ladies'],
  ['story', 'stories'],
  ['party', 'parties'],
  ['country', 'countries'],
  ['family', 'families'],
  ['berry', 'berries'],
  ['cherry', 'cherries'],
  ['fly', 'flies'],
  ['penny', 'pennies'],
  ['army', 'armies'],
  ['day', 'days'],
  ['key', 'keys'],
  ['toy', 'toys'],
  ['monkey', 'monkeys'],
  ['valley', 'valleys'],
  ['donkey', 'donkeys'],
  ['knife', 'knives'],
  ['wife', 'wives'],
  ['life', 'lives'],
  ['leaf', 'leaves'],
  ['wolf', 'wolves'],
  ['half', 'halves'],
  ['loaf', 'loaves'],
  ['shelf', 'shelves'],
  ['thief', 'thieves'],
  ['calf', 'calves'],
  ['potato', 'potatoes'],
  ['tomato', 'tomatoes'],
  ['hero', 'heroes'],
  ['echo', 'echoes'],
  ['man', 'men'],
  ['woman', 'women'],
  ['child', 'children'],
  ['foot', 'feet'],
  ['tooth', 'teeth'],
  ['goose', 'geese'],
  ['mouse', 'mice'],
  ['ox', 'oxen'],
  ['person', 'people'],
  ['sheep', 'sheep'],
  ['fish', 'fish'],
  ['deer', 'deer'],
  ['louse', 'lice'],
  ['cactus', 'cacti'],
  ['crisis', 'crises'],
];

const PAST_TENSES: ReadonlyArray<readonly [string, string]> = [
  ['walk', 'walked'],
  ['talk', 'talked'],
  ['jump', 'jumped'],
  ['play', 'played'],
  ['look', 'looked'],
  ['open', 'opened'],
  ['call', 'called'],
  ['help', 'helped'],
  ['work', 'worked'],
  ['watch', 'watched'],
  ['wash', 'washed'],
  ['ask', 'asked'],
  ['clean', 'cleaned'],
  ['cook', 'cooked'],
  ['climb', 'climbed'],
  ['kick', 'kicked'],
  ['laugh', 'laughed'],
  ['learn', 'learned'],
  ['listen', 'listened'],
  ['paint', 'painted'],
  ['pull', 'pulled'],
  ['push', 'pushed'],
  ['rain', 'rained'],
  ['start', 'started'],
  ['turn', 'turned'],
  ['visit', 'visited'],
  ['want', 'wanted'],
  ['answer', 'answered'],
  ['fill', 'filled'],
  ['follow', 'followed'],
  ['like', 'liked'],
  ['love', 'loved'],
  ['live', 'lived'],
  ['move', 'moved'],
  ['smile', 'smiled'],
  ['close', 'closed'],
  ['dance', 'danced'],
  ['hope', 'hoped'],
  ['use', 'used'],
  ['bake', 'baked'],
  ['hate', 'hated'],
  ['share', 'shared'],
  ['carry', 'carried'],
  ['cry', 'cried'],
  ['try', 'tried'],
  ['study', 'studied'],
  ['worry', 'worried'],
  ['marry', 'married'],
  ['stop', 'stopped'],
  ['plan', 'planned'],
  ['drop', 'dropped'],
  ['hug', 'hugged'],
  ['clap', 'clapped'],
  ['rob', 'robbed'],
  ['go', 'went'],
  ['come', 'came'],
  ['see', 'saw'],
  ['eat', 'ate'],
  ['drink', 'drank'],
  ['run', 'ran'],
  ['swim', 'swam'],
  ['sing', 'sang'],
  ['write', 'wrote'],
  ['read', 'read'],
  ['speak', 'spoke'],
  ['take', 'took'],
  ['give', 'gave'],
  ['make', 'made'],
  ['find', 'found'],
  ['think', 'thought'],
  ['bring', 'brought'],
  ['buy', 'bought'],
  ['teach', 'taught'],
  ['catch', 'caught'],
  ['fight', 'fought'],
  ['sell', 'sold'],
  ['tell', 'told'],
  ['know', 'knew'],
  ['grow', 'grew'],
  ['throw', 'threw'],
  ['fly', 'flew'],
  ['draw', 'drew'],
  ['begin', 'began'],
  ['break', 'broke'],
  ['choose', 'chose'],
  ['drive', 'drove'],
  ['ride', 'rode'],
  ['rise', 'rose'],
  ['fall', 'fell'],
  ['feel', 'felt'],
  ['keep', 'kept'],
  ['sleep', 'slept'],
  ['leave', 'left'],
  ['meet', 'met'],
  ['send', 'sent'],
  ['spend', 'spent'],
  ['build', 'built'],
  ['lose', 'lost'],
  ['hold', 'held'],
  ['stand', 'stood'],
  ['understand', 'understood'],
  ['sit', 'sat'],
  ['win', 'won'],
  ['get', 'got'],
  ['forget', 'forgot'],
  ['hear', 'heard'],
  ['say', 'said'],
  ['pay', 'paid'],
  ['lay', 'laid'],
  ['put', 'put'],
  ['cut', 'cut'],
  ['hit', 'hit'],
  ['let', 'let'],
  ['shut', 'shut'],
  ['wear', 'wore'],
  ['tear', 'tore'],
  ['bite', 'bit'],
  ['hide', 'hid'],
  ['shake', 'shook'],
  ['wake', 'woke'],
  ['freeze', 'froze'],
  ['steal', 'stole'],
  ['blow', 'blew'],
  ['dig', 'dug'],
  ['feed', 'fed'],
  ['lead', 'led'],
  ['light', 'lit'],
  ['shoot', 'shot'],
];

const COMPARATIVES: ReadonlyArray<readonly [string, string]> = [
  ['tall', 'taller'],
  ['short', 'shorter'],
  ['old', 'older'],
  ['young', 'younger'],
  ['fast', 'faster'],
  ['slow', 'slower'],
  ['strong', 'stronger'],
  ['weak', 'weaker'],
  ['cold', 'colder'],
  ['warm', 'warmer'],
  ['long', 'longer'],
  ['small', 'smaller'],
  ['high', 'higher'],
  ['low', 'lower'],
  ['kind', 'kinder'],
  ['clean', 'cleaner'],
  ['cheap', 'cheaper'],
  ['loud', 'louder'],
  ['dark', 'darker'],
  ['deep', 'deeper'],
  ['rich', 'richer'],
  ['quick', 'quicker'],
  ['sharp', 'sharper'],
  ['soft', 'softer'],
  ['big', 'bigger'],
  ['hot', 'hotter'],
  ['thin', 'thinner'],
  ['fat', 'fatter'],
  ['wet', 'wetter'],
  ['sad', 'sadder'],
  ['large', 'larger'],
  ['wide', 'wider'],
  ['safe', 'safer'],
  ['nice', 'nicer'],
  ['late', 'later'],
  ['close', 'closer'],
  ['happy', 'happier'],
  ['easy', 'easier'],
  ['busy', 'busier'],
  ['heavy', 'heavier'],
  ['funny', 'funnier'],
  ['early', 'earlier'],
  ['dirty', 'dirtier'],
  ['pretty', 'prettier'],
  ['angry', 'angrier'],
  ['lucky', 'luckier'],
  ['good', 'better'],
  ['bad', 'worse'],
  ['far', 'farther'],
  ['little', 'less'],
  ['many', 'more'],
  ['beautiful', 'more beautiful'],
  ['difficult', 'more difficult'],
  ['important', 'more important'],
  ['expensive', 'more expensive'],
  ['careful', 'more careful'],
  ['famous', 'more famous'],
  ['dangerous', 'more dangerous'],
];

const NUMBER_WORDS = [
  'zero',
  'one',
  'two',
  'three',
  'four',
  'five',
  'six',
  'seven',
  'eight',
  'nine',
  'ten',
  'eleven',
  'twelve',
  'thirteen',
  'fourteen',
  'fifteen',
  'sixteen',
  'seventeen',
  'eighteen',
  'nineteen',
  'twenty',
] as const;

const CAPITALS: ReadonlyArray<readonly [string, string]> = [
  ['France', 'Paris'],
  ['Germany', 'Berlin'],
  ['Italy', 'Rome'],
  ['Spain', 'Madrid'],
  ['Portugal', 'Lisbon'],
  ['England', 'London'],
  ['Ireland', 'Dublin'],
  ['Scotland', 'Edinburgh'],
  ['Wales', 'Cardiff'],
  ['Norway', 'Oslo'],
  ['Sweden', 'Stockholm'],
  ['Finland', 'Helsinki'],
  ['Denmark', 'Copenhagen'],
  ['Iceland', 'Reykjavik'],
  ['Poland', 'Warsaw'],
  ['Austria', 'Vienna'],
  ['Hungary', 'Budapest'],
  ['Greece', 'Athens'],
  ['Russia', 'Moscow'],
  ['Ukraine', 'Kyiv'],
  ['Belgium', 'Brussels'],
  ['the Netherlands', 'Amsterdam'],
  ['Switzerland', 'Bern'],
  ['the Czech Republic', 'Prague'],
  ['Romania', 'Bucharest'],
  ['Bulgaria', 'Sofia'],
  ['Serbia', 'Belgrade'],
  ['Croatia', 'Zagreb'],
  ['Turkey', 'Ankara'],
  ['Egypt', 'Cairo'],
  ['Kenya', 'Nairobi'],
  ['Nigeria', 'Abuja'],
  ['Ghana', 'Accra'],
  ['Ethiopia', 'Addis Ababa'],
  ['Morocco', 'Rabat'],
  ['Algeria', 'Algiers'],
  ['Tunisia', 'Tunis'],
  ['Senegal', 'Dakar'],
  ['Uganda', 'Kampala'],
  ['Japan', 'Tokyo'],
  ['China', 'Beijing'],
  ['South Korea', 'Seoul'],
  ['India', 'New Delhi'],
  ['Pakistan', 'Islamabad'],
  ['Thailand', 'Bangkok'],
  ['Vietnam', 'Hanoi'],
  ['Indonesia', 'Jakarta'],
  ['the Philippines', 'Manila'],
  ['Iran', 'Tehran'],
  ['Iraq', 'Baghdad'],
  ['Israel', 'Jerusalem'],
  ['Saudi Arabia', 'Riyadh'],
  ['Afghanistan', 'Kabul'],
  ['Nepal', 'Kathmandu'],
  ['Mongolia', 'Ulaanbaatar'],
  ['Canada', 'Ottawa'],
  ['the United States', 'Washington'],
  ['Mexico', 'Mexico City'],
  ['Cuba', 'Havana'],
  ['Brazil', 'Brasilia'],
  ['Argentina', 'Buenos Aires'],
  ['Chile', 'Santiago'],
  ['Peru', 'Lima'],
  ['Colombia', 'Bogota'],
  ['Venezuela', 'Caracas'],
  ['Uruguay', 'Montevideo'],
  ['Australia', 'Canberra'],
  ['New Zealand', 'Wellington'],
];

const CATEGORIES: ReadonlyArray<readonly [string, readonly string[]]> = [
  [
    'an animal',
    [
      'dog',
      'cat',
      'horse',
      'cow',
      'lion',
      'tiger',
      'elephant',
      'rabbit',
      'bear',
      'wolf',
      'fox',
      'sheep',
      'goat',
      'mouse',
      'deer',
      'camel',
      'zebra',
      'monkey',
      'pig',
      'donkey',
    ],
  ],
  ['a bird', ['sparrow', 'eagle', 'owl', 'crow', 'parrot', 'robin', 'swan', 'duck', 'pigeon', 'hawk', 'penguin', 'ostrich']],
  [
    'a fruit',
    ['apple', 'banana', 'orange', 'pear', 'grape', 'lemon', 'cherry', 'peach', 'plum', 'mango', 'melon', 'strawberry', 'pineapple', 'apricot', 'fig'],
  ],
  ['a vegetable', ['carrot', 'potato', 'onion', 'cabbage', 'pea', 'bean', 'lettuce', 'spinach', 'turnip', 'leek', 'cucumber', 'radish', 'celery', 'broccoli']],
  ['a color', ['red', 'blue', 'green', 'yellow', 'purple', 'pink', 'brown', 'black', 'white', 'gray', 'violet']],
  ['a tool', ['hammer', 'saw', 'drill', 'wrench', 'screwdriver', 'chisel', 'shovel', 'rake', 'axe', 'pliers', 'spade']],
  ['a vehicle', ['car', 'bus', 'truck', 'bicycle', 'train', 'boat', 'ship', 'airplane', 'tractor', 'motorcycle', 'van']],
  ['a musical instrument', ['piano', 'violin', 'guitar', 'drum', 'flute', 'trumpet', 'harp', 'cello', 'organ', 'clarinet']],
  ['a part of the body', ['hand', 'foot', 'head', 'arm', 'leg', 'nose', 'ear', 'eye', 'knee', 'elbow', 'shoulder', 'finger']],
];

const SPELLING_WORDS = [
  'cat',
  'dog',
  'sun',
  'moon',
  'tree',
  'fish',
  'bird',
  'book',
  'door',
  'milk',
  'rain',
  'snow',
  'ship',
  'king',
  'gold',
  'hand',
  'road',
  'star',
  'wind',
  'fire',
  'lamp',
  'cake',
  'ring',
  'bell',
  'frog',
  'duck',
  'goat',
  'corn',
  'salt',
  'rice',
  'apple',
  'house',
  'water',
  'bread',
  'chair',
  'table',
  'horse',
  'river',
  'stone',
  'green',
  'happy',
  'light',
  'night',
  'music',
  'paper',
  'sheep',
  'queen',
  'world',
  'train',
  'plant',
  'cloud',
  'heart',
  'money',
  'sugar',
  'lemon',
  'tiger',
  'garden',
  'window',
  'flower',
  'orange',
  'yellow',
  'friend',
  'summer',
  'winter',
  'basket',
  'candle',
  'castle',
  'forest',
];

const SENTIMENT_SUBJECTS = [
  'The food',
  'The movie',
  'The hotel room',
  'The service',
  'The book',
  'The concert',
  'The new phone',
  'The weather',
  'The game',
  'The teacher',
  'The coffee',
  'The trip',
  'The show',
  'The restaurant',
  'The song',
  'The park',
  'The meal',
  'The staff',
  'The class',
  'The shop',
  'The film',
  'The story',
  'The party',
  'The car',
];
const POSITIVE_WORDS = [
  'wonderful',
  'excellent',
  'great',
  'delightful',
  'lovely',
  'amazing',
  'fantastic',
  'pleasant',
  'brilliant',
  'superb',
  'charming',
  'enjoyable',
  'perfect',
  'friendly',
  'beautiful',
  'good',
  'fun',
  'helpful',
];
const NEGATIVE_WORDS = [
  'terrible',
  'awful',
  'horrible',
  'boring',
  'dreadful',
  'disappointing',
  'poor',
  'bad',
  'rude',
  'dirty',
  'unpleasant',
  'annoying',
  'miserable',
  'painful',
  'dull',
  'broken',
  'useless',
  'noisy',
];
const INTENSIFIERS = ['', 'very ', 'really ', 'truly ', 'quite ', 'so '];
const LINKING_VERBS = ['was', 'is', 'seemed', 'felt'];
const POSITIVE_ENDINGS = ['and I would go again.', 'and I loved it.', 'and we were very happy.', 'and I recommend it.'];
const NEGATIVE_ENDINGS = ['and I will not go again.', 'and I hated it.', 'and we were very unhappy.', 'and I want my money back.'];

// ---- row builders --------------------------------------------------------------------------

function lexicalRows(): SampleRow[] {
  const rows: SampleRow[] = [];
  for (const [a, b] of ANTONYMS) {
    rows.push(qa(`What is the opposite of ${a}?`, b, 'antonym'));
    rows.push(qa(`What is the opposite of ${b}?`, a, 'antonym'));
  }
  for (const [one, many] of PLURALS) rows.push(qa(`What is the plural of ${one}?`, many, 'plural'));
  for (const [verb, past] of PAST_TENSES) rows.push(qa(`What is the past tense of ${verb}?`, past, 'past_tense'));
  for (const [adj, comp] of COMPARATIVES) rows.push(qa(`What is the comparative of ${adj}?`, comp, 'comparative'));
  for (const word of SPELLING_WORDS) rows.push(qa(`How do you spell ${word}?`, word.split('').join('-'), 'spelling'));
  return rows;
}

function arithmeticRows(rng: () => number): SampleRow[] {
  const rows: SampleRow[] = [];
  const w = (n: number) => NUMBER_WORDS[n]!;
  for (let a = 0; a <= 10; a++) for (let b = 0; b <= 10; b++) rows.push(qa(`What is ${w(a)} plus ${w(b)}?`, w(a + b), 'arithmetic'));
  for (let a = 1; a <= 20; a++)
    for (let b = 0; b <= a; b++) {
      // All 231 subtractions would outweigh the other tasks; keep about half, chosen by the seeded PRNG.
      if (rng() < 0.45) rows.push(qa(`What is ${w(a)} minus ${w(b)}?`, w(a - b), 'arithmetic'));
    }
  for (let a = 1; a <= 5; a++) for (let b = 1; b <= 4; b++) rows.push(qa(`What is ${w(a)} times ${w(b)}?`, w(a * b), 'arithmetic'));
  const seen = new Set<string>();
  while (seen.size < 150) {
    const a = Math.floor(rng() * 21);
    const b = Math.floor(rng() * 21);
    const key = `${a},${b}`;
    if (a === b || seen.has(key)) continue;
    seen.add(key);
    rows.push(qa(`Which is larger, ${w(a)} or ${w(b)}?`, w(Math.max(a, b)), 'larger_number'));
  }
  return rows;
}

function knowledgeRows(): SampleRow[] {
  const rows: SampleRow[] = [];
  for (const [country, city] of CAPITALS) {
    rows.push(qa(`What is the capital of ${country}?`, city, 'capital'));
    rows.push(qa(`${city} is the capital of which country?`, country, 'capital'));
  }
  for (const [category, members] of CATEGORIES) {
    for (const m of members) {
      const article = /^[aeiou]/.test(m) ? 'an' : 'a';
      rows.push(qa(`What kind of thing is ${article} ${m}?`, category, 'category'));
    }
  }
  return rows;
}

function sentimentRows(rng: () => number, count: number): SampleRow[] {
  const rows: SampleRow[] = [];
  const seen = new Set<string>();
  while (rows.length < count) {
    const positive = rng() < 0.5;
    const words = positive ? POSITIVE_WORDS : NEGATIVE_WORDS;
    const subject = pick(SENTIMENT_SUBJECTS, rng);
    const verb = pick(LINKING_VERBS, rng);
    const shape = rng();
    let review: string;
    if (shape < 0.4) {
      review = `${subject} ${verb} ${pick(INTENSIFIERS, rng)}${pick(words, rng)}.`;
    } else if (shape < 0.7) {
      const first = pick(words, rng);
      let second = pick(words, rng);
      while (second === first) second = pick(words, rng);
      review = `${subject} ${verb} ${first} and ${second}.`;
    } else if (shape < 0.85) {
      review = `${subject} ${verb} ${pick(INTENSIFIERS, rng)}${pick(words, rng)}, ${pick(positive ? POSITIVE_ENDINGS : NEGATIVE_ENDINGS, rng)}`;
    } else {
      // Negation flips the label, so the task cannot be solved from the adjective alone.
      const opposite = positive ? NEGATIVE_WORDS : POSITIVE_WORDS;
      const isPast = verb === 'was' || verb === 'seemed' || verb === 'felt';
      review = `${subject} ${isPast ? 'was' : 'is'} not ${pick(opposite, rng)} at all.`;
    }
    if (seen.has(review)) continue;
    seen.add(review);
    rows.push({ prompt: `Review: ${review}\nSentiment:`, completion: positive ? ' positive' : ' negative', task: 'sentiment' });
  }
  return rows;
}

/** All rows in their final, shuffled order. */
export function buildSampleRows(seed = SEED): SampleRow[] {
  const rng = makeRng(seed);
  const rows = [...lexicalRows(), ...arithmeticRows(rng), ...knowledgeRows(), ...sentimentRows(rng, 320)];
  const prompts = new Set<string>();
  for (const r of rows) {
    if (prompts.has(r.prompt)) throw new Error(`duplicate prompt in the sample tables: ${JSON.stringify(r.prompt)}`);
    prompts.add(r.prompt);
  }
  return shuffle(rows, rng);
}

export function toJsonl(rows: readonly SampleRow[]): string {
  return rows.map((r) => JSON.stringify({ prompt: r.prompt, completion: r.completion })).join('\n') + '\n';
}

function readme(rows: readonly SampleRow[], jsonl: string): string {
  const sha = createHash('sha256').update(jsonl).digest('hex');
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.task, (counts.get(r.task) ?? 0) + 1);
  const table = [...counts]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([task, n]) => `| ${task} | ${n} |`)
    .join('\n');
  return `# Sample dataset

Small instruction/QA data embedded in lora-workbench so that a first run works without any download.
Each line of \`train.jsonl\` is \`{"prompt": "...", "completion": "..."}\`; completions start with a space
(GPT-2 tokenization) and carry no end-of-text token.

Example: \`{"prompt": "Question: What is the opposite of hot?\\nAnswer:", "completion": " cold"}\`

The tasks have learnable structure (spelling rules for plurals and past tenses, number words, a
fixed question template), so a LoRA run on the default model shows a falling loss within 30-100 steps.

## How it was made

\`npm run make:sample-data\` (scripts/make-sample-data.ts). Every fact is written in that script
(public general knowledge: word forms, number words, capitals, categories); sentiment reviews are
composed from word lists by a seeded PRNG (mulberry32, seed ${SEED}). Nothing is downloaded, and the
output is byte-identical on every run.

The default model's recipe (scripts/make-default-model.py) pretrains on these rows too, except the
rows whose prompt's SHA-256 starts with a hex digit below \`2\` (about 1/8 of them), which it holds
out to measure validation perplexity.

## Contents

- Rows: ${rows.length}
- SHA-256 of train.jsonl: \`${sha}\`
- License: CC0-1.0 (generated by the project; the facts are common knowledge)

| task | rows |
| --- | --- |
${table}
`;
}

function main(): void {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const outDir = path.join(root, 'resources', 'datasets', 'sample');
  const rows = buildSampleRows();
  const jsonl = toJsonl(rows);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'train.jsonl'), jsonl);
  writeFileSync(path.join(outDir, 'README.md'), readme(rows, jsonl));
  console.log(`wrote ${rows.length} rows to ${path.relative(root, outDir)}/train.jsonl`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
