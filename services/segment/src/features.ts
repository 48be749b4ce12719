import { checkHeadModel } from '@curia/client';
import { CuriaError } from '@curia/errors';
import { checkStudyId, readStart, type CuriaCallContext } from '@curia/kit';
import type { common, segment } from '@curia/proto';
import { ClassTable, type VolumeSegmentation } from '@curia/segment';

import { classResults, geometryMessage } from './responses.js';
import { fittedSegmentation, niftiOut, slicesOut } from './run.js';
import type { SegmentDeps } from './segment.js';
import { studyGridOf, tokenValues } from './study.js';

type Response = segment.SegmentFeaturesResponse;

const wrap = function* (g: Iterable<segment.SegmentResponse>): Generator<Response> {
  for (const response of g) yield { response };
};

/**
 * SegmentFeatures: a promptless head over patch tokens the caller computed (the gateway embeds a
 * study once for all its heads). Slices must come in ascending canonical order, every slice once.
 */
export async function* segmentFeatures(
  requests: AsyncIterable<segment.SegmentFeaturesRequest>,
  context: CuriaCallContext & { signal: AbortSignal },
  deps: SegmentDeps,
): AsyncGenerator<Response> {
  const t0 = performance.now();
  const { start: s, rest: input } = await readStart(requests, 'SegmentFeatures');
  const studyId = s.header?.studyId ?? '';
  checkStudyId(studyId);
  const output = s.output ?? { sliceMasks: false, omitNiftiMask: false, gzip: false, dicomSeg: false };
  if (output.dicomSeg) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      'output.dicom_seg needs the source series: use Segment with the DICOM study',
    );
  }
  const head = deps.heads.resolve(s.head, 'start.head');
  if (head.kind !== 'fitted') {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `start.head: '${s.head}' is a prompt head; send the study and its points to Segment`,
    );
  }
  const ref = `${head.stored.name}@${head.stored.version}`;
  if (!s.model)
    throw new CuriaError(
      'INVALID_ARGUMENT',
      'start.model must name the backbone ("name@version") that produced the tokens',
    );
  checkHeadModel(ref, head.stored.item.meta.model, s.model);
  const grid = studyGridOf(s.geometry);
  const table = new ClassTable(head.wire.classes.map((c) => ({ value: c.value, name: c.label })));
  s.classNames.forEach((n, i) => {
    if (!table.classes.some((c) => c.name === n)) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `start.class_names[${i}] '${n}' is not a class of head '${ref}'`,
      );
    }
  });
  const keep =
    s.classNames.length > 0
      ? new Set([0, ...s.classNames.map((n) => table.classes.findIndex((c) => c.name === n) + 1)])
      : undefined;
  const meta = head.stored.item.meta;
  const model = { imageSize: meta.imageSize, patchSize: meta.patchSize };
  const runner = await deps.heads.runner(head.stored);
  const seg: VolumeSegmentation = fittedSegmentation(runner, {
    grid,
    model,
    table,
    keep,
    smooth: s.smoothAcrossSlices ?? meta.smoothAcrossSlices,
  });
  const timings: common.Timing[] = [];
  const timed = (stage: string, ms: number): void => {
    timings.push({ stage, millis: ms });
    deps.metrics.stage.observe({ stage }, ms / 1000);
  };
  yield { response: geometryMessage(s.geometry!, table) };
  const slices = grid.canonicalDims[0];
  let count = 0;
  for (;;) {
    if (context.signal.aborted) throw new CuriaError('CANCELLED', 'SegmentFeatures was cancelled');
    const next = await input.next();
    if (next.done) break;
    const msg = next.value.msg;
    if (msg?.$case !== 'slice')
      throw new CuriaError(
        'INVALID_ARGUMENT',
        'after `start`, every SegmentFeatures message must be a `slice`',
      );
    const k = msg.value.mapping?.canonicalIndex ?? -1;
    if (k !== count) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `slice ${count} was expected next (slices come in ascending canonical order, each once), got ${k}`,
      );
    }
    count++;
    const values = tokenValues(
      msg.value.patchTokens!,
      model,
      head.stored.item.weights.dim,
      `slice ${k}: patch_tokens`,
    );
    yield* wrap(slicesOut(await seg.add(k, values), seg, grid, table, output));
  }
  if (count !== slices) {
    throw new CuriaError('INVALID_ARGUMENT', `the study has ${slices} canonical slices; ${count} were sent`);
  }
  yield* wrap(slicesOut(await seg.finish(), seg, grid, table, output));
  yield* wrap(niftiOut(seg, output, timed));
  timed('total', performance.now() - t0);
  yield {
    response: {
      msg: {
        $case: 'done',
        value: {
          classes: classResults(seg.labels, table),
          timings,
          model: undefined,
          demoWeights: meta.demo,
          evaluation: [],
          head: head.wire,
          slicesEmbedded: 0,
          slicesFromCache: 0,
        },
      },
    },
  };
}
