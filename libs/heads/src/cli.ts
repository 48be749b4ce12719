import { EmbedEngine } from '@curia/model';
import { SafetensorsFile, fromFloat32, toFloat32, writeSafetensors, type RawTensor } from '@curia/tensors';

import { invalid, throwIfAborted } from './errors.js';
import { computeHeadFeatures, concatFeatures, embedOutputsFor, type HeadFeatures } from './features.js';
import { checkBackboneCompatibility, loadHead, type Head } from './head.js';
import { importCuriaHead, type ImportCuriaOptions } from './import-curia.js';
import type { HeadOutput } from './infer/outputs.js';

/** What `importHeadCommand` reports. */
export interface ImportSummary {
  readonly outDir: string;
  readonly name: string;
  readonly kind: string;
  readonly task: string;
  readonly labels: readonly string[];
  readonly requirements: Head['meta']['requirements'];
  readonly backboneHidden: number | null;
}

/** CLI entry: imports a Curia head folder `dir` into a native bundle at `out`. */
export async function importHeadCommand(
  dir: string,
  out: string,
  options: ImportCuriaOptions = {},
): Promise<ImportSummary> {
  const head = await importCuriaHead(dir, out, options);
  const m = head.meta;
  return {
    outDir: out,
    name: m.name,
    kind: m.kind,
    task: m.task,
    labels: m.labels,
    requirements: m.requirements,
    backboneHidden: m.backbone?.hidden_size ?? null,
  };
}

/** Arguments of {@link runHeadFile}. */
export interface RunHeadFileArgs {
  readonly headDir: string;
  readonly modelBundleDir: string;
  /** safetensors with `pixel_values` (B, 1, S, S) and optional `mask` (B, 1, H, W) or (B, H, W). */
  readonly inPath: string;
  /** safetensors written with `logits` (+ `probabilities` / `value` / `risk`, `survival_times`, `survival`). */
  readonly outPath: string;
  /** Reuse an open engine instead of opening `modelBundleDir`. */
  readonly engine?: EmbedEngine;
  readonly signal?: AbortSignal;
}

/** Shape facts of the result written by {@link runHeadFile}. */
export interface RunHeadFileResult {
  readonly output: HeadOutput;
  readonly slices: number;
  readonly head: string;
}

function maskDims(mask: RawTensor, batch: number): { height: number; width: number } {
  const s = mask.shape;
  const ok = (s.length === 4 && s[1] === 1) || s.length === 3;
  if (!ok || s[0] !== batch) {
    throw invalid(`mask must have shape (B, 1, H, W) or (B, H, W) with B = ${batch} (got [${s.join(', ')}])`);
  }
  return { height: s[s.length - 2]!, width: s[s.length - 1]! };
}

/**
 * CLI entry: embeds `pixel_values` with the model bundle, computes exactly the features the head
 * requires, runs the head and writes the outputs. For a 3D head the B slices are one volume, in
 * order. The backbone is checked against the head's fingerprint first (FAILED_PRECONDITION).
 */
export async function runHeadFile(args: RunHeadFileArgs): Promise<RunHeadFileResult> {
  const head = await loadHead(args.headDir);
  const engine = args.engine ?? (await EmbedEngine.open(args.modelBundleDir, { signal: args.signal }));
  try {
    checkBackboneCompatibility(head, engine.bundle.manifest.architecture);
    const input = await SafetensorsFile.open(args.inPath);
    if (!input.names().includes('pixel_values')) throw invalid(`${args.inPath} has no tensor 'pixel_values'`);
    const pxRaw = await input.read('pixel_values');
    if (pxRaw.shape.length !== 4)
      throw invalid(`pixel_values must be (B, C, H, W) (got [${pxRaw.shape.join(', ')}])`);
    const batch = pxRaw.shape[0]!;
    const pixels = toFloat32(pxRaw);
    const req = head.requirements();
    let mask: { data: Float32Array; height: number; width: number } | undefined;
    if (input.names().includes('mask')) {
      const m = await input.read('mask');
      mask = { data: toFloat32(m), ...maskDims(m, batch) };
    }
    if (req.mask && !mask)
      throw invalid(`head '${head.meta.name}' requires a 'mask' tensor in ${args.inPath}`);
    const per = pixels.length / batch;
    const maxBatch = engine.info().maxBatch;
    const outputs = embedOutputsFor(req);
    const parts: HeadFeatures[] = [];
    for (let b0 = 0; b0 < batch; b0 += maxBatch) {
      throwIfAborted(args.signal, 'head run');
      const n = Math.min(maxBatch, batch - b0);
      const tokens = await engine.run(pixels.subarray(b0 * per, (b0 + n) * per), n, {
        outputs,
        signal: args.signal,
      });
      const chunkMask =
        req.mask && mask
          ? {
              ...mask,
              data: mask.data.subarray(b0 * mask.height * mask.width, (b0 + n) * mask.height * mask.width),
            }
          : undefined;
      parts.push(computeHeadFeatures(req, tokens, chunkMask));
    }
    const out = await head.run(concatFeatures(parts), { signal: args.signal });
    await writeSafetensors(args.outPath, outputTensors(out), {
      head: head.meta.name,
      kind: head.meta.kind,
      task: head.meta.task,
      labels: JSON.stringify(head.meta.labels),
    });
    return { output: out, slices: batch, head: head.meta.name };
  } finally {
    await head.release();
    if (!args.engine) await engine.close();
  }
}

function outputTensors(o: HeadOutput): [string, RawTensor][] {
  const shape = [o.rows, o.outputs];
  const t: [string, RawTensor][] = [['logits', fromFloat32(o.logits, shape)]];
  if (o.probabilities) t.push(['probabilities', fromFloat32(o.probabilities, shape)]);
  if (o.value) t.push(['value', fromFloat32(o.value, shape)]);
  if (o.risk) t.push(['risk', fromFloat32(o.risk, [o.rows])]);
  if (o.survival) {
    const nt = o.survival.times.length;
    t.push(['survival_times', fromFloat32(o.survival.times, [nt])]);
    t.push(['survival', fromFloat32(o.survival.curves, [o.rows, nt])]);
  }
  return t;
}
