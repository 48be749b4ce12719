import { access, constants, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

import type { Command } from 'commander';

import type { gateway } from '@curia/client';
import {
  GatewayServiceBulkClientDefinition,
  analyzeStudyStart,
  collectAnalysis,
  common,
  createCuriaClient,
  studyFiles,
  studyUploadRequests,
  wireFloats,
  type AnalysisResult,
} from '@curia/client';
import { CuriaError } from '@curia/errors';

import { writeEmbeddingsFile, type EmbeddingsFile } from './embeddings-file.js';
import {
  addConnectionOptions,
  clientOptions,
  failCommand,
  stderrProgressBar,
  openChannel,
  type ConnectionOptions,
} from './shared.js';

/** Options of `curia analyze`. */
export interface AnalyzeCommandOptions extends ConnectionOptions {
  readonly heads?: string;
  readonly target?: string;
  readonly json?: boolean;
  readonly model?: string;
  readonly embeddings?: string;
  readonly studyId?: string;
  readonly timeout?: string;
  readonly clipBelowAir?: boolean;
  readonly out?: string;
}

const OUTPUTS: Readonly<Record<string, common.FeatureRequest['kind']>> = {
  cls: { $case: 'cls', value: { prenorm: false } },
  patch_tokens: { $case: 'patchTokens', value: { prenorm: false } },
  last_hidden_state: { $case: 'lastHiddenState', value: {} },
};

/** The names in a comma list (`--heads a,b`), trimmed, empty entries dropped. */
const listOf = (list: string | undefined): string[] =>
  (list ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** Parses `--embeddings cls,patch_tokens` into feature requests (F32). */
export function parseEmbeddingOutputs(list: string | undefined): common.FeatureRequest[] {
  const names = listOf(list);
  return names.map((name, i) => {
    const kind = OUTPUTS[name];
    if (!kind) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `--embeddings: unknown output '${name}' (known: ${Object.keys(OUTPUTS).join(', ')})`,
      );
    }
    if (names.indexOf(name) !== i) {
      throw new CuriaError('INVALID_ARGUMENT', `--embeddings: '${name}' is named twice`);
    }
    return { kind, dtype: common.DType.F32 };
  });
}

/** What {@link analyzeAction} ran and wrote. */
export interface AnalyzeOutcome {
  readonly result: AnalysisResult;
  /** The heads run because none were named: the deployment's defaults (GetInfo is_default). */
  readonly defaultHeads: readonly string[];
  /** Where `--out` saved the embeddings, and what it holds. */
  readonly embeddingsFile?: EmbeddingsFile;
}

/** One line per head for the "pick one" message. */
function headLine(h: common.HeadInfo): string {
  const task = common
    .headTaskToJSON(h.task)
    .replace(/^HEAD_TASK_/, '')
    .toLowerCase();
  const labels = h.labels.length ? ` (${h.labels.join(', ')})` : '';
  return `  ${h.name}@${h.version}  ${task}${labels}${h.demo ? '  [demo]' : ''}${h.model ? `  model ${h.model}` : ''}`;
}

/**
 * The deployment's default heads as `name@version`, from the gateway's GetInfo. None marked:
 * INVALID_ARGUMENT listing the heads that exist and how to pick one, or how to get one.
 */
async function deploymentDefaultHeads(client: Pick<GatewayClient, 'getInfo'>): Promise<string[]> {
  const { info } = await client.getInfo({}, { deadline: 10_000 });
  const all = info?.heads ?? [];
  const defaults = all.filter((h) => h.isDefault).map((h) => `${h.name}@${h.version}`);
  if (defaults.length > 0) return defaults;
  const alternative = 'or ask for backbone outputs with --embeddings cls';
  if (all.length === 0) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `no heads named, and the deployment serves none: fit one through HeadsService.Fit (\`npm start\` fits the demo head), ${alternative}`,
    );
  }
  throw new CuriaError(
    'INVALID_ARGUMENT',
    [
      `no heads named, and the deployment marks none as default (HeadsService CURIA_HEADS_DEFAULT): pick one with --heads name[@version], ${alternative}. Heads served:`,
      ...all.map(headLine),
    ].join('\n'),
  );
}

type GatewayClient = ReturnType<typeof createCuriaClient<typeof GatewayServiceBulkClientDefinition>>;

