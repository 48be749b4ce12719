import { CuriaError } from '@curia/errors';

/** How a transfer syntax stores pixel data. */
export type PixelCodec = 'native' | 'jpeg2000' | 'jpeg-lossless' | 'rle';

const NAMES: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2': 'Implicit VR Little Endian',
  '1.2.840.10008.1.2.1': 'Explicit VR Little Endian',
  '1.2.840.10008.1.2.1.99': 'Deflated Explicit VR Little Endian',
  '1.2.840.10008.1.2.2': 'Explicit VR Big Endian (retired)',
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline (Process 1)',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (Process 2 & 4)',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless, Non-Hierarchical (Process 14)',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 SV1)',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-Lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Image Compression (Lossless Only)',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000 Image Compression',
  '1.2.840.10008.1.2.4.100': 'MPEG2 Main Profile / Main Level',
  '1.2.840.10008.1.2.4.201': 'High-Throughput JPEG 2000 (Lossless Only)',
  '1.2.840.10008.1.2.4.202': 'High-Throughput JPEG 2000 with RPCL Options (Lossless Only)',
  '1.2.840.10008.1.2.4.203': 'High-Throughput JPEG 2000',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

const CODECS: Readonly<Record<string, PixelCodec>> = {
  '1.2.840.10008.1.2': 'native',
  '1.2.840.10008.1.2.1': 'native',
  '1.2.840.10008.1.2.4.57': 'jpeg-lossless',
  '1.2.840.10008.1.2.4.70': 'jpeg-lossless',
  '1.2.840.10008.1.2.4.90': 'jpeg2000',
  '1.2.840.10008.1.2.4.91': 'jpeg2000',
  '1.2.840.10008.1.2.5': 'rle',
};

/** Human-readable name of a transfer syntax UID ("unknown transfer syntax" when not in the table). */
export function transferSyntaxName(uid: string): string {
  return NAMES[uid] ?? 'unknown transfer syntax';
}

/** The pixel codec of a transfer syntax, or UNIMPLEMENTED naming the UID and its name. */
export function codecFor(uid: string): PixelCodec {
  const c = CODECS[uid];
  if (!c) {
    throw new CuriaError(
      'UNIMPLEMENTED',
      `DICOM transfer syntax ${uid} (${transferSyntaxName(uid)}) is not supported; supported: implicit/explicit VR little endian, JPEG 2000, JPEG lossless (.57/.70), RLE lossless`,
    );
  }
  return c;
}
