// Access tokens for DICOMweb (docs/dicomweb.md, "Tokens"): what OHIF and dicomweb-client send as
// `Authorization: Bearer <token>`, or `?token=` in links. A token is
//   dw1.<base64url(JSON {exp, studies?, write?})>.<hex HMAC-SHA256(secret, "dicomweb:" + payload)>
// signed with the first configured secret and verified with each (key rotation), constant-time.
// `studies` limits it to those StudyInstanceUIDs (absent: every study); `write` allows STOW-RS.

import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { AccessDenied, AuthError } from '../errors.js';

export interface DicomwebAccess {
  /** Studies the caller may see; undefined = all. */
  studies?: readonly string[];
  write: boolean;
  exp: number;
}

/** Access when auth is off: everything. */
export const OPEN_ACCESS: DicomwebAccess = { write: true, exp: Number.MAX_SAFE_INTEGER };

const PREFIX = 'dw1';
const UID = /^[0-9.]{1,64}$/;

function mac(secret: string, payload: string): Buffer {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(`dicomweb:${payload}`, 'utf8').digest();
}

export function issueDicomwebToken(
  secret: string,
  options: { expiresAt: number; studies?: readonly string[]; write?: boolean },
): string {
  for (const uid of options.studies ?? []) {
    if (!UID.test(uid)) throw new Error(`not a UID: ${uid}`);
  }
  const body: Record<string, unknown> = { exp: options.expiresAt };
  if (options.studies) body.studies = [...options.studies];
  if (options.write) body.write = true;
  const payload = Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
  return `${PREFIX}.${payload}.${mac(secret, payload).toString('hex')}`;
}

export function verifyDicomwebToken(
  token: string,
  secrets: readonly string[],
  options: { clockSkewSeconds: number; now?: number },
): DicomwebAccess {
  const parts = token.split('.');
  if (
    parts.length !== 3 ||
    parts[0] !== PREFIX ||
    !/^[0-9a-f]{64}$/.test(parts[2]) ||
    parts[1].length > 8192
  ) {
    throw new AuthError(
      'invalid_signature_format',
      'Invalid token format (expected a MedStream DICOMweb token)',
    );
  }
  const given = Buffer.from(parts[2], 'hex');
  let ok = false;
  for (const secret of secrets) if (timingSafeEqual(mac(secret, parts[1]), given)) ok = true;
  if (!ok) throw new AuthError('invalid_signature', 'Invalid token signature');
  let body: { exp?: unknown; studies?: unknown; write?: unknown };
  try {
    body = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as typeof body;
  } catch {
    throw new AuthError('invalid_signature_format', 'Invalid token payload');
  }
  const exp = body.exp;
  if (typeof exp !== 'number' || !Number.isSafeInteger(exp)) {
    throw new AuthError('invalid_expiry_format', 'Invalid token expiry');
  }
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (now > exp + options.clockSkewSeconds) throw new AuthError('signature_expired', 'Token expired');
  const studies = body.studies;
  if (studies !== undefined && !(Array.isArray(studies) && studies.every((s) => typeof s === 'string'))) {
    throw new AuthError('invalid_signature_format', 'Invalid token scope');
  }
  return { exp, studies: studies as string[] | undefined, write: body.write === true };
}

/** The token a DICOMweb request carries: `Authorization: Bearer`, else `?token=`. */
export function tokenOfRequest(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match) return match[1];
  }
  const query = request.query as Record<string, unknown> | undefined;
  const token = query?.token;
  return typeof token === 'string' ? token : undefined;
}

/** Throws 403 unless `access` covers `studyUid`. */
export function assertStudyAccess(access: DicomwebAccess, studyUid: string): void {
  if (access.studies !== undefined && !access.studies.includes(studyUid)) {
    throw new AccessDenied(`the token does not grant access to study ${studyUid}`);
  }
}