/**
 * Runs one study through the gateway at `o.target`: uploads the file or DICOM directory,
 * reports progress, and returns everything the gateway sent back. With neither heads nor
 * outputs named it runs the deployment's default heads; `o.out` saves the outputs' values.
 */
export async function analyzeAction(
  input: string,
  o: AnalyzeCommandOptions,
  onProgress?: (p: common.Progress) => void,
): Promise<AnalyzeOutcome> {
  try {
    await stat(input);
  } catch {
    throw new CuriaError('NOT_FOUND', `input '${input}' does not exist or is not readable`);
  }
  let heads = listOf(o.heads);
  const embeddingOutputs = parseEmbeddingOutputs(o.embeddings);
  const timeoutS = Number(o.timeout ?? '600');
  if (!(timeoutS > 0))
    throw new CuriaError('INVALID_ARGUMENT', `--timeout must be > 0 seconds, got '${o.timeout}'`);
  if (o.out !== undefined) {
    if (embeddingOutputs.length === 0) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        '--out saves the --embeddings outputs: name at least one (e.g. --embeddings cls)',
      );
    }
    // Before the upload, not after minutes of analysis.
    await access(dirname(resolve(o.out)), constants.W_OK).catch(() => {
      throw new CuriaError(
        'NOT_FOUND',
        `--out: directory '${dirname(o.out!)}' does not exist or is not writable`,
      );
    });
  }
  const { files, format } = await studyFiles(input);
  const channel = openChannel(o.target ?? '127.0.0.1:50050', o);
  try {
    const client = createCuriaClient(GatewayServiceBulkClientDefinition, channel, clientOptions(o));
    const defaultHeads =
      heads.length === 0 && embeddingOutputs.length === 0 ? await deploymentDefaultHeads(client) : [];
    if (defaultHeads.length > 0) heads = defaultHeads;
    const start = analyzeStudyStart(o.studyId ?? 'cli', format, {
      heads,
      embeddingOutputs,
      model: o.model ?? '',
      ...(o.clipBelowAir !== undefined ? { preprocess: { clipBelowAir: o.clipBelowAir } } : {}),
    });
    const result = await collectAnalysis(
      client.analyzeStudy(studyUploadRequests(start, files), { deadline: timeoutS * 1000 }),
      onProgress,
    );
    const embeddingsFile =
      o.out === undefined ? undefined : await writeEmbeddingsFile(o.out, result, listOf(o.embeddings));
    return { result, defaultHeads, ...(embeddingsFile ? { embeddingsFile } : {}) };
  } finally {
    channel.close();
  }
}

/** A head result in plain values. */
export interface HeadSummary {
  head: string;
  demo: boolean;
  probabilities?: Record<string, number>;
  predicted?: string | number;
  riskScore?: number;
  value?: number;
  survival?: { times: number[]; values: number[] };
}

/** A head result in plain values (for JSON output and the summary line). */
export function headSummary(h: gateway.HeadResult): HeadSummary {
  const p = h.prediction;
  const out: HeadSummary = {
    head: `${h.head?.name}@${h.head?.version}`,
    demo: h.head?.demo ?? false,
  };
  if (!p) return out;
  if (p.probabilities) {
    const probs = Array.from(wireFloats(p.probabilities));
    out.probabilities = Object.fromEntries(
      probs.map((v, i) => [p.labels[i] ?? String(i), Number(v.toFixed(4))]),
    );
  }
  if (p.predictedIndex !== undefined) out.predicted = p.labels[p.predictedIndex] ?? p.predictedIndex;
  if (p.riskScore !== undefined) out.riskScore = p.riskScore;
  if (p.value !== undefined) out.value = p.value;
  if (p.survival) out.survival = { times: p.survival.times, values: p.survival.values };
  return out;
}

/** What the reports add to the analysis itself: default heads run, `--out` file written. */
export type AnalysisExtras = Partial<Pick<AnalyzeOutcome, 'defaultHeads' | 'embeddingsFile'>>;

