import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { CuriaError } from '@curia/errors';
import type { VersionCodec } from '@curia/heads';
import { fromFloat32, SafetensorsFile, toFloat32, writeSafetensors } from '@curia/tensors';
import { z } from 'zod';

import { checkSegmenter, type SegmenterWeights } from './segmenter.js';

const HEAD_JSON = 'segment-head.json';
const WEIGHTS = 'weights.safetensors';

/** What a stored segmentation head says about itself (head JSON; never PHI). */
export const segmentHeadMetaSchema = z.object({
  format: z.literal('curia-segment-head/1'),
  name: z.string(),
  version: z.string(),
  kind: z.enum(['linear', 'conv3x3']),
  classes: z.array(z.object({ value: z.number().int().min(1).max(255), name: z.string().min(1) })).min(1),
  /** Token width D, and the model grid the head was fitted on (token grid side G = imageSize / patchSize). */
  dim: z.number().int().positive(),
  imageSize: z.number().int().positive(),
  patchSize: z.number().int().positive(),
  /** Backbone "name@version" and its weights' sha256. */
  model: z.string(),
  modelSha256: z.string(),
  demo: z.boolean(),
  description: z.string(),
  smoothAcrossSlices: z.boolean(),
  idempotencyKey: z.string().optional(),
  createdAt: z.string(),
  fit: z.object({
    cvDice: z.record(z.string(), z.number()),
    slices: z.number().int().nonnegative(),
    tokens: z.number().int().nonnegative(),
    folds: z.number().int().nonnegative(),
    l2: z.number(),
    maxIterations: z.number().int(),
    timingsMs: z.record(z.string(), z.number()),
  }),
});

/** A stored segmentation head's description. */
export type SegmentHeadMeta = z.infer<typeof segmentHeadMetaSchema>;

/** A segmentation head version: its description and its weights. */
export interface SegmentHeadRecord {
  readonly meta: SegmentHeadMeta;
  readonly weights: SegmenterWeights;
}

/**
 * Reads and writes segmentation heads for a {@link VersionedStore}: `segment-head.json` plus the
 * centre, kernel and bias in `weights.safetensors` (F32).
 */
export const SEGMENT_HEAD_CODEC: VersionCodec<SegmentHeadRecord> = {
  save: async (dir, r) => {
    const w = r.weights;
    await writeSafetensors(
      join(dir, WEIGHTS),
      [
        ['center', fromFloat32(w.center, [w.center.length], 'F32')],
        ['kernel', fromFloat32(w.kernel, [w.kernel.length], 'F32')],
        ['bias', fromFloat32(w.bias, [w.bias.length], 'F32')],
      ],
      { format: 'curia-segment-head' },
    );
    await writeFile(join(dir, HEAD_JSON), `${JSON.stringify(r.meta, null, 2)}\n`);
  },
  load: async (dir) => {
    const parsed = segmentHeadMetaSchema.safeParse(JSON.parse(await readFile(join(dir, HEAD_JSON), 'utf8')));
    if (!parsed.success) {
      throw new CuriaError(
        'FAILED_PRECONDITION',
        `${HEAD_JSON} is invalid: ${parsed.error.issues[0]?.message ?? ''}`,
      );
    }
    const meta = parsed.data;
    const file = await SafetensorsFile.open(join(dir, WEIGHTS));
    const weights: SegmenterWeights = {
      kind: meta.kind,
      dim: meta.dim,
      classes: meta.classes,
      center: toFloat32(await file.read('center')),
      kernel: toFloat32(await file.read('kernel')),
      bias: toFloat32(await file.read('bias')),
    };
    checkSegmenter(weights);
    return { meta, weights };
  },
  withVersion: (r, name, version) => ({ ...r, meta: { ...r.meta, name, version } }),
  idempotencyKey: (r) => r.meta.idempotencyKey,
};
