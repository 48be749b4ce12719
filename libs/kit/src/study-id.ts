import { CuriaError } from '@curia/errors';

const STUDY_ID = /^[A-Za-z0-9._:-]{0,128}$/;

/**
 * Checks a caller's opaque study id. It is logged and traced, so its alphabet is restricted:
 * a name like "John^Doe" (DICOM PN) is refused rather than written to the logs.
 */
export function checkStudyId(id: string, field = 'header.study_id'): void {
  if (!STUDY_ID.test(id)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${field} must be at most 128 characters of [A-Za-z0-9._:-] (it is logged; never use PHI)`,
    );
  }
}
