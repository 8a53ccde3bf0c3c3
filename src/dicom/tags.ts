// The DICOM data elements and transfer syntaxes MedStream reads (PS3.6 data dictionary, PS3.5
// §10 / Annex A), as numbers `(group << 16) | element`. Implicit VR little endian carries no VR
// on the wire, so the VR of every element we interpret is listed here (`IMPLICIT_VR`); anything
// else is kept as raw bytes (or parsed as a sequence when its length is undefined, PS3.5 §7.5).

/** `(group, element)` as one 32-bit number. */
export function tag(group: number, element: number): number {
  return ((group << 16) | element) >>> 0;
}

/** `(gggg,eeee)` for messages. */
export function tagName(t: number): string {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
  return `(${hex(t >>> 16)},${hex(t & 0xffff)})`;
}

export const Tag = {
  // File meta information (group 0002, always explicit VR little endian).
  FileMetaGroupLength: tag(0x0002, 0x0000),
  MediaStorageSopClassUid: tag(0x0002, 0x0002),
  MediaStorageSopInstanceUid: tag(0x0002, 0x0003),
  TransferSyntaxUid: tag(0x0002, 0x0010),
  // Identification.
  SopClassUid: tag(0x0008, 0x0016),
  SopInstanceUid: tag(0x0008, 0x0018),
  ImageType: tag(0x0008, 0x0008),
  StudyDate: tag(0x0008, 0x0020),
  AccessionNumber: tag(0x0008, 0x0050),
  Manufacturer: tag(0x0008, 0x0070),
  InstitutionName: tag(0x0008, 0x0080),
  ReferringPhysicianName: tag(0x0008, 0x0090),
  StudyDescription: tag(0x0008, 0x1030),
  SeriesDescription: tag(0x0008, 0x103e),
  ManufacturerModelName: tag(0x0008, 0x1090),
  PatientName: tag(0x0010, 0x0010),
  PatientId: tag(0x0010, 0x0020),
  PatientBirthDate: tag(0x0010, 0x0030),
  PatientSex: tag(0x0010, 0x0040),
  DeviceSerialNumber: tag(0x0018, 0x1000),
  SoftwareVersions: tag(0x0018, 0x1020),
  StudyInstanceUid: tag(0x0020, 0x000d),
  SeriesInstanceUid: tag(0x0020, 0x000e),
  StudyId: tag(0x0020, 0x0010),
  SeriesNumber: tag(0x0020, 0x0011),
  InstanceNumber: tag(0x0020, 0x0013),
  ContainerIdentifier: tag(0x0040, 0x0512),
  // Multi-frame and concatenations (PS3.3 C.7.6.16).
  ConcatenationUid: tag(0x0020, 0x9161),
  InConcatenationNumber: tag(0x0020, 0x9162),
  ConcatenationFrameOffsetNumber: tag(0x0020, 0x9228),
  DimensionOrganizationType: tag(0x0020, 0x9311),
  // Image pixel module.
  SamplesPerPixel: tag(0x0028, 0x0002),
  PhotometricInterpretation: tag(0x0028, 0x0004),
  PlanarConfiguration: tag(0x0028, 0x0006),
  NumberOfFrames: tag(0x0028, 0x0008),
  Rows: tag(0x0028, 0x0010),
  Columns: tag(0x0028, 0x0011),
  PixelSpacing: tag(0x0028, 0x0030),
  BitsAllocated: tag(0x0028, 0x0100),
  BitsStored: tag(0x0028, 0x0101),
  HighBit: tag(0x0028, 0x0102),
  PixelRepresentation: tag(0x0028, 0x0103),
  IccProfile: tag(0x0028, 0x2000),
  PixelMeasuresSequence: tag(0x0028, 0x9110),
  // Whole slide microscopy (PS3.3 C.8.12.4).
  ImagedVolumeWidth: tag(0x0048, 0x0001),
  ImagedVolumeHeight: tag(0x0048, 0x0002),
  TotalPixelMatrixColumns: tag(0x0048, 0x0006),
  TotalPixelMatrixRows: tag(0x0048, 0x0007),
  OpticalPathSequence: tag(0x0048, 0x0105),
  ObjectiveLensPower: tag(0x0048, 0x0112),
  ObjectiveLensNumericalAperture: tag(0x0048, 0x0113),
  PlanePositionSlideSequence: tag(0x0048, 0x021a),
  ColumnPositionInTotalImagePixelMatrix: tag(0x0048, 0x021e),
  RowPositionInTotalImagePixelMatrix: tag(0x0048, 0x021f),
  TotalPixelMatrixFocalPlanes: tag(0x0048, 0x0303),
  SharedFunctionalGroupsSequence: tag(0x5200, 0x9229),
  PerFrameFunctionalGroupsSequence: tag(0x5200, 0x9230),
  // Pixel data.
  ExtendedOffsetTable: tag(0x7fe0, 0x0001),
  ExtendedOffsetTableLengths: tag(0x7fe0, 0x0002),
  PixelData: tag(0x7fe0, 0x0010),
  // Delimiters (group FFFE, never with a VR).
  Item: tag(0xfffe, 0xe000),
  ItemDelimitation: tag(0xfffe, 0xe00d),
  SequenceDelimitation: tag(0xfffe, 0xe0dd),
} as const;

