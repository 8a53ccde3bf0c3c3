// The radiology viewer's side of DICOMweb: MedStream's own QIDO-RS and WADO-RS roots, the access
// token (when auth is on) on every request, and small readers for DICOM JSON attributes.

import { ApiError, errorOf } from '../common.js';

/** DICOM JSON: `{ "0020000D": { vr, Value: [...] } }`. */
export type DicomJson = Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string } | undefined>;

export interface DicomwebClient {
  /** Absolute root, e.g. `http://127.0.0.1:3000/dicomweb`. */
  root: string;
  token?: string;
  /** `path` under the root (leading slash) as JSON. */
  json<T = DicomJson[]>(path: string, signal?: AbortSignal): Promise<T>;
  /** A URL for an `<img>` (the token as `?token=`: an image request carries no header). */
  linkUrl(path: string): string;
  /** Headers for requests the page makes itself or the image loader makes. */
  headers(): Record<string, string>;
}

export function dicomwebClient(root: string, token?: string): DicomwebClient {
  const headers = (): Record<string, string> => (token ? { Authorization: `Bearer ${token}` } : {});
  return {
    root,
    token,
    headers,
    async json<T>(path: string, signal?: AbortSignal): Promise<T> {
      const res = await fetch(`${root}${path}`, {
        signal,
        headers: { accept: 'application/dicom+json', ...headers() },
      });
      if (!res.ok) throw await errorOf(res);
      return (await res.json()) as T;
    },
    linkUrl(path: string): string {
      if (!token) return `${root}${path}`;
      return `${root}${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
    },
  };
}

export function str(item: DicomJson, tag: string): string {
  const v = item[tag]?.Value?.[0];
  if (v === undefined || v === null) return '';
  if (typeof v === 'object' && 'Alphabetic' in v)
    return String((v as { Alphabetic: unknown }).Alphabetic ?? '');
  return String(v);
}

export function num(item: DicomJson, tag: string): number | undefined {
  const v = item[tag]?.Value?.[0];
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

export function nums(item: DicomJson, tag: string): number[] {
  return (item[tag]?.Value ?? []).map((v) => Number(v));
}

/** `Doe^John` → `Doe, John`; DICOM dates `20240131` → `2024-01-31`. */
export function personName(s: string): string {
  return s.split('^').filter(Boolean).join(', ');
}

export function dicomDate(s: string): string {
  return /^\d{8}$/.test(s) ? `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}` : s;
}

export { ApiError };

export const TAG = {
  StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E',
  SOPInstanceUID: '00080018',
  StudyDate: '00080020',
  AccessionNumber: '00080050',
  Modality: '00080060',
  ModalitiesInStudy: '00080061',
  StudyDescription: '00081030',
  SeriesDescription: '0008103E',
  PatientName: '00100010',
  PatientID: '00100020',
  SeriesNumber: '00200011',
  InstanceNumber: '00200013',
  NumberOfStudyRelatedSeries: '00201206',
  NumberOfStudyRelatedInstances: '00201208',
  NumberOfSeriesRelatedInstances: '00201209',
  NumberOfFrames: '00280008',
  ImagePositionPatient: '00200032',
  ImageOrientationPatient: '00200037',
  Rows: '00280010',
  Columns: '00280011',
  PixelSpacing: '00280030',
  WindowCenter: '00281050',
  WindowWidth: '00281051',
} as const;
