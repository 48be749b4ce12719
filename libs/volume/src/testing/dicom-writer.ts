/** Test helper: writes minimal single-frame DICOM Part 10 files in memory. */

/** Options of {@link writeDicom}. */
export interface DicomWriteOptions {
  readonly transferSyntaxUid: string;
  readonly seriesInstanceUid: string;
  readonly rows: number;
  readonly cols: number;
  readonly bitsAllocated: 8 | 16;
  readonly bitsStored?: number;
  readonly pixelRepresentation: 0 | 1;
  readonly iop: readonly number[];
  readonly ipp: readonly number[];
  readonly pixelSpacing: readonly [number, number];
  readonly slope?: number;
  readonly intercept?: number;
  /** Native little-endian sample bytes, or (when `encapsulated`) the one compressed frame. */
  readonly pixelData: Uint8Array;
  readonly encapsulated?: boolean;
  readonly patientName?: string;
  readonly patientId?: string;
  /** Written when given (SOP Class UID is then CT Image Storage), as real series carry them. */
  readonly sopInstanceUid?: string;
  readonly studyInstanceUid?: string;
  readonly frameOfReferenceUid?: string;
}

const IMPLICIT_LE = '1.2.840.10008.1.2';

class Writer {
  private parts: Uint8Array[] = [];
  constructor(private readonly implicit: boolean) {}
  get bytes(): Uint8Array {
    return Buffer.concat(this.parts);
  }
  private tag(group: number, element: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt16LE(group, 0);
    b.writeUInt16LE(element, 2);
    this.parts.push(b);
  }
  raw(group: number, element: number, vr: string, value: Uint8Array, undefinedLength = false): void {
    this.tag(group, element);
    const len = undefinedLength ? 0xffffffff : value.length;
    if (this.implicit) {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(len, 0);
      this.parts.push(b);
    } else if (['OB', 'OW', 'SQ', 'UN', 'UT'].includes(vr)) {
      const b = Buffer.alloc(8);
      b.write(vr, 0, 'latin1');
      b.writeUInt32LE(len, 4);
      this.parts.push(b);
    } else {
      const b = Buffer.alloc(4);
      b.write(vr, 0, 'latin1');
      b.writeUInt16LE(len, 2);
      this.parts.push(b);
    }
    this.parts.push(value);
  }
  str(group: number, element: number, vr: string, s: string): void {
    let v = s;
    if (v.length % 2) v += vr === 'UI' ? '\0' : ' ';
    this.raw(group, element, vr, Buffer.from(v, 'latin1'));
  }
  us(group: number, element: number, v: number): void {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v, 0);
    this.raw(group, element, 'US', b);
  }
  push(b: Uint8Array): void {
    this.parts.push(b);
  }
}

function item(group: number, element: number, length: number): Uint8Array {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(group, 0);
  b.writeUInt16LE(element, 2);
  b.writeUInt32LE(length, 4);
  return b;
}

const ds = (v: readonly number[]): string => v.map((x) => String(Number(x.toPrecision(10)))).join('\\');

