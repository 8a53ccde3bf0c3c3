import { describe, expect, it } from 'vitest';
import { openSlide } from '../../src/formats/detect.js';
import { isOmeXml, parseOmeXml, physicalSizeMicrons } from '../../src/formats/ome-xml.js';
import { BytesSource } from '../support/file-source.js';
import { T, TiffWriter, tiledImageTags, type IfdSpec } from '../support/tiff-writer.js';

describe('OME-XML', () => {
  it('finds images, pixels, channels, TiffData and objectives, with namespace prefixes and entities', () => {
    const xml =
      '<?xml version="1.0"?><ome:OME xmlns:ome="http://www.openmicroscopy.org/Schemas/OME/2016-06">' +
      '<ome:Instrument><ome:Objective ID="Objective:0" NominalMagnification="40"/></ome:Instrument>' +
      '<ome:Image ID="Image:0" Name="a &amp; b"><ome:Pixels SizeX="10" PhysicalSizeX="0.5">' +
      '<ome:Channel ID=\'Channel:0:0\' Name="DAPI"/><ome:Channel ID="Channel:0:1"/><ome:TiffData IFD="0"/></ome:Pixels></ome:Image>' +
      '<ome:Image ID="Image:1" Name="macro image"><ome:Pixels SizeX="5"><ome:TiffData IFD="4" PlaneCount="1"/></ome:Pixels></ome:Image></ome:OME>';
    expect(isOmeXml(xml)).toBe(true);
    expect(isOmeXml('Aperio Image Library')).toBe(false);
    const ome = parseOmeXml(xml);
    expect(ome.images).toHaveLength(2);
    expect(ome.images[0].attributes.Name).toBe('a & b');
    expect(ome.images[0].pixels).toMatchObject({ SizeX: '10', PhysicalSizeX: '0.5' });
    expect(ome.images[0].channels.map((c) => c.Name ?? c.ID)).toEqual(['DAPI', 'Channel:0:1']);
    expect(ome.images[1].tiffData[0].IFD).toBe('4');
    expect(ome.objectives[0].NominalMagnification).toBe('40');
  });

  it('converts physical sizes to microns', () => {
    expect(physicalSizeMicrons('0.5', undefined)).toBe(0.5);
    expect(physicalSizeMicrons('325', 'nm')).toBeCloseTo(0.325, 12);
    expect(physicalSizeMicrons('0.001', 'mm')).toBeCloseTo(1, 12);
    expect(physicalSizeMicrons('1', 'parsec')).toBeUndefined();
    expect(physicalSizeMicrons('-1', 'µm')).toBeUndefined();
    expect(physicalSizeMicrons('x', 'µm')).toBeUndefined();
  });

  it('ignores garbage without throwing', () => {
    expect(
      parseOmeXml('<OME><Image Name="x><Pixels <Channel Name=>&#xFFFFFFFF;').images.length,
    ).toBeLessThanOrEqual(1);
    expect(parseOmeXml('').images).toEqual([]);
  });
});

const CHANNELS = ['DAPI', 'FITC', 'TRITC'];

