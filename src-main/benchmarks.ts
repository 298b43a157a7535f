// "Get the data" (issue 15, finding 5): the bias and task benchmarks the evaluation suites read, downloaded
// from the repositories that publish them, pinned to a commit, each file checked against a SHA-256
// recorded here before it is kept. A downloaded benchmark lives in <dataDir>/benchmarks/<id>/ and its
// path goes straight into an evaluation (evals.start's datasets). Only files whose complete bytes were
// hashed when this list was written are listed (the source notes say where that is a part of the benchmark).
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BenchmarkStatus } from '../src-shared/api.ts';
import { WorkbenchError } from '../src-shared/errors.ts';
import type { WorkbenchPaths } from './paths.ts';

export interface BenchmarkFile {
  name: string;
  url: string;
  bytes: number;
  sha256: string;
}

export interface Benchmark {
  id: BenchmarkStatus['id'];
  label: string;
  /** Where the evaluation form takes it (evals.start datasets key). */
  datasetKey: BenchmarkStatus['datasetKey'];
  license: string;
  source: string;
  note: string;
  /** The evaluation reads the folder (several files) or the one file. */
  pathIs: 'folder' | 'file';
  files: BenchmarkFile[];
}

const raw = (repo: string, commit: string, file: string) => `https://raw.githubusercontent.com/${repo}/${commit}/${file}`;

export const benchmarks: Benchmark[] = [
  {
    id: 'crows-pairs',
    label: 'CrowS-Pairs',
    datasetKey: 'crowsPairs',
    license: 'CC BY-SA 4.0',
    pathIs: 'file',
    source: 'https://github.com/nyu-mll/crows-pairs',
    note: 'The whole benchmark: 1,508 sentence pairs over nine bias types.',
    files: [
      {
        name: 'crows_pairs_anonymized.csv',
        bytes: 437_764,
        sha256: 'dfb36986ce0502abbaf7055b9176da3d08d48e07df1251991b5dfbcbceab9d0c',
        url: raw('nyu-mll/crows-pairs', '8aaac11c485473159ec9328a65253a5be9a479dc', 'data/crows_pairs_anonymized.csv'),
      },
    ],
  },
  {
    id: 'stereoset',
    label: 'StereoSet',
    datasetKey: 'stereoSet',
    license: 'CC BY-SA 4.0',
    pathIs: 'folder',
    source: 'https://github.com/moinnadeem/StereoSet',
    note: 'The intrasentence dev examples for race (962) and religion (79), as redistributed by zjunlp/EditBias; gender, profession and the intersentence task are not included.',
    files: [
      {
        name: 'race_test.json',
        bytes: 1_993_382,
        sha256: '2973cdf2b9b66f0dd6b40263e6acaba4ac7d8f17832e6df2f8a105e1463e6a43',
        url: raw('zjunlp/EditBias', '5ecfebcf154a40107cf7e885ab0a3c8274378a5b', 'data/stereoset/race_test.json'),
      },
      {
        name: 'religion_test.json',
        bytes: 165_072,
        sha256: '07b8204e6b024c36fbbcae146bcd6cc3aa256db02e9cd50a13c45e467d9c4446',
        url: raw('zjunlp/EditBias', '5ecfebcf154a40107cf7e885ab0a3c8274378a5b', 'data/stereoset/religion_test.json'),
      },
    ],
  },
  {
    id: 'bbq',
    label: 'BBQ',
    datasetKey: 'bbq',
    license: 'CC BY 4.0',
    pathIs: 'folder',
    source: 'https://github.com/nyu-mll/BBQ',
    note: 'The Sexual_orientation category (864 questions); the other ten categories are not listed yet (their SHA-256 is not recorded here).',
    files: [
      {
        name: 'Sexual_orientation.jsonl',
        bytes: 729_010,
        sha256: '2c71036b9e7584fe589c42aef32c1a42bc01b9a5e9b1b8704342630cdb08cefd',
        url: raw('nyu-mll/BBQ', 'bea11bd97d79217245b5871acd247b9d6eb24598', 'data/Sexual_orientation.jsonl'),
      },
    ],
  },
  {
    id: 'hotpotqa',
    label: 'HotpotQA',
    datasetKey: 'hotpotqa',
    license: 'CC BY-SA 4.0',
    pathIs: 'file',
    source: 'https://hotpotqa.github.io',
    note: "IRCoT's 500-question subsample of the distractor dev set (StonyBrookNLP/ircot's processed_data), from a copy pinned by commit.",
    files: [
      {
        name: 'dev_subsampled.jsonl',
        bytes: 3_312_335,
        sha256: '837a919903fedf521211c4271f168ad5458488198e9c4d967bf5f3a579525ce8',
        url: raw('xindili-cmu/anlp-project-multihop', '11ba72982918286f4bc602fb0cd87b5e2a145860', 'processed_data/hotpotqa/dev_subsampled.jsonl'),
      },
    ],
  },
  {
    id: 'qqp',
    label: 'QQP',
    datasetKey: 'qqp',
    license: "Quora's terms (non-commercial research), via GLUE",
    pathIs: 'file',
    source: 'https://gluebenchmark.com/tasks',
    note: '8,999 labelled GLUE-QQP training pairs sampled by the PowerfulPromptFT authors (not the GLUE dev set).',
    files: [
      {
        name: 'train.json',
        bytes: 1_861_637,
        sha256: '90d61eea319216f1968490fe1fcd3d3e3aba6003ad0b1792dba235c2909042c2',
        url: raw('ZhengxiangShi/PowerfulPromptFT', 'd30afcc719deb8d148396b5f4c669cd1264465fb', 'data/glue_pretrain/QQP/train.json'),
      },
    ],
  },
];

