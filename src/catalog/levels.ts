// Which attributes belong to which QIDO level (PS3.18 §6.7.1.2, Tables 6.7.1-2/-2a/-2b, and the
// Patient / General Study / Patient Study and General Series / Equipment modules of PS3.3), the
// default return attributes of each level, and the columns the catalog keeps for matching.

import type { DicomJson } from '../dicom/json.js';

export type Level = 'study' | 'series' | 'instance';

/** Patient and study attributes, kept with the study (from its most recently indexed instance). */
export const STUDY_LEVEL_TAGS = new Set([
  '00080005', // SpecificCharacterSet
  '00080020', // StudyDate
  '00080030', // StudyTime
  '00080050', // AccessionNumber
  '00080051', // IssuerOfAccessionNumberSequence
  '00080090', // ReferringPhysicianName
  '00080201', // TimezoneOffsetFromUTC
  '00081030', // StudyDescription
  '00081032', // ProcedureCodeSequence
  '00081060', // NameOfPhysiciansReadingStudy
  '00100010', // PatientName
  '00100020', // PatientID
  '00100021', // IssuerOfPatientID
  '00100030', // PatientBirthDate
  '00100040', // PatientSex
  '00101010', // PatientAge
  '00101020', // PatientSize
  '00101030', // PatientWeight
  '00102160', // EthnicGroup
  '00104000', // PatientComments
  '0020000D', // StudyInstanceUID
  '00200010', // StudyID
  '00321032', // RequestingPhysician
  '00321060', // RequestedProcedureDescription
]);

/** Series attributes, kept with the series. */
export const SERIES_LEVEL_TAGS = new Set([
  '00080005', // SpecificCharacterSet
  '00080021', // SeriesDate
  '00080031', // SeriesTime
  '00080060', // Modality
  '00080070', // Manufacturer
  '00080080', // InstitutionName
  '00081010', // StationName
  '0008103E', // SeriesDescription
  '00081090', // ManufacturerModelName
  '00180015', // BodyPartExamined
  '00181030', // ProtocolName
  '00185100', // PatientPosition
  '0020000E', // SeriesInstanceUID
  '00200011', // SeriesNumber
  '00200052', // FrameOfReferenceUID
  '00200060', // Laterality
  '00400244', // PerformedProcedureStepStartDate
  '00400245', // PerformedProcedureStepStartTime
  '00400275', // RequestAttributesSequence
]);

/** Attributes returned by default at each level (PS3.18 Table 6.7.1-2, -2a, -2b). */
export const DEFAULT_RETURN: Record<Level, readonly string[]> = {
  study: [
    '00080005',
    '00080020',
    '00080030',
    '00080050',
    '00080056',
    '00080061',
    '00080090',
    '00080201',
    '00081190',
    '00100010',
    '00100020',
    '00100030',
    '00100040',
    '0020000D',
    '00200010',
    '00201206',
    '00201208',
  ],
  series: [
    '00080005',
    '00080056',
    '00080060',
    '00080201',
    '0008103E',
    '00081190',
    '0020000E',
    '00200011',
    '00201209',
    '00400244',
    '00400245',
    '00400275',
  ],
  instance: [
    '00080005',
    '00080016',
    '00080018',
    '00080056',
    '00080201',
    '00081190',
    '00200013',
    '00280010',
    '00280011',
    '00280100',
    '00280008',
  ],
};

/** The attributes of `json` whose tags are in `tags`. */
export function pick(json: DicomJson, tags: ReadonlySet<string>): DicomJson {
  const out: DicomJson = {};
  for (const [tagKey, value] of Object.entries(json)) if (tags.has(tagKey)) out[tagKey] = value;
  return out;
}
