// Just enough of OME-XML (the ImageDescription of an OME-TIFF) for a slide: each Image's name,
// its Pixels attributes (sizes, physical pixel size and unit), Channels and TiffData (which IFD
// holds which plane), and the instrument's Objectives. A tolerant scanner over start tags, not a
// validating XML parser: the file is untrusted and a malformed document just yields less.

export type XmlAttributes = Record<string, string>;

export interface OmeImage {
  attributes: XmlAttributes;
  pixels: XmlAttributes;
  channels: XmlAttributes[];
  tiffData: XmlAttributes[];
}

export interface OmeMetadata {
  images: OmeImage[];
  objectives: XmlAttributes[];
}

/** Scanning more than this many tags means a document far beyond any slide's: stop there. */
const MAX_TAGS = 200_000;

export function isOmeXml(description: string): boolean {
  return /<(?:[\w.-]+:)?OME[\s>]/.test(description);
}

export function parseOmeXml(xml: string): OmeMetadata {
  const images: OmeImage[] = [];
  const objectives: XmlAttributes[] = [];
  const tagPattern = /<(?:[\w.-]+:)?(Image|Pixels|Channel|TiffData|Objective)\b([^>]*)>/g;
  let current: OmeImage | undefined;
  let match: RegExpExecArray | null;
  for (let n = 0; n < MAX_TAGS && (match = tagPattern.exec(xml)) !== null; n++) {
    const attributes = parseAttributes(match[2]);
    switch (match[1]) {
      case 'Image':
        current = { attributes, pixels: {}, channels: [], tiffData: [] };
        images.push(current);
        break;
      case 'Pixels':
        if (current) current.pixels = attributes;
        break;
      case 'Channel':
        current?.channels.push(attributes);
        break;
      case 'TiffData':
        current?.tiffData.push(attributes);
        break;
      case 'Objective':
        objectives.push(attributes);
        break;
    }
  }
  return { images, objectives };
}

function parseAttributes(text: string): XmlAttributes {
  const out: XmlAttributes = {};
  const pattern = /([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;
  let match: RegExpExecArray | null;
  while ((match = pattern.exec(text)) !== null) {
    const name = match[1].replace(/^[\w.-]+:/, '');
    out[name] = decodeEntities(match[2] ?? match[3] ?? '');
  }
  return out;
}

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, entity: string) => {
    const lower = entity.toLowerCase();
    if (lower.startsWith('#x')) return safeCodePoint(parseInt(lower.slice(2), 16));
    if (lower.startsWith('#')) return safeCodePoint(parseInt(lower.slice(1), 10));
    return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[lower] ?? '';
  });
}

function safeCodePoint(code: number): string {
  return Number.isInteger(code) && code >= 0 && code <= 0x10ffff ? String.fromCodePoint(code) : '';
}

const MICRONS_PER_UNIT: Readonly<Record<string, number>> = {
  µm: 1,
  μm: 1,
  um: 1,
  micron: 1,
  nm: 1e-3,
  pm: 1e-6,
  mm: 1e3,
  cm: 1e4,
  dm: 1e5,
  m: 1e6,
  Å: 1e-4,
  in: 25_400,
};

/** A physical size attribute in microns (OME's default unit is µm); undefined if absent or unusable. */
export function physicalSizeMicrons(value: string | undefined, unit: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  const scale = MICRONS_PER_UNIT[unit ?? 'µm'];
  if (!Number.isFinite(number) || number <= 0 || scale === undefined) return undefined;
  return number * scale;
}