/** The JSON document `--json` prints. */
export function analysisJson(r: AnalysisResult, extras: AnalysisExtras = {}): Record<string, unknown> {
  const s = r.summary;
  const file = extras.embeddingsFile;
  return {
    model: s?.model ? `${s.model.name}@${s.model.version}` : undefined,
    modelSha256: s?.model?.sha256,
    demoWeights: s?.demoWeights ?? false,
    slices: r.geometry?.numCanonicalSlices,
    slicesEmbedded: s?.slicesEmbedded,
    cache: s?.cache,
    timingsMs: Object.fromEntries((s?.timings ?? []).map((t) => [t.stage, Math.round(t.millis)])),
    ...(extras.defaultHeads?.length ? { defaultHeads: extras.defaultHeads } : {}),
    heads: r.heads.map(headSummary),
    ...(file ? { embeddingsFile: file.path, embeddingOutputs: file.outputs } : {}),
    embeddings: r.embeddings.map((e) => ({
      slice: e.mapping?.canonicalIndex,
      features: e.features.map((f) => ({
        shape: f.tensor?.shape,
        dtype: common.dTypeToJSON(f.tensor?.dtype ?? 0),
      })),
    })),
  };
}

/** Human-readable report lines. */
export function analysisText(r: AnalysisResult, extras: AnalysisExtras = {}): string[] {
  const j = analysisJson(r);
  const lines = [
    `model ${String(j.model)}${j.demoWeights ? '  (DEMO WEIGHTS: integration testing only, not Curia outputs)' : ''}`,
    `${String(j.slices)} canonical slices, ${String(j.slicesEmbedded)} used; cache ${r.summary?.cache?.hits ?? 0} hits / ${r.summary?.cache?.misses ?? 0} misses`,
    `timings: ${(r.summary?.timings ?? []).map((t) => `${t.stage} ${t.millis.toFixed(0)} ms`).join(', ')}`,
  ];
  if (extras.defaultHeads?.length) {
    lines.push(`no heads named: ran the deployment's default heads (${extras.defaultHeads.join(', ')})`);
  }
  for (const h of r.heads) {
    const s = headSummary(h);
    const detail =
      s.predicted !== undefined
        ? `${s.predicted} (${JSON.stringify(s.probabilities)})`
        : s.riskScore !== undefined
          ? `risk ${s.riskScore.toFixed(4)}`
          : `value ${s.value ?? '?'}`;
    lines.push(`head ${s.head}: ${detail}`);
  }
  const file = extras.embeddingsFile;
  if (file) {
    const outputs = file.outputs.map((o) => `${o.name} [${o.shape.join(', ')}] ${o.dtype}`).join(', ');
    lines.push(
      `embeddings of ${file.slices} slices saved to ${file.path}: ${outputs}, slice-major (canonical_index gives each row's slice)`,
    );
  } else if (r.embeddings.length) {
    lines.push(
      `${r.embeddings.length} slice embeddings received (values not printed; --out FILE.safetensors saves them)`,
    );
  }
  return lines;
}

/** Registers `curia analyze`. */
export function registerAnalyze(program: Command): void {
  addConnectionOptions(program.command('analyze'))
    .description('Analyse a study through the gateway: upload, preprocess, embed, run heads')
    .argument('<input>', 'file.nii[.gz] or a directory holding one DICOM series')
    .option('--heads <list>', 'heads to run, comma-separated ("name" or "name@version")')
    .option(
      '--embeddings <list>',
      'backbone outputs to return per slice: cls, patch_tokens, last_hidden_state',
    )
    .option('--target <host:port>', 'gateway address', '127.0.0.1:50050')
    .option('--model <name[@version]>', 'backbone (default: the server default)')
    .option('--study-id <id>', 'opaque study id for logs (never PHI)')
    .option('--clip-below-air', 'clamp values below -1000 HU after resizing')
    .option('--timeout <seconds>', 'deadline for the whole analysis', '600')
    .option(
      '--out <file.safetensors>',
      'save the --embeddings outputs: one tensor per output, [slices, ...] in canonical slice order, with canonical_index',
    )
    .option('--json', 'print one JSON document instead of text')
    .addHelpText(
      'after',
      "\nWith neither --heads nor --embeddings, runs the deployment's default heads (GetInfo marks them is_default).",
    )
    .action(async (input: string, opts: AnalyzeCommandOptions) => {
      const progress = stderrProgressBar(!opts.json);
      try {
        const { result, ...extras } = await analyzeAction(input, opts, progress.onProgress);
        progress.end();
        process.stdout.write(
          opts.json
            ? `${JSON.stringify(analysisJson(result, extras), null, 2)}\n`
            : `${analysisText(result, extras).join('\n')}\n`,
        );
      } catch (err) {
        progress.end();
        failCommand('analyze', err);
      }
    });
}
