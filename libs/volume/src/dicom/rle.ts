import { CuriaError } from '@curia/errors';

/**
 * Decodes one DICOM RLE Lossless frame (PS3.5 Annex G) of single-sample pixels into little-endian
 * sample bytes (`rows * cols * bytesPerSample`). The frame starts with a 64-byte header: the
 * segment count, then 15 segment offsets; segment s holds byte plane s, most significant first,
 * each PackBits-coded.
 */
export function decodeRleFrame(
  frame: Uint8Array,
  rows: number,
  cols: number,
  bytesPerSample: 1 | 2,
): Uint8Array {
  if (frame.length < 64)
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `RLE frame is ${frame.length} bytes, shorter than its 64-byte header`,
    );
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const segments = dv.getUint32(0, true);
  if (segments !== bytesPerSample) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `RLE frame has ${segments} segments; expected ${bytesPerSample} for ${bytesPerSample * 8}-bit single-sample pixels`,
    );
  }
  const pixels = rows * cols;
  const out = new Uint8Array(pixels * bytesPerSample);
  for (let s = 0; s < segments; s++) {
    const start = dv.getUint32(4 + s * 4, true);
    const end = s + 1 < segments ? dv.getUint32(8 + s * 4, true) : frame.length;
    if (start < 64 || end > frame.length || end < start) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `RLE segment ${s} has offsets [${start}, ${end}) outside the ${frame.length}-byte frame`,
      );
    }
    // Plane s is the (segments - 1 - s)-th byte of each little-endian sample.
    const byteIndex = bytesPerSample - 1 - s;
    const written = unpackBits(frame, start, end, out, byteIndex, bytesPerSample, pixels);
    if (written < pixels) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `RLE segment ${s} is truncated: ${written} of ${pixels} bytes decoded`,
      );
    }
  }
  return out;
}

function unpackBits(
  src: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
  byteIndex: number,
  stride: number,
  count: number,
): number {
  let p = start;
  let n = 0;
  while (p < end && n < count) {
    const h = src[p++]!;
    if (h < 128) {
      // Literal run of h + 1 bytes.
      const len = Math.min(h + 1, count - n, end - p);
      for (let i = 0; i < len; i++) out[(n + i) * stride + byteIndex] = src[p + i]!;
      p += h + 1;
      n += len;
    } else if (h > 128) {
      // Replicate the next byte 257 - h times (two's complement -(h - 256) + 1).
      if (p >= end) break;
      const v = src[p++]!;
      const len = Math.min(257 - h, count - n);
      for (let i = 0; i < len; i++) out[(n + i) * stride + byteIndex] = v;
      n += len;
    }
    // h === 128 is a no-op.
  }
  return n;
}
