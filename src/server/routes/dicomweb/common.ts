// What every DICOMweb route shares: the access a request's token grants (set by the hook in
// index.ts), the absolute DICOMweb root for RetrieveURL / Location, and Accept negotiation of the
// JSON responses (PS3.18 §8.7: application/dicom+json, application/json accepted too).

import type { FastifyRequest } from 'fastify';
import { NotAcceptable } from '../../../errors.js';
import { OPEN_ACCESS, type DicomwebAccess } from '../../dicomweb-auth.js';

const ACCESS = Symbol('dicomwebAccess');

interface WithAccess {
  [ACCESS]?: DicomwebAccess;
}

export function setAccess(request: FastifyRequest, access: DicomwebAccess): void {
  (request as unknown as WithAccess)[ACCESS] = access;
}

export function accessOf(request: FastifyRequest): DicomwebAccess {
  return (request as unknown as WithAccess)[ACCESS] ?? OPEN_ACCESS;
}

/** `http://host:port/dicomweb` as the client addressed us. */
export function dicomwebBase(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}/dicomweb`;
}

/** The JSON media type to answer with, or 406 when the client accepts neither. */
export function acceptsJson(request: FastifyRequest): string {
  const accept = request.headers.accept;
  if (accept === undefined || accept.trim() === '') return 'application/dicom+json';
  const types = accept.split(',').map((part) => {
    const [type, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    return { type, q: q ? Number(q.slice(2)) : 1 };
  });
  const ok = (t: string) => types.some((x) => x.type === t && x.q > 0);
  if (ok('application/dicom+json') || ok('application/*') || ok('*/*')) {
    return 'application/dicom+json';
  }
  if (ok('application/json')) return 'application/json';
  throw new NotAcceptable(
    `cannot answer with any of: ${accept.slice(0, 200)} (application/dicom+json is served)`,
  );
}
