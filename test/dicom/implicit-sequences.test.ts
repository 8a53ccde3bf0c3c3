// Defined-length sequences in implicit VR little endian, which carry no VR on the wire: the
// parser knows them from the data dictionary, so their items reach the DICOM JSON model as items
// (radiology files in implicit VR carry ReferencedImageSequence, SegmentSequence, ... this way).
import { describe, expect, it } from 'vitest';
import { toDicomJson } from '../../src/dicom/json.js';
import { parseDicomHeader } from '../../src/dicom/parser.js';
import { Tag, TransferSyntax, tag } from '../../src/dicom/tags.js';
import { CorruptFile } from '../../src/errors.js';
import { writeDicom, type ElementSpec } from '../support/dicom-writer.js';
import { BytesSource } from '../support/file-source.js';

const referenced = (undefinedLength: boolean): ElementSpec => ({
  tag: tag(0x0008, 0x1140), // ReferencedImageSequence, not in the parser's own VR table
  vr: 'SQ',
  undefinedLength,
  items: [
    [
      { tag: tag(0x0008, 0x1150), vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.2' },
      { tag: tag(0x0008, 0x1155), vr: 'UI', value: '1.2.3.4' },
    ],
    [{ tag: tag(0x0008, 0x1155), vr: 'UI', value: '1.2.3.5' }],
  ],
});

describe('implicit VR sequences', () => {
  it.each([true, false])('undefined length %s: items in the JSON model', async (undefinedLength) => {
    const bytes = writeDicom({
      transferSyntax: TransferSyntax.ImplicitVrLittleEndian,
      elements: [referenced(undefinedLength), { tag: Tag.PatientName, vr: 'PN', value: 'A^B' }],
    });
    const header = await parseDicomHeader(new BytesSource(bytes, 'implicit.dcm'));
    const json = toDicomJson(header.dataset);
    expect(json['00081140']).toEqual({
      vr: 'SQ',
      Value: [
        {
          '00081150': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.2'] },
          '00081155': { vr: 'UI', Value: ['1.2.3.4'] },
        },
        { '00081155': { vr: 'UI', Value: ['1.2.3.5'] } },
      ],
    });
    expect(json['00100010']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'A^B' }] });
  });

  it('defined-length sequences nested too deep are refused like undefined-length ones', async () => {
    let inner: ElementSpec = { tag: Tag.PatientName, vr: 'PN', value: 'Deep' };
    for (let i = 0; i < 40; i++) inner = { ...referenced(false), items: [[inner]] };
    const bytes = writeDicom({ transferSyntax: TransferSyntax.ImplicitVrLittleEndian, elements: [inner] });
    await expect(parseDicomHeader(new BytesSource(bytes, 'deep.dcm'))).rejects.toBeInstanceOf(CorruptFile);
  });
});
