import { createRequire } from 'node:module';

import { CuriaError } from '@curia/errors';

const require = createRequire(import.meta.url);

interface J2KFrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned: boolean;
}

interface J2KDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  getDecodedBuffer(): Uint8Array;
  decode(): void;
  getFrameInfo(): J2KFrameInfo;
  delete(): void;
}

interface OpenJpegModule {
  J2KDecoder: new () => J2KDecoder;
}

type OpenJpegFactory = (opts: {
  print: (s: string) => void;
  printErr: (s: string) => void;
}) => Promise<OpenJpegModule>;

let openjpeg: Promise<OpenJpegModule> | null = null;

function loadOpenJpeg(): Promise<OpenJpegModule> {
  if (!openjpeg) {
    const factory = require('@cornerstonejs/codec-openjpeg/decodewasmjs') as OpenJpegFactory;
    // The WASM build logs [INFO] lines for every frame; keep stdout clean.
    openjpeg = factory({ print: () => undefined, printErr: () => undefined });
  }
  return openjpeg;
}

/** Raw decoded samples of one frame: little-endian, 1 or 2 bytes per sample. */
export interface DecodedFrame {
  readonly width: number;
  readonly height: number;
  readonly bytesPerSample: 1 | 2;
  readonly data: Uint8Array;
}

/**
 * Decodes a JPEG 2000 codestream with OpenJPEG (WASM). A frame without its end-of-codestream
 * marker is refused first: OpenJPEG would otherwise decode a truncated stream partially.
 */
export async function decodeJpeg2000(frame: Uint8Array): Promise<DecodedFrame> {
  if (!hasJ2kEoc(frame)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      'JPEG 2000 frame is truncated (no end-of-codestream marker FFD9)',
    );
  }
  const mod = await loadOpenJpeg();
  const dec = new mod.J2KDecoder();
  try {
    dec.getEncodedBuffer(frame.length).set(frame);
    try {
      dec.decode();
    } catch (e) {
      throw new CuriaError('INVALID_ARGUMENT', 'JPEG 2000 frame could not be decoded (corrupt codestream)', {
        cause: e,
      });
    }
    const info = dec.getFrameInfo();
    if (info.width === 0 || info.height === 0) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        'JPEG 2000 frame could not be decoded (corrupt or truncated codestream)',
      );
    }
    if (info.componentCount !== 1) {
      throw new CuriaError(
        'UNIMPLEMENTED',
        `JPEG 2000 frame has ${info.componentCount} components; only grayscale is supported`,
      );
    }
    const bytesPerSample = info.bitsPerSample > 8 ? 2 : 1;
    const decoded = dec.getDecodedBuffer();
    // Copy out of WASM memory: the decoder's buffer is freed with it.
    const data = new Uint8Array(decoded.length);
    data.set(decoded);
    return { width: info.width, height: info.height, bytesPerSample, data };
  } finally {
    dec.delete();
  }
}

function hasJ2kEoc(frame: Uint8Array): boolean {
  // Fragments are padded to even length, so the marker may be followed by one zero byte.
  for (let i = frame.length - 2; i >= Math.max(0, frame.length - 4); i--) {
    if (frame[i] === 0xff && frame[i + 1] === 0xd9) return true;
  }
  return false;
}

interface LosslessDecoderInstance {
  decode(buffer: ArrayBuffer, offset: number, length: number, numBytes: number): Uint8Array | Uint16Array;
  xDim: number;
  yDim: number;
  numComp: number;
}

interface LosslessModule {
  Decoder: new () => LosslessDecoderInstance;
}

/** Decodes a JPEG Lossless (process 14) frame with jpeg-lossless-decoder-js. */
export function decodeJpegLossless(frame: Uint8Array, bytesPerSample: 1 | 2): DecodedFrame {
  const mod = require('jpeg-lossless-decoder-js') as LosslessModule;
  const dec = new mod.Decoder();
  let out: Uint8Array | Uint16Array;
  try {
    out = dec.decode(frame.buffer as ArrayBuffer, frame.byteOffset, frame.byteLength, bytesPerSample);
  } catch (e) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      'JPEG lossless frame could not be decoded (corrupt or truncated)',
      { cause: e },
    );
  }
  if (dec.numComp !== 1) {
    throw new CuriaError(
      'UNIMPLEMENTED',
      `JPEG lossless frame has ${dec.numComp} components; only grayscale is supported`,
    );
  }
  return {
    width: dec.xDim,
    height: dec.yDim,
    bytesPerSample,
    data: new Uint8Array(out.buffer, out.byteOffset, out.byteLength),
  };
}
