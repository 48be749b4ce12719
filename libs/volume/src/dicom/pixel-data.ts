import { CuriaError, isCuriaError } from '@curia/errors';

import { dicomParser, type DataSet } from './dicom-parser.js';
import { decodeJpeg2000, decodeJpegLossless, type DecodedFrame } from './codecs.js';
import { ownedCopy } from '../io/voxel-array.js';
import { decodeRleFrame } from './rle.js';
import type { PixelCodec } from './transfer-syntax.js';

/** Stored pixel values of one frame after BitsStored masking and sign extension. */
export type StoredPixels = Int8Array | Uint8Array | Int16Array | Uint16Array;

/** The pixel layout shared by every slice of a series. */
export interface PixelFormat {
  readonly rows: number;
  readonly cols: number;
  readonly bitsAllocated: 8 | 16;
  readonly bitsStored: number;
  /** 1 = two's complement signed samples. */
  readonly pixelRepresentation: 0 | 1;
}

/** A compressed frame, ready to decode anywhere (plain data: it can be posted to a thread). */
export interface EncodedFrame {
  readonly codec: Exclude<PixelCodec, 'native'>;
  /** The frame's codestream; a compact copy (owns its whole buffer) when `compact` was asked for. */
  readonly frame: Uint8Array;
  readonly format: PixelFormat;
  /** Names the file in errors (no identifiers). */
  readonly label: string;
}

/** Decodes the single frame of a parsed DICOM file to stored values. `label` names the file in errors. */
export async function decodePixels(
  ds: DataSet,
  codec: PixelCodec,
  fmt: PixelFormat,
  label: string,
): Promise<StoredPixels> {
  const f = extractFrame(ds, codec, fmt, label, false);
  return 'codec' in f ? decodeFrame(f) : f;
}

/**
 * The single frame of a parsed DICOM file: stored values when it is native, else the compressed
 * codestream to pass to {@link decodeFrame} (copied into its own buffer when `compact`).
 */
