// Minimal types for the parts of dcmjs (MIT, no bundled types) that dicom-seg.ts uses.
// Shapes follow dcmjs 0.51's build/dcmjs.es.js; only what this package calls is declared.

declare module 'dcmjs' {
  /** A naturalized dataset: attribute keywords → values (sequences are arrays of datasets). */
  export type NaturalizedDataset = Record<string, unknown>;

  export namespace data {
    /** One element in the DICOM JSON model, as dcmjs reads and writes it. */
    interface ElementJson {
      vr: string;
      Value?: unknown[];
    }

    interface ReadFileOptions {
      ignoreErrors?: boolean;
      /** Stop before this tag (8 upper-case hex digits, e.g. '7FE00010'). */
      untilTag?: string | null;
      includeUntilTagValue?: boolean;
      noCopy?: boolean;
    }

    class DicomDict {
      constructor(meta: Record<string, ElementJson>);
      meta: Record<string, ElementJson>;
      dict: Record<string, ElementJson>;
      upsertTag(tag: string, vr: string, values: unknown[]): void;
      /** A Part-10 file: preamble, meta group, dataset in the meta's transfer syntax. */
      write(options?: { allowInvalidVRLength?: boolean }): ArrayBuffer;
    }

    class DicomMessage {
      static readFile(buffer: ArrayBuffer, options?: ReadFileOptions): DicomDict;
    }

    class DicomMetaDictionary {
      static naturalizeDataset(dict: Record<string, ElementJson>): NaturalizedDataset;
    }

    /** Denaturalizes a dataset and gives it a fresh file meta group (SOP class/instance from the dataset). */
    function datasetToDict(dataset: NaturalizedDataset): DicomDict;

    class Colors {
      /** sRGB in 0..1 → DICOM CIELab (0..65535 each). */
      static rgb2DICOMLAB(rgb: readonly number[]): number[];
    }
  }

  export namespace derivations {
    interface DerivedOptions {
      SeriesInstanceUID?: string;
      SOPInstanceUID?: string;
      SeriesDescription?: string;
      SeriesNumber?: string;
      Manufacturer?: string;
      ManufacturerModelName?: string;
      SoftwareVersions?: string;
      DeviceSerialNumber?: string;
      ImageComments?: string;
      /** Keep SpacingBetweenSlices in the shared Pixel Measures (dcmqi/Slicer want it). */
      includeSliceSpacing?: boolean;
    }

    /** Segment metadata as dcmjs's Segmentation takes it (it numbers segments itself). */
    interface SegmentMetadata {
      SegmentLabel: string;
      SegmentedPropertyCategoryCodeSequence: NaturalizedDataset;
      SegmentedPropertyTypeCodeSequence: NaturalizedDataset;
      SegmentAlgorithmType: 'AUTOMATIC' | 'SEMIAUTOMATIC' | 'MANUAL';
      SegmentAlgorithmName?: string;
      RecommendedDisplayCIELabValue?: number[];
    }

    /**
     * A BINARY Segmentation derived from one normalized multiframe reference dataset (per-frame
     * PlanePositionSequence, ReferencedSeriesSequence with one instance per frame).
     */
    class Segmentation {
      constructor(datasets: NaturalizedDataset[], options?: DerivedOptions);
      readonly dataset: NaturalizedDataset;
      /** Allocates the unpacked (one byte per pixel) frames. */
      setNumberOfFrames(frames: number): void;
      /**
       * Appends one frame per referenced frame: pixels equal to `segmentIndexInLabelmap` in
       * `labelmaps[f]` are set; `referencedFrameNumbers[f]` (1-based) is its reference frame.
       */
      addSegmentFromLabelmap(
        segment: SegmentMetadata,
        labelmaps: readonly ArrayLike<number>[],
        segmentIndexInLabelmap: number,
        referencedFrameNumbers: readonly number[],
      ): void;
      /** Packs the frames to 1 bit per pixel (call once, after the last segment). */
      bitPackPixelData(): void;
    }
  }

  type LogLevel = 0 | 1 | 2 | 3 | 4 | 5 | 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';

  /** dcmjs's own loglevel logger (its warnings can quote element values). */
  export const log: {
    getLevel(): 0 | 1 | 2 | 3 | 4 | 5;
    setLevel(level: LogLevel, persist?: boolean): void;
  };
}
