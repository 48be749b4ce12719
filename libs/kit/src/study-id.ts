import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { CuriaError } from '@curia/errors';

import { ConfigError } from './config.js';

const STUDY_ID = /^[A-Za-z0-9._:-]{0,128}$/;
/** A DICOM UID (digits in dot-separated components: 1.2.840.10008…) identifies a real study. */
const DICOM_UID = /^[0-9]+(\.[0-9]+){2,}$/;
/** Six or more digits alone: the shape of a medical record or accession number. */
const RECORD_NUMBER = /^[0-9]{6,}$/;

/**
 * Checks a caller's opaque study id. Its alphabet is restricted, and ids shaped like a DICOM
 * Study/Series Instance UID or a record number are refused: such values identify a patient's
 * study outside this system. Logs, traces and audit lines carry only {@link studyRef} of it.
 */
export function checkStudyId(id: string, field = 'header.study_id'): void {
  if (!STUDY_ID.test(id)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${field} must be at most 128 characters of [A-Za-z0-9._:-] (it is logged; never use PHI)`,
    );
  }
  if (DICOM_UID.test(id) || RECORD_NUMBER.test(id)) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${field} looks like a DICOM UID or a record number; send an opaque id of your own (e.g. a random UUID), never an identifier of the patient's study`,
    );
  }
}

let hashKey: Buffer = randomBytes(32);
let keyConfigured = false;

/**
 * Sets the key of {@link studyRef} from a secret file (`CURIA_AUDIT_KEY_FILE`); every replica and
 * service given the same key hashes an id the same way, so audit lines correlate across hops.
 * Without one the key is random per process.
 */
export function configureStudyHashKey(file: string | undefined): void {
  if (!file) return;
  let key: Buffer;
  try {
    key = readFileSync(file);
  } catch (err) {
    throw new ConfigError(`CURIA_AUDIT_KEY_FILE: cannot read ${file}: ${(err as Error).message}`);
  }
  if (key.length < 16) {
    throw new ConfigError(`CURIA_AUDIT_KEY_FILE: the key must be at least 16 bytes (got ${key.length})`);
  }
  hashKey = key;
  keyConfigured = true;
}

/** True when the study hash key came from `CURIA_AUDIT_KEY_FILE` (false: random per process). */
export function studyHashKeyConfigured(): boolean {
  return keyConfigured;
}

/**
 * The form of a study id that logs, traces and audit lines carry: `s-` and 16 hex digits of
 * HMAC-SHA256(key, id). Without the key it cannot be reversed by trying candidate ids.
 * Empty ids stay empty.
 */
export function studyRef(id: string): string {
  if (!id) return '';
  return `s-${createHmac('sha256', hashKey).update(id).digest('hex').slice(0, 16)}`;
}
