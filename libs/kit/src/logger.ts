import { pino, type Logger } from 'pino';

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
] as const;

/** Creates the structured JSON logger of a service. */
export function createLogger(service: string, level = 'info', replica = ''): Logger {
  return pino({
    level,
    base: { service, ...(replica ? { replica } : {}), pid: process.pid },
    redact: {
      paths: [...REDACTED_KEYS, ...REDACTED_KEYS.map((k) => `*.${k}`)],
      censor: '[redacted]',
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

export type { Logger };
