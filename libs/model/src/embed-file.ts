import { CuriaError } from '@curia/errors';
import { fromFloat32, SafetensorsFile, toFloat32, writeSafetensors } from '@curia/tensors';

import { EmbedEngine, type EngineOptions } from './engine.js';
import { clsTokens } from './features.js';

/** Options of {@link embedFile}. */
export interface EmbedFileOptions {
  /** Reuse an open engine (its bundle wins over `bundleDir`); otherwise one is opened and closed. */
  readonly engine?: EmbedEngine;
  /** Options for the engine opened when none is given. */
  readonly engineOptions?: EngineOptions;
  /** Slices per ORT call (default 8). */
  readonly batchSize?: number;
  readonly signal?: AbortSignal;
}

/** Summary of an {@link embedFile} run. */
export interface EmbedFileResult {
  readonly slices: number;
  readonly tokens: number;
  readonly hidden: number;
  readonly millis: number;
}

/**
 * Reads `pixel_values` (B, C, S, S) from a safetensors file, runs the backbone, and writes
 * `last_hidden_state` (B, T, D), `pooler_output` (B, D) and `last_block_prenorm` (B, T, D), all F32,
 * exactly as HF `Dinov2Model` returns them (plus the bundle name/sha in the metadata).
 */
export async function embedFile(
  bundleDir: string,
  inPath: string,
  outPath: string,
  opts: EmbedFileOptions = {},
): Promise<EmbedFileResult> {
  const t0 = performance.now();
  const file = await SafetensorsFile.open(inPath);
  const entry = file.header.entries.get('pixel_values');
  if (!entry) throw new CuriaError('INVALID_ARGUMENT', `input has no tensor 'pixel_values'`);
  const engine =
    opts.engine ?? (await EmbedEngine.open(bundleDir, { ...opts.engineOptions, signal: opts.signal }));
  try {
    const info = engine.info();
    const want = [info.numChannels, info.imageSize, info.imageSize];
    const [b, ...rest] = entry.shape;
    if (entry.shape.length !== 4 || b === undefined || rest.some((v, i) => v !== want[i])) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `pixel_values has shape [${entry.shape.join(', ')}], expected [B, ${want.join(', ')}]`,
      );
    }
    const pixels = toFloat32(await file.read('pixel_values'));
    const per = engine.pixelsPerSlice;
    const seqLen = info.tokens * info.hidden;
    const lhs = new Float32Array(b * seqLen);
    const pre = new Float32Array(b * seqLen);
    const step = Math.min(opts.batchSize ?? 8, info.maxBatch);
    for (let s = 0; s < b; s += step) {
      const n = Math.min(step, b - s);
      const r = await engine.run(pixels.subarray(s * per, (s + n) * per), n, {
        outputs: ['last_hidden_state', 'last_block_prenorm'],
        signal: opts.signal,
      });
      lhs.set(r.lastHiddenState!, s * seqLen);
      pre.set(r.lastBlockPrenorm!, s * seqLen);
    }
    const layout = { tokens: info.tokens, hidden: info.hidden, numRegisterTokens: info.numRegisterTokens };
    await writeSafetensors(
      outPath,
      [
        ['last_hidden_state', fromFloat32(lhs, [b, info.tokens, info.hidden])],
        ['pooler_output', fromFloat32(clsTokens(lhs, layout), [b, info.hidden])],
        ['last_block_prenorm', fromFloat32(pre, [b, info.tokens, info.hidden])],
      ],
      { bundle: info.name, bundle_sha256: info.sha256, demo_weights: String(info.demoWeights) },
    );
    return { slices: b, tokens: info.tokens, hidden: info.hidden, millis: performance.now() - t0 };
  } finally {
    if (!opts.engine) await engine.close();
  }
}