/** Builds one DICOM file: explicit VR LE meta group, then the dataset in the transfer syntax's VR encoding. */
export function writeDicom(o: DicomWriteOptions): Uint8Array {
  const meta = new Writer(false);
  meta.raw(0x0002, 0x0001, 'OB', new Uint8Array([0, 1]));
  meta.str(0x0002, 0x0002, 'UI', '1.2.840.10008.5.1.4.1.1.2');
  meta.str(0x0002, 0x0003, 'UI', o.sopInstanceUid ?? '1.2.3.4');
  meta.str(0x0002, 0x0010, 'UI', o.transferSyntaxUid);
  const metaBytes = meta.bytes;
  const groupLen = new Writer(false);
  const ul = Buffer.alloc(4);
  ul.writeUInt32LE(metaBytes.length, 0);
  groupLen.raw(0x0002, 0x0000, 'UL', ul);

  const d = new Writer(o.transferSyntaxUid === IMPLICIT_LE);
  if (o.sopInstanceUid) {
    d.str(0x0008, 0x0016, 'UI', '1.2.840.10008.5.1.4.1.1.2');
    d.str(0x0008, 0x0018, 'UI', o.sopInstanceUid);
  }
  d.str(0x0008, 0x0060, 'CS', 'CT');
  d.str(0x0010, 0x0010, 'PN', o.patientName ?? 'DOE^JANE');
  d.str(0x0010, 0x0020, 'LO', o.patientId ?? 'PID-0001');
  if (o.studyInstanceUid) d.str(0x0020, 0x000d, 'UI', o.studyInstanceUid);
  d.str(0x0020, 0x000e, 'UI', o.seriesInstanceUid);
  d.str(0x0020, 0x0032, 'DS', ds(o.ipp));
  d.str(0x0020, 0x0037, 'DS', ds(o.iop));
  if (o.frameOfReferenceUid) d.str(0x0020, 0x0052, 'UI', o.frameOfReferenceUid);
  d.us(0x0028, 0x0002, 1);
  d.str(0x0028, 0x0004, 'CS', 'MONOCHROME2');
  d.us(0x0028, 0x0010, o.rows);
  d.us(0x0028, 0x0011, o.cols);
  d.str(0x0028, 0x0030, 'DS', ds(o.pixelSpacing));
  const stored = o.bitsStored ?? o.bitsAllocated;
  d.us(0x0028, 0x0100, o.bitsAllocated);
  d.us(0x0028, 0x0101, stored);
  d.us(0x0028, 0x0102, stored - 1);
  d.us(0x0028, 0x0103, o.pixelRepresentation);
  d.str(0x0028, 0x1052, 'DS', ds([o.intercept ?? 0]));
  d.str(0x0028, 0x1053, 'DS', ds([o.slope ?? 1]));
  if (o.encapsulated) {
    const frame = o.pixelData.length % 2 ? Buffer.concat([o.pixelData, new Uint8Array(1)]) : o.pixelData;
    d.raw(0x7fe0, 0x0010, 'OB', new Uint8Array(0), true);
    d.push(item(0xfffe, 0xe000, 0));
    d.push(item(0xfffe, 0xe000, frame.length));
    d.push(frame);
    d.push(item(0xfffe, 0xe0dd, 0));
  } else {
    d.raw(0x7fe0, 0x0010, o.bitsAllocated === 16 ? 'OW' : 'OB', o.pixelData);
  }
  const preamble = new Uint8Array(132);
  preamble.set([0x44, 0x49, 0x43, 0x4d], 128);
  return Buffer.concat([preamble, groupLen.bytes, metaBytes, d.bytes]);
}

/** PackBits-encodes one byte plane (replicate runs for 3+ equal bytes, literals otherwise). */
export function packBits(src: Uint8Array): Uint8Array {
  const out: number[] = [];
  let i = 0;
  while (i < src.length) {
    let run = 1;
    while (i + run < src.length && run < 128 && src[i + run] === src[i]) run++;
    if (run >= 3) {
      out.push(257 - run, src[i]!);
      i += run;
      continue;
    }
    const start = i;
    while (i < src.length && i - start < 128) {
      if (i + 2 < src.length && src[i] === src[i + 1] && src[i] === src[i + 2]) break;
      i++;
    }
    out.push(i - start - 1, ...src.subarray(start, i));
  }
  return Uint8Array.from(out);
}

/** Encodes little-endian samples as a DICOM RLE Lossless frame (one segment per byte, MSB first). */
export function encodeRle(samples: Uint8Array, bytesPerSample: 1 | 2): Uint8Array {
  const n = samples.length / bytesPerSample;
  const segments: Uint8Array[] = [];
  for (let s = 0; s < bytesPerSample; s++) {
    const plane = new Uint8Array(n);
    const byteIndex = bytesPerSample - 1 - s;
    for (let i = 0; i < n; i++) plane[i] = samples[i * bytesPerSample + byteIndex]!;
    let seg = packBits(plane);
    if (seg.length % 2) seg = Uint8Array.from([...seg, 0x80]);
    segments.push(seg);
  }
  const header = Buffer.alloc(64);
  header.writeUInt32LE(segments.length, 0);
  let off = 64;
  segments.forEach((seg, s) => {
    header.writeUInt32LE(off, 4 + 4 * s);
    off += seg.length;
  });
  return Buffer.concat([header, ...segments]);
}

/**
 * One RLE-compressed axial int16 frame of `rows` × `cols` zeros: a file of a few MB at most that
 * decodes to rows × cols × 2 bytes (the shape of a DICOM decompression bomb).
 */
export function zeroRleFrame(rows: number, cols: number): Uint8Array {
  return writeDicom({
    transferSyntaxUid: '1.2.840.10008.1.2.5',
    seriesInstanceUid: '1.2.3',
    rows,
    cols,
    bitsAllocated: 16,
    pixelRepresentation: 1,
    iop: [1, 0, 0, 0, 1, 0],
    ipp: [0, 0, 0],
    pixelSpacing: [1, 1],
    pixelData: encodeRle(new Uint8Array(rows * cols * 2), 2),
    encapsulated: true,
  });
}
