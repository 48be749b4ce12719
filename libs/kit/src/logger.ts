import { isCuriaError } from '@curia/errors';
import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * Keys never written to logs. Curia logs opaque study IDs only; anything that could carry
 * patient identifiers or pixel data is censored wherever it appears in a log object.
 */
export const REDACTED_KEYS = [
  'pixels',
  'pixel_values',
  'pixelValues',
  'data',
  'chunk',
  'mask',
  'patientName',
  'PatientName',
  'patientId',
  'PatientID',
  'PatientBirthDate',
  'StudyDate',
  'SeriesDate',
  'AccessionNumber',
  'authorization',
  // Raw study ids: logs carry studyRef(id) under `study` instead.
  'studyId',
  'study_id',
] as const;

/**
 * The `err` serializer: a CuriaError is logged by code and its own message only. Its `cause` (the
 * wrapped file error, whose message and `path` can name a patient's file) stays on the object for
 * local debugging and is never written — pino's default would append the cause's message.
 */
export function serializeError(err: unknown): unknown {
  if (isCuriaError(err)) return { type: err.name, code: err.code, message: err.message, stack: err.stack };
  return pino.stdSerializers.err(err as Error);
}

/**
 * Creates the structured JSON logger of a service (to stdout, or `destination`, e.g. a test's
 * capture).
 */
export function createLogger(
  service: string,
  level = 'info',
  replica = '',
  destination?: DestinationStream,
): Logger {
  const options = {
    level,
    serializers: { err: serializeError },
    base: { service, ...(replica ? { replica } : {}), pid: process.pid },
    redact: {
      paths: [...REDACTED_KEYS, ...REDACTED_KEYS.map((k) => `*.${k}`)],
      censor: '[redacted]',
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