/** Written beside a file once its SHA-256 matched: a later list need not hash it again. */
const VERIFIED_SUFFIX = '.sha256';

export interface BenchmarkStoreOptions {
  paths: Pick<WorkbenchPaths, 'dataDir'>;
  /** The URL a file is fetched from; tests point it at a loopback server. */
  urlOf?: (benchmark: Benchmark, file: BenchmarkFile) => string;
  catalog?: Benchmark[];
  timeoutMs?: number;
}

export class BenchmarkStore {
  private readonly catalog: Benchmark[];
  private readonly urlOf: (benchmark: Benchmark, file: BenchmarkFile) => string;
  private readonly timeoutMs: number;
  private readonly inFlight = new Map<string, Promise<BenchmarkStatus>>();

  constructor(private readonly options: BenchmarkStoreOptions) {
    this.catalog = options.catalog ?? benchmarks;
    this.urlOf = options.urlOf ?? ((_benchmark, file) => file.url);
    this.timeoutMs = options.timeoutMs ?? 10 * 60_000;
  }

  list(): BenchmarkStatus[] {
    return this.catalog.map((b) => this.status(b));
  }

  /** Downloads every file of the benchmark not yet kept, checks its SHA-256 and keeps it; answers where it is. */
  async fetch(id: string): Promise<BenchmarkStatus> {
    const benchmark = this.catalog.find((b) => b.id === id);
    if (!benchmark)
      throw new WorkbenchError('not_found', `No benchmark "${id}"; the workbench can get ${this.catalog.map((b) => b.id).join(', ')}.`, { field: 'id' });
    // Two clicks share one download.
    const running = this.inFlight.get(id) ?? this.download(benchmark).finally(() => this.inFlight.delete(id));
    this.inFlight.set(id, running);
    return running;
  }

  private dir(benchmark: Benchmark): string {
    return path.join(this.options.paths.dataDir, 'benchmarks', benchmark.id);
  }

  private status(benchmark: Benchmark): BenchmarkStatus {
    const dir = this.dir(benchmark);
    const kept = benchmark.files.every((f) => {
      const file = path.join(dir, f.name);
      return existsSync(file) && existsSync(file + VERIFIED_SUFFIX) && readFileSync(file + VERIFIED_SUFFIX, 'utf8').trim() === f.sha256;
    });
    return {
      id: benchmark.id,
      label: benchmark.label,
      datasetKey: benchmark.datasetKey,
      license: benchmark.license,
      source: benchmark.source,
      note: benchmark.note,
      files: benchmark.files.map((f) => ({ name: f.name, url: f.url, bytes: f.bytes, sha256: f.sha256 })),
      path: kept ? (benchmark.pathIs === 'folder' ? dir : path.join(dir, benchmark.files[0]!.name)) : null,
    };
  }

  private async download(benchmark: Benchmark): Promise<BenchmarkStatus> {
    const dir = this.dir(benchmark);
    mkdirSync(dir, { recursive: true });
    for (const file of benchmark.files) {
      const target = path.join(dir, file.name);
      if (this.status({ ...benchmark, files: [file] }).path !== null) continue;
      await this.downloadFile(benchmark, file, target);
    }
    return this.status(benchmark);
  }

  private async downloadFile(benchmark: Benchmark, file: BenchmarkFile, target: string): Promise<void> {
    const url = this.urlOf(benchmark, file);
    const partial = `${target}.partial`;
    const hash = createHash('sha256');
    let received = 0;
    try {
      let response: Response;
      try {
        response = await fetch(url, { signal: AbortSignal.timeout(this.timeoutMs), redirect: 'follow' });
      } catch (error) {
        throw new WorkbenchError(
          'not_found',
          `Could not reach ${url} for ${benchmark.label}: ${(error as Error).message}. Check the connection and try again.`,
          { url },
        );
      }
      if (!response.ok || !response.body) {
        throw new WorkbenchError(
          'not_found',
          `${url} answered HTTP ${response.status} for ${benchmark.label}'s ${file.name}. The source may have moved: see ${benchmark.source}.`,
          { url, status: response.status },
        );
      }
      const body = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream);
      body.on('data', (chunk: Buffer) => {
        received += chunk.length;
        hash.update(chunk);
        // Never more than the file the SHA-256 was recorded for.
        if (received > file.bytes)
          body.destroy(
            new WorkbenchError('format_invalid', `${url} sent more than the ${file.bytes} bytes of ${file.name}; it is not the recorded file.`, { url }),
          );
      });
      await pipeline(body, createWriteStream(partial));
      const sha256 = hash.digest('hex');
      if (sha256 !== file.sha256) {
        throw new WorkbenchError(
          'format_invalid',
          `${benchmark.label}'s ${file.name} from ${url} has SHA-256 ${sha256}, not the recorded ${file.sha256}: it is not the file the workbench knows, so it was not kept.`,
          { url, sha256, expected: file.sha256 },
        );
      }
      renameSync(partial, target);
      writeFileSync(target + VERIFIED_SUFFIX, `${sha256}\n`);
    } catch (error) {
      rmSync(partial, { force: true });
      throw error instanceof WorkbenchError
        ? error
        : new WorkbenchError('not_found', `Downloading ${file.name} from ${url} failed: ${(error as Error).message}`, { url });
    }
  }
}
