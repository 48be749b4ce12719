import type { common } from '@curia/proto';

/** Files a service returns travel in chunks of this size. */
export const FILE_CHUNK_BYTES = 1024 * 1024;

/**
 * A file a service returns (a label map, a displacement field, a DICOM SEG) as `FileChunk`
 * messages of {@link FILE_CHUNK_BYTES}, each wrapped into the rpc's response by `wrap`. An empty
 * file is one empty last chunk.
 */
export function* fileChunks<R>(
  bytes: Uint8Array,
  fileName: string,
  wrap: (chunk: common.FileChunk) => R,
): Generator<R> {
  for (let offset = 0; offset < bytes.length || offset === 0; offset += FILE_CHUNK_BYTES) {
    const data = bytes.subarray(offset, offset + FILE_CHUNK_BYTES);
    yield wrap({ fileName, data, offset, lastChunk: offset + data.length >= bytes.length });
    if (bytes.length === 0) break;
  }
}
