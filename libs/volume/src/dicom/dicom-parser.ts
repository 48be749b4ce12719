import { createRequire } from 'node:module';

import type * as DicomParser from 'dicom-parser';

export type { DataSet } from 'dicom-parser';

/** dicom-parser, loaded through require: its UMD bundle has no ESM named exports. */
export const dicomParser = createRequire(import.meta.url)('dicom-parser') as typeof DicomParser;
