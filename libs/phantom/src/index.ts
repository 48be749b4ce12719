/**
 * `@curia/phantom`: a deterministic synthetic abdominal CT phantom with its label map, NIfTI
 * export and PNG slice previews (radiological display convention).
 */
export { generatePhantom } from './generate.js';
export { MAX_PHANTOM_VOXELS, resolvePhantomOptions } from './options.js';
export type { Phantom, PhantomOptions, PhantomOrientation, ResolvedPhantomOptions } from './options.js';
export { HU as PHANTOM_HU, PHANTOM_LABEL_NAMES } from './anatomy.js';
export { applyAffine, phantomAffine } from './geometry.js';
export { labelTableJson, phantomImageNifti, phantomLabelsNifti, phantomToNifti } from './nifti.js';
export type { PhantomNifti, PhantomNiftiOptions } from './nifti.js';
export { evenSliceIndices, phantomDisplaySlice, volumeDisplaySlice } from './slices.js';
export type { DisplaySlice } from './slices.js';
export { labelColor, renderSlicePng } from './png.js';
export type { RenderSliceOptions } from './png.js';
export { previewIndexHtml } from './preview-html.js';
export type { PreviewEntry } from './preview-html.js';
