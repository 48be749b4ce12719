import { stat } from 'node:fs/promises';

import type { Command } from 'commander';

import type { gateway } from '@curia/client';
import {
  GatewayServiceBulkClientDefinition,
  ClientError,
  collectAnalysis,
  common,
  createCuriaChannel,
  createCuriaClient,
  Status,
  studyFiles,
  studyUploadRequests,
  wireFloats,
  type AnalysisResult,
} from '@curia/client';
import { CuriaError, isCuriaError } from '@curia/errors';

/** Options of `curia analyze`. */
export interface AnalyzeCommandOptions {
  readonly heads?: string;
  readonly target?: string;
  readonly json?: boolean;
  readonly model?: string;
  readonly embeddings?: string;
  readonly studyId?: string;
  readonly timeout?: string;
  readonly clipBelowAir?: boolean;
}

const OUTPUTS: Readonly<Record<string, common.FeatureRequest['kind']>> = {
  cls: { $case: 'cls', value: { prenorm: false } },
  patch_tokens: { $case: 'patchTokens', value: { prenorm: false } },
  last_hidden_state: { $case: 'lastHiddenState', value: {} },
};

/** Parses `--embeddings cls,patch_tokens` into feature requests (F32). */
export function parseEmbeddingOutputs(list: string | undefined): common.FeatureRequest[] {
  if (!list) return [];
  return list.split(',').map((s) => {
    const kind = OUTPUTS[s.trim()];
    if (!kind) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `--embeddings: unknown output '${s}' (known: ${Object.keys(OUTPUTS).join(', ')})`,
      );
    }
    return { kind, dtype: common.DType.F32 };
  });
}

/**
 * Runs one study through the gateway at `o.target`: uploads the file or DICOM directory,
 * reports progress, and returns everything the gateway sent back.
 */
export async function analyzeAction(
  input: string,
  o: AnalyzeCommandOptions,
  onProgress?: (p: common.Progress) => void,
): Promise<AnalysisResult> {
  try {
    await stat(input);
  } catch {
    throw new CuriaError('NOT_FOUND', `input '${input}' does not exist or is not readable`);
  }
  const heads = (o.heads ?? '')
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  const embeddingOutputs = parseEmbeddingOutputs(o.embeddings);
  if (heads.length === 0 && embeddingOutputs.length === 0) {
    throw new CuriaError('INVALID_ARGUMENT', 'name at least one head (--heads) or output (--embeddings)');
  }
  const timeoutS = Number(o.timeout ?? '600');
  if (!(timeoutS > 0))
    throw new CuriaError('INVALID_ARGUMENT', `--timeout must be > 0 seconds, got '${o.timeout}'`);
  const { files, format } = await studyFiles(input);
  const channel = createCuriaChannel(o.target ?? '127.0.0.1:50050');
  try {
    const client = createCuriaClient(GatewayServiceBulkClientDefinition, channel);
    const start: Omit<gateway.AnalyzeStudyStart, 'source'> = {
      header: { studyId: o.studyId ?? 'cli', format, seriesInstanceUid: '', volumeIndex: 0 },
      heads,
      embeddingOutputs,
      model: o.model ?? '',
      survivalTimes: [],
      returnSlicePredictions: false,
      ...(o.clipBelowAir !== undefined
        ? { preprocess: { modelBundle: '', clipBelowAir: o.clipBelowAir, outputDtype: 0 } }
        : {}),
    };
    return await collectAnalysis(
      client.analyzeStudy(studyUploadRequests(start, files), { deadline: timeoutS * 1000 }),
      onProgress,
    );
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

/** The JSON document `--json` prints. */
export function analysisJson(r: AnalysisResult): Record<string, unknown> {
  const s = r.summary;
  return {
    model: s?.model ? `${s.model.name}@${s.model.version}` : undefined,
    modelSha256: s?.model?.sha256,
    demoWeights: s?.demoWeights ?? false,
    slices: r.geometry?.numCanonicalSlices,
    slicesEmbedded: s?.slicesEmbedded,
    cache: s?.cache,
    timingsMs: Object.fromEntries((s?.timings ?? []).map((t) => [t.stage, Math.round(t.millis)])),
    heads: r.heads.map(headSummary),
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
export function analysisText(r: AnalysisResult): string[] {
  const j = analysisJson(r);
  const lines = [
    `model ${String(j.model)}${j.demoWeights ? '  (DEMO WEIGHTS: integration testing only, not Curia outputs)' : ''}`,
    `${String(j.slices)} canonical slices, ${String(j.slicesEmbedded)} used; cache ${r.summary?.cache?.hits ?? 0} hits / ${r.summary?.cache?.misses ?? 0} misses`,
    `timings: ${(r.summary?.timings ?? []).map((t) => `${t.stage} ${t.millis.toFixed(0)} ms`).join(', ')}`,
  ];
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
  if (r.embeddings.length) lines.push(`${r.embeddings.length} slice embeddings received`);
  return lines;
}

/** Registers `curia analyze`. */
export function registerAnalyze(program: Command): void {
  program
    .command('analyze')
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
    .option('--json', 'print one JSON document instead of text')
    .action(async (input: string, opts: AnalyzeCommandOptions) => {
      const tty = process.stderr.isTTY && !opts.json;
      const onProgress = (p: common.Progress): void => {
        if (!tty || p.total === 0) return;
        const width = 30;
        const filled = Math.round((p.done / p.total) * width);
        process.stderr.write(
          `\r${p.stage.padEnd(10)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.done}/${p.total}`,
        );
      };
      try {
        const r = await analyzeAction(input, opts, onProgress);
        if (tty) process.stderr.write('\n');
        process.stdout.write(
          opts.json ? `${JSON.stringify(analysisJson(r), null, 2)}\n` : `${analysisText(r).join('\n')}\n`,
        );
      } catch (err) {
        if (tty) process.stderr.write('\n');
        if (err instanceof ClientError) {
          process.stderr.write(`curia analyze: ${Status[err.code]}: ${err.details}\n`);
          process.exit(1);
        }
        if (isCuriaError(err)) {
          process.stderr.write(`curia analyze: ${err.message}\n`);
          process.exit(2);
        }
        throw err;
      }
    });
}