export function extractFrame(
  ds: DataSet,
  codec: PixelCodec,
  fmt: PixelFormat,
  label: string,
  compact: boolean,
): StoredPixels | EncodedFrame {
  const el = ds.elements.x7fe00010;
  if (!el) throw new CuriaError('INVALID_ARGUMENT', `${label} has no PixelData (7FE0,0010)`);
  const bytesPerSample = (fmt.bitsAllocated / 8) as 1 | 2;
  const expected = fmt.rows * fmt.cols * bytesPerSample;
  if (codec === 'native') {
    if (el.encapsulatedPixelData) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `${label}: PixelData is encapsulated but the transfer syntax is native`,
      );
    }
    if (el.length < expected || el.dataOffset + expected > ds.byteArray.length) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `${label}: PixelData holds ${Math.min(el.length, ds.byteArray.length - el.dataOffset)} bytes, ${expected} needed for ${fmt.rows}x${fmt.cols}x${fmt.bitsAllocated} bits (truncated file)`,
      );
    }
    return toStored(ds.byteArray.subarray(el.dataOffset, el.dataOffset + expected), fmt, false);
  }
  const fragments = el.fragments ?? [];
  if (!el.encapsulatedPixelData || fragments.length === 0) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${label}: compressed transfer syntax but PixelData has no fragments`,
    );
  }
  let frame: Uint8Array;
  try {
    frame =
      fragments.length === 1
        ? ds.byteArray.subarray(fragments[0]!.position, fragments[0]!.position + fragments[0]!.length)
        : dicomParser.readEncapsulatedPixelDataFromFragments(ds, el, 0, fragments.length);
  } catch (e) {
    throw new CuriaError('INVALID_ARGUMENT', `${label}: PixelData fragments are truncated or corrupt`, {
      cause: e,
    });
  }
  if (frame.length === 0 || frame.byteOffset + frame.length > ds.byteArray.byteOffset + ds.byteArray.length) {
    throw new CuriaError('INVALID_ARGUMENT', `${label}: PixelData fragment is truncated`);
  }
  return { codec, frame: compact ? ownedCopy(frame) : frame, format: fmt, label };
}

/** Decodes a compressed frame to stored values (INVALID_ARGUMENT naming the file when it is corrupt). */
export async function decodeFrame(f: EncodedFrame): Promise<StoredPixels> {
  const { codec, frame, format: fmt, label } = f;
  const bytesPerSample = (fmt.bitsAllocated / 8) as 1 | 2;
  const expected = fmt.rows * fmt.cols * bytesPerSample;
  let decoded: DecodedFrame;
  try {
    decoded =
      codec === 'jpeg2000'
        ? await decodeJpeg2000(frame)
        : codec === 'jpeg-lossless'
          ? decodeJpegLossless(frame, bytesPerSample)
          : {
              width: fmt.cols,
              height: fmt.rows,
              bytesPerSample,
              data: decodeRleFrame(frame, fmt.rows, fmt.cols, bytesPerSample),
            };
  } catch (e) {
    if (isCuriaError(e)) throw new CuriaError(e.code, `${label}: ${e.message}`, { cause: e });
    throw e;
  }
  if (decoded.width !== fmt.cols || decoded.height !== fmt.rows) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${label}: decoded frame is ${decoded.width}x${decoded.height} but Columns x Rows is ${fmt.cols}x${fmt.rows}`,
    );
  }
  if (decoded.bytesPerSample !== bytesPerSample) {
    if (decoded.bytesPerSample === 1 && bytesPerSample === 2) {
      const wide = new Uint8Array(expected);
      for (let i = 0; i < decoded.data.length; i++) wide[2 * i] = decoded.data[i]!;
      return toStored(wide, fmt, true);
    }
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${label}: decoded frame has 16-bit samples but BitsAllocated is 8`,
    );
  }
  if (decoded.data.length < expected)
    throw new CuriaError('INVALID_ARGUMENT', `${label}: decoded frame is short`);
  return toStored(decoded.data.subarray(0, expected), fmt, true);
}

/**
 * Views little-endian sample bytes as typed values, masking to BitsStored and sign-extending when
 * PixelRepresentation is 1. Caller-owned bytes are copied before any change.
 */
export function toStored(raw: Uint8Array, fmt: PixelFormat, owned: boolean): StoredPixels {
  const signed = fmt.pixelRepresentation === 1;
  const bits = fmt.bitsStored;
  const full = bits >= fmt.bitsAllocated;
  if (fmt.bitsAllocated === 8) {
    if (full) return signed ? new Int8Array(raw.buffer, raw.byteOffset, raw.length) : raw;
    const out = signed ? new Int8Array(raw.length) : new Uint8Array(raw.length);
    maskInto(raw, out, bits, signed);
    return out;
  }
  const n = raw.length >> 1;
  let src = raw;
  if (raw.byteOffset % 2 !== 0) {
    src = new Uint8Array(raw.length);
    src.set(raw);
    owned = true;
  }
  const u16 = new Uint16Array(src.buffer, src.byteOffset, n);
  if (full) return signed ? new Int16Array(src.buffer, src.byteOffset, n) : u16;
  if (owned) {
    maskInto(u16, signed ? new Int16Array(src.buffer, src.byteOffset, n) : u16, bits, signed);
    return signed ? new Int16Array(src.buffer, src.byteOffset, n) : u16;
  }
  const out = signed ? new Int16Array(n) : new Uint16Array(n);
  maskInto(u16, out, bits, signed);
  return out;
}

function maskInto(src: Uint8Array | Uint16Array, out: StoredPixels, bits: number, signed: boolean): void {
  const mask = (1 << bits) - 1;
  const sign = 1 << (bits - 1);
  const range = 1 << bits;
  for (let i = 0; i < src.length; i++) {
    const v = src[i]! & mask;
    out[i] = signed && v & sign ? v - range : v;
  }
}
