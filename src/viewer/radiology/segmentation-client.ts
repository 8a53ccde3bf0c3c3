// The radiology viewer's side of the segmentation API (docs/segmentation.md): submit a box as a
// job, poll it, fetch its files, cancel it; store an accepted SEG into the study over STOW-RS;
// list the study's SEG series over QIDO-RS and fetch one over WADO-RS; save a file. Every request
// carries the page's DICOMweb token (Bearer) when there is one.

import { errorOf } from '../common.js';
import { str, TAG, type DicomJson, type DicomwebClient } from './dicomweb.js';

export interface JobRequest {
  series: string;
  instance?: string;
  slice?: number;
  box: [number, number, number, number];
  window?: [number, number];
  engine: string;
  label: string;
  color?: string;
  store: boolean;
}

export interface JobView {
  id: string;
  state: 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
  request: JobRequest & { study: string };
  progress: { slicesRead?: number; slicesTotal?: number; slicesDone?: number; slicesVisited?: number };
  error?: { code: string; message: string };
  result?: {
    voxels: number;
    millilitres: number;
    keySlice: number;
    slices?: [number, number];
    noSeg?: string;
    files: Record<string, string>;
  };
}

export interface SegSeries {
  seriesUid: string;
  description: string;
  number: string;
}

export class SegmentationClient {
  /** The server's root (the DICOMweb root without its `/dicomweb`). */
  readonly base: string;

  constructor(private readonly dicomweb: DicomwebClient) {
    this.base = dicomweb.root.replace(/\/dicomweb$/, '');
  }

  async submit(request: JobRequest): Promise<JobView> {
    return this.json(`${this.base}/segmentations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request),
    });
  }

  job(id: string, signal?: AbortSignal): Promise<JobView> {
    return this.json(`${this.base}/segmentations/${id}`, { signal });
  }

  cancel(id: string): Promise<JobView> {
    return this.json(`${this.base}/segmentations/${id}`, { method: 'DELETE' });
  }

  /** `mask.nii.gz` or `seg.dcm` of a done job. */
  file(id: string, name: 'mask.nii.gz' | 'seg.dcm'): Promise<Uint8Array> {
    return this.bytes(`${this.base}/segmentations/${id}/${name}`, {});
  }

  /** Stores a SEG into its study (STOW-RS); answers the stored series UID. */
  async store(studyUid: string, seg: Uint8Array): Promise<void> {
    const boundary = `medstream-${crypto.randomUUID()}`;
    const head = new TextEncoder().encode(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
    const tail = new TextEncoder().encode(`\r\n--${boundary}--\r\n`);
    const body = new Uint8Array(head.length + seg.length + tail.length);
    body.set(head);
    body.set(seg, head.length);
    body.set(tail, head.length + seg.length);
    const res = await fetch(`${this.dicomweb.root}/studies/${studyUid}`, {
      method: 'POST',
      headers: {
        ...this.dicomweb.headers(),
        accept: 'application/dicom+json',
        'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
      },
      body,
    });
    if (!res.ok) throw await errorOf(res);
  }

  /** The study's SEG series (QIDO-RS). */
  async segSeries(studyUid: string): Promise<SegSeries[]> {
    const list = await this.dicomweb.json<DicomJson[]>(`/studies/${studyUid}/series?Modality=SEG`);
    return list.map((s) => ({
      seriesUid: str(s, TAG.SeriesInstanceUID),
      description: str(s, TAG.SeriesDescription),
      number: str(s, TAG.SeriesNumber),
    }));
  }

  /** The instances of a SEG series, each as DICOM bytes (WADO-RS, one request per instance). */
  async segInstances(studyUid: string, seriesUid: string): Promise<Uint8Array[]> {
    const path = `/studies/${studyUid}/series/${seriesUid}`;
    const instances = await this.dicomweb.json<DicomJson[]>(`${path}/instances`);
    return Promise.all(
      instances.map((i) =>
        this.bytes(`${this.dicomweb.root}${path}/instances/${str(i, TAG.SOPInstanceUID)}`, {
          headers: { accept: 'application/dicom' },
        }),
      ),
    );
  }

  private async json<T>(url: string, init: RequestInit): Promise<T> {
    const res = await fetch(url, {
      ...init,
      headers: { accept: 'application/json', ...this.dicomweb.headers(), ...(init.headers ?? {}) },
    });
    if (!res.ok) throw await errorOf(res);
    return (await res.json()) as T;
  }

  private async bytes(url: string, init: RequestInit): Promise<Uint8Array> {
    const res = await fetch(url, {
      ...init,
      headers: { ...this.dicomweb.headers(), ...(init.headers ?? {}) },
    });
    if (!res.ok) throw await errorOf(res);
    return new Uint8Array(await res.arrayBuffer());
  }
}

/** A job's progress in words (the segment list). */
export function progressText(job: JobView): string {
  const p = job.progress;
  if (job.state === 'queued') return 'waiting for a worker';
  if (p.slicesDone !== undefined) return `segmenting: ${p.slicesDone} slices`;
  if (p.slicesTotal) return `reading ${p.slicesRead ?? 0} / ${p.slicesTotal} slices`;
  return 'starting';
}

/** Hands `bytes` to the browser as a download named `name`. */
export function saveBytes(bytes: Uint8Array, name: string): void {
  const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
