// dicomweb-client (the DICOMweb client OHIF and many tools use) in Node for tests: it speaks
// XMLHttpRequest, which Node lacks, so the `xhr2` implementation over node:http stands in.

import XMLHttpRequestImpl from 'xhr2';
import { api } from 'dicomweb-client';

(globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest ??= XMLHttpRequestImpl;

export type DicomJsonObject = Record<
  string,
  { vr: string; Value?: unknown[]; InlineBinary?: string; BulkDataURI?: string }
>;

export interface TestDicomwebClient {
  searchForStudies(options?: { queryParams?: Record<string, unknown> }): Promise<DicomJsonObject[]>;
  searchForSeries(options?: {
    studyInstanceUID?: string;
    queryParams?: Record<string, unknown>;
  }): Promise<DicomJsonObject[]>;
  searchForInstances(options?: {
    studyInstanceUID?: string;
    seriesInstanceUID?: string;
    queryParams?: Record<string, unknown>;
  }): Promise<DicomJsonObject[]>;
  storeInstances(options: { datasets: ArrayBuffer[]; studyInstanceUID?: string }): Promise<unknown>;
  retrieveSeriesMetadata(options: { studyInstanceUID: string; seriesInstanceUID: string }): Promise<unknown>;
  retrieveInstanceFrames(options: {
    studyInstanceUID: string;
    seriesInstanceUID: string;
    sopInstanceUID: string;
    frameNumbers: number[];
    mediaTypes?: Array<{ mediaType: string; transferSyntaxUID?: string }>;
  }): Promise<unknown>;
  retrieveInstance(options: {
    studyInstanceUID: string;
    seriesInstanceUID: string;
    sopInstanceUID: string;
  }): Promise<unknown>;
  retrieveBulkData(options: { BulkDataURI: string }): Promise<unknown>;
  retrieveSeries(options: { studyInstanceUID: string; seriesInstanceUID: string }): Promise<unknown>;
  retrieveStudy(options: { studyInstanceUID: string }): Promise<unknown>;
}

export function dicomwebClient(url: string, headers: Record<string, string> = {}): TestDicomwebClient {
  return new api.DICOMwebClient({ url, headers }) as unknown as TestDicomwebClient;
}

/** The first value of an attribute (PN: its Alphabetic form). */
export function value(json: DicomJsonObject, tagKey: string): unknown {
  const v = json[tagKey]?.Value?.[0];
  return v !== null && typeof v === 'object' && 'Alphabetic' in v
    ? (v as { Alphabetic: string }).Alphabetic
    : v;
}