/** A 3-channel 16-bit fluorescence OME-TIFF: one IFD per channel, each with 2 SubIFD levels, plus a label. */
function fluorescence(littleEndian: boolean): Uint8Array {
  const writer = new TiffWriter({ littleEndian });
  const tile = writer.blob(new Uint8Array(64).fill(7));
  const xml =
    '<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">' +
    '<Instrument ID="Instrument:0"><Objective ID="Objective:0" NominalMagnification="20"/></Instrument>' +
    '<Image ID="Image:0" Name="stack"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" SizeX="2000" SizeY="1500" SizeC="3" SizeZ="1" SizeT="1" PhysicalSizeX="325" PhysicalSizeXUnit="nm" PhysicalSizeY="0.33" PhysicalSizeYUnit="µm">' +
    CHANNELS.map((name, i) => `<Channel ID="Channel:0:${i}" Name="${name}" SamplesPerPixel="1"/>`).join('') +
    '<TiffData IFD="0" PlaneCount="3"/></Pixels></Image>' +
    '<Image ID="Image:1" Name="label"><Pixels ID="Pixels:1" SizeX="100" SizeY="50" SizeC="3" Type="uint8"><Channel ID="Channel:1:0" SamplesPerPixel="3"/><TiffData IFD="3" PlaneCount="1"/></Pixels></Image></OME>';
  const level = (width: number, height: number, subfileType?: number) =>
    tiledImageTags({
      width,
      height,
      tile: 256,
      tileOffset: tile,
      tileBytes: 64,
      bigTiff: false,
      compression: 8,
      photometric: 1,
      samplesPerPixel: 1,
      subfileType,
    }).map((t) => (t.tag === 258 ? { ...t, values: [16] } : t));
  for (const [c] of CHANNELS.entries()) {
    const spec: IfdSpec = {
      tags: level(2000, 1500),
      subIfds: [{ tags: level(1000, 750, 1) }, { tags: level(500, 375, 1) }],
    };
    if (c === 0) spec.tags.push({ tag: 270, type: T.ASCII, values: xml });
    writer.ifd(spec);
  }
  writer.ifd({
    tags: [
      { tag: 256, type: T.SHORT, values: [100] },
      { tag: 257, type: T.SHORT, values: [50] },
      { tag: 259, type: T.SHORT, values: [8] },
      { tag: 262, type: T.SHORT, values: [2] },
      { tag: 277, type: T.SHORT, values: [3] },
      { tag: 273, type: T.LONG, values: [tile] },
      { tag: 279, type: T.LONG, values: [64] },
    ],
  });
  return writer.toBytes();
}

describe.each([true, false])('a multi-channel fluorescence OME-TIFF (little-endian %s)', (littleEndian) => {
  it('serves the first channel as grayscale with its SubIFD pyramid, and lists the channels', async () => {
    const slide = await openSlide(new BytesSource(fluorescence(littleEndian), 'stack.ome.tif'));
    expect(slide.format).toBe('ome-tiff');
    expect(slide.levels.map((l) => [l.width, l.height, l.grid !== null])).toEqual([
      [2000, 1500, true],
      [1000, 750, true],
      [500, 375, true],
    ]);
    expect(slide.levels[0].grid!.encoding).toMatchObject({
      samplesPerPixel: 1,
      bitsPerSample: [16],
      photometric: 1,
      compression: 8,
    });
    expect(JSON.parse(slide.properties.raw['ome.channels'])).toEqual(CHANNELS);
    expect(slide.properties.raw['ome.Pixels.SizeC']).toBe('3');
    expect(slide.properties.mpp_x).toBeCloseTo(0.325, 12);
    expect(slide.properties.mpp_y).toBeCloseTo(0.33, 12);
    expect(slide.properties.objective_power).toBe(20);
    expect([...slide.associated.keys()]).toEqual(['label']);
    expect(await slide.levels[2].grid!.readTile(1, 1)).toEqual(new Uint8Array(64).fill(7));
  });
});

describe('planar multi-sample images', () => {
  it('serve plane 0 as grayscale when the samples are not RGB', async () => {
    const writer = new TiffWriter();
    const offsets = [
      writer.blob(new Uint8Array([1, 1])),
      writer.blob(new Uint8Array([2, 2])),
      writer.blob(new Uint8Array([3, 3])),
    ];
    writer.ifd({
      tags: [
        { tag: 256, type: T.SHORT, values: [200] },
        { tag: 257, type: T.SHORT, values: [100] },
        { tag: 258, type: T.SHORT, values: [8, 8, 8] },
        { tag: 259, type: T.SHORT, values: [1] },
        { tag: 262, type: T.SHORT, values: [1] },
        { tag: 277, type: T.SHORT, values: [3] },
        { tag: 284, type: T.SHORT, values: [2] },
        { tag: 322, type: T.SHORT, values: [256] },
        { tag: 323, type: T.SHORT, values: [256] },
        { tag: 324, type: T.LONG, values: offsets },
        { tag: 325, type: T.LONG, values: [2, 2, 2] },
      ],
    });
    const slide = await openSlide(new BytesSource(writer.toBytes()));
    const grid = slide.levels[0].grid!;
    expect(grid.encoding).toMatchObject({ samplesPerPixel: 1, bitsPerSample: [8], planarConfiguration: 1 });
    expect(await grid.readTile(0, 0)).toEqual(new Uint8Array([1, 1]));
  });
});
