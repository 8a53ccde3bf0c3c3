// One series as the viewer loads it: the WADO-RS series metadata (one request for every
// instance), handed to the DICOM image loader's metadata store, and the `wadors:` image IDs of
// its frames sorted along the slice normal (instance number when there is no geometry).

import { wadors } from '@cornerstonejs/dicom-image-loader';
import { nums, num, TAG, type DicomJson, type DicomwebClient } from './dicomweb.js';

export interface LoadedSeries {
  studyUid: string;
  seriesUid: string;
  imageIds: string[];
  /** Every image has a position and the same orientation: a volume can be built. */
  reconstructable: boolean;
  /** The first instance's header (window, modality, ...). */
  first: DicomJson;
}

export async function loadSeries(
  client: DicomwebClient,
  studyUid: string,
  seriesUid: string,
  signal?: AbortSignal,
): Promise<LoadedSeries> {
  const base = `/studies/${studyUid}/series/${seriesUid}`;
  const instances = await client.json<DicomJson[]>(`${base}/metadata`, signal);
  if (instances.length === 0) throw new Error('the series has no instances');
  const frames: { imageId: string; order: number; instance: number; orientation: string }[] = [];
  for (const inst of instances) {
    const sop = String(inst[TAG.SOPInstanceUID]?.Value?.[0] ?? '');
    const count = num(inst, TAG.NumberOfFrames) ?? 1;
    const ipp = nums(inst, TAG.ImagePositionPatient);
    const iop = nums(inst, TAG.ImageOrientationPatient);
    const normal = iop.length === 6 ? cross(iop.slice(0, 3), iop.slice(3, 6)) : undefined;
    const order = normal && ipp.length === 3 ? dot(normal, ipp) : NaN;
    for (let f = 1; f <= count; f++) {
      const imageId = `wadors:${client.root}${base}/instances/${sop}/frames/${f}`;
      wadors.metaDataManager.add(
        imageId,
        inst as unknown as Parameters<typeof wadors.metaDataManager.add>[1],
      );
      frames.push({
        imageId,
        order: count === 1 ? order : NaN,
        instance: (num(inst, TAG.InstanceNumber) ?? 0) * 100000 + f,
        orientation: iop.map((v) => v.toFixed(3)).join(','),
      });
    }
  }
  const geometric = frames.every((f) => Number.isFinite(f.order));
  // Ascending along the normal: the stack runs feet to head for axial CT (what Cornerstone's
  // volume sort gives too, so a slice index means the same in both layouts).
  frames.sort((a, b) => (geometric ? a.order - b.order : a.instance - b.instance));
  return {
    studyUid,
    seriesUid,
    imageIds: frames.map((f) => f.imageId),
    reconstructable: geometric && frames.length > 2 && new Set(frames.map((f) => f.orientation)).size === 1,
    first: instances[0],
  };
}

function cross(a: number[], b: number[]): number[] {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

function dot(a: number[], b: number[]): number {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}