/** VRs of the elements we interpret, for implicit VR little endian (PS3.6 §6). */
export const IMPLICIT_VR = new Map<number, string>([
  [Tag.FileMetaGroupLength, 'UL'],
  [Tag.TransferSyntaxUid, 'UI'],
  [Tag.SopClassUid, 'UI'],
  [Tag.SopInstanceUid, 'UI'],
  [Tag.ImageType, 'CS'],
  [Tag.StudyInstanceUid, 'UI'],
  [Tag.SeriesInstanceUid, 'UI'],
  [Tag.ConcatenationUid, 'UI'],
  [Tag.InConcatenationNumber, 'US'],
  [Tag.ConcatenationFrameOffsetNumber, 'UL'],
  [Tag.DimensionOrganizationType, 'CS'],
  [Tag.SamplesPerPixel, 'US'],
  [Tag.PhotometricInterpretation, 'CS'],
  [Tag.PlanarConfiguration, 'US'],
  [Tag.NumberOfFrames, 'IS'],
  [Tag.Rows, 'US'],
  [Tag.Columns, 'US'],
  [Tag.PixelSpacing, 'DS'],
  [Tag.BitsAllocated, 'US'],
  [Tag.BitsStored, 'US'],
  [Tag.HighBit, 'US'],
  [Tag.PixelRepresentation, 'US'],
  [Tag.IccProfile, 'OB'],
  [Tag.PixelMeasuresSequence, 'SQ'],
  [Tag.ImagedVolumeWidth, 'FL'],
  [Tag.ImagedVolumeHeight, 'FL'],
  [Tag.TotalPixelMatrixColumns, 'UL'],
  [Tag.TotalPixelMatrixRows, 'UL'],
  [Tag.OpticalPathSequence, 'SQ'],
  [Tag.ObjectiveLensPower, 'DS'],
  [Tag.ObjectiveLensNumericalAperture, 'DS'],
  [Tag.PlanePositionSlideSequence, 'SQ'],
  [Tag.ColumnPositionInTotalImagePixelMatrix, 'SL'],
  [Tag.RowPositionInTotalImagePixelMatrix, 'SL'],
  [Tag.TotalPixelMatrixFocalPlanes, 'UL'],
  [Tag.SharedFunctionalGroupsSequence, 'SQ'],
  [Tag.PerFrameFunctionalGroupsSequence, 'SQ'],
  [Tag.ExtendedOffsetTable, 'OV'],
  [Tag.ExtendedOffsetTableLengths, 'OV'],
  [Tag.PixelData, 'OB'],
  [Tag.InstanceNumber, 'IS'],
  [Tag.SeriesNumber, 'IS'],
  [Tag.Manufacturer, 'LO'],
  [Tag.ManufacturerModelName, 'LO'],
  [Tag.DeviceSerialNumber, 'LO'],
  [Tag.SoftwareVersions, 'LO'],
  [Tag.PatientName, 'PN'],
  [Tag.PatientId, 'LO'],
  [Tag.ContainerIdentifier, 'LO'],
]);

/** Explicit VRs whose length field is 4 bytes after 2 reserved bytes (PS3.5 Table 7.1-1). */
export const LONG_LENGTH_VRS = new Set([
  'OB',
  'OD',
  'OF',
  'OL',
  'OV',
  'OW',
  'SQ',
  'SV',
  'UC',
  'UN',
  'UR',
  'UT',
  'UV',
]);

/** Transfer syntax UIDs (PS3.5 §10, PS3.6 Annex A). */
export const TransferSyntax = {
  ImplicitVrLittleEndian: '1.2.840.10008.1.2',
  ExplicitVrLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVrLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVrBigEndian: '1.2.840.10008.1.2.2',
  JpegBaseline: '1.2.840.10008.1.2.4.50',
  JpegExtended: '1.2.840.10008.1.2.4.51',
  JpegLsLossless: '1.2.840.10008.1.2.4.80',
  JpegLsNearLossless: '1.2.840.10008.1.2.4.81',
  Jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  Jpeg2000: '1.2.840.10008.1.2.4.91',
  Htj2kLossless: '1.2.840.10008.1.2.4.201',
  Htj2kLosslessRpcl: '1.2.840.10008.1.2.4.202',
  Htj2k: '1.2.840.10008.1.2.4.203',
} as const;

/** VL Whole Slide Microscopy Image Storage (PS3.4 Annex B). */
export const VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.77.1.6';
