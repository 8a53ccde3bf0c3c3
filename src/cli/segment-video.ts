// `medstream segment --video <cine.dcm | folder of frames> (--box x0,y0,x1,y1 | --mask frame0.png)
// --out-dir D`: one object tracked through a video from frame 0 (segment/video.ts), written as
// DAVIS-palette PNGs D/00000.png ... (one per frame, the object id --label as the pixel value), as
// MedSAM2's video script writes them. Frames: a multi-frame DICOM (greyscale in any transfer
// syntax volumes read; RGB/YBR_FULL native), or a folder of PNG/JPEG/TIFF/WebP images in name
// order (digits compared as numbers). All outputs appear together or not at all.

import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { frameTable } from '../dicom/frames.js';
import { isDicomPart10, parseDicomHeader } from '../dicom/parser.js';
import { Tag } from '../dicom/tags.js';
import { BadRequest, UnsupportedFormat } from '../errors.js';
import { encodeDavisPng } from '../segment/davis-png.js';
import { parseBox } from '../segment/request.js';
import { type VideoFrames, type VideoPrompt, segmentVideo } from '../segment/video.js';
import { type CineSource, encodeVideoSegmentation } from '../segment/video-seg.js';
import { PATIENT_STUDY_TAGS, VolumeTag } from '../volumes/dicom-series.js';
import { LocalStorage } from '../storage/local.js';
import { FrameSampleDecoder } from '../volumes/frame-samples.js';
import type { Config } from './config.js';
import { type CommandArgs, parseLabel, str } from './segment.js';
import { createEngine } from './segment-engines.js';
import { AtomicOutputs, checkOutputPath } from './segment-io.js';
import { Progress } from './segment-progress.js';

const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.tif', '.tiff', '.webp'];
/** Frames read at most (a cine of 2,000 frames is ~1 min at 30 fps). */
const MAX_FRAMES = 5000;

export async function runSegmentVideo(config: Config, args: CommandArgs): Promise<number> {
  const v = args.values;
  const input = str(v, 'video') as string;
  const outDir = str(v, 'out-dir');
  if (outDir === undefined) throw new BadRequest('--video needs --out-dir D (one DAVIS PNG per frame)');
  for (const other of ['input', 'out', 'slice', 'batch'])
    if (str(v, other) !== undefined)
      throw new BadRequest(
        `--video does not take --${other} (frame 0 is the prompted frame; outputs go to --out-dir)`,
      );
  const boxText = str(v, 'box');
  const maskPath = str(v, 'mask');
  if ((boxText === undefined) === (maskPath === undefined))
    throw new BadRequest(
      '--video needs exactly one prompt on frame 0: --box x0,y0,x1,y1 or --mask frame0.png',
    );
  const label = parseLabel(str(v, 'label'));
  const segOut = str(v, 'seg');
  if (segOut !== undefined) await checkOutputPath(segOut, '--seg');
  const progress = new Progress(process.stderr, v.quiet === true);

  const video = await readVideo(input, config);
  if (segOut !== undefined && !video.dicom)
    throw new BadRequest(
      '--seg needs a DICOM cine as --video: a SEG references the source instance, which image files are not',
    );
  let prompt: VideoPrompt;
  if (boxText !== undefined) prompt = { box: parseBox(boxText) };
  else {
    const m = await readImage(maskPath as string);
    if (m.width !== video.width || m.height !== video.height)
      throw new BadRequest(
        `--mask ${maskPath} is ${m.width}x${m.height}; the frames are ${video.width}x${video.height}`,
      );
    prompt = { mask: m.pixels.map((x) => (x ? 1 : 0)) };
  }
  const engine = await createEngine(str(v, 'engine') ?? 'classical', { modelDir: config.modelDir });
  const outputs = new AtomicOutputs();
  try {
    let done = 0;
    const result = await segmentVideo(video, prompt, engine, {
      onSlice: () => progress.update(`tracking (${engine.name})`, ++done, video.frames.length),
    });
    const names: string[] = [];
    for (let t = 0; t < result.frames.length; t++) {
      const ids = label === 1 ? result.frames[t] : result.frames[t].map((x) => (x ? label : 0));
      const name = `${String(t).padStart(5, '0')}.png`;
      names.push(name);
      await outputs.stage(path.join(outDir, name), encodeDavisPng(ids, video.width, video.height));
    }
    if (segOut !== undefined)
      await outputs.stage(
        segOut,
        encodeVideoSegmentation(video.dicom as CineSource, result.frames, video.width, video.height, {
          algorithmName: `medstream ${engine.name}`,
          label: `object ${label}`,
        }),
      );
    await outputs.commit();
    const tracked = result.frames.filter((f) => f.some((x) => x)).length;
    const summary = {
      video: input,
      frames: result.frames.length,
      framesWithObject: tracked,
      lastFrame: result.slices?.[1] ?? null,
      stopped: `${result.stopped.forward.reason} at ${result.stopped.forward.at}`,
      engine: engine.name,
      label,
      outDir,
      seconds: Number(result.seconds.toFixed(3)),
    };
    if (v.json === true) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    else
      process.stdout.write(
        `${outDir}: ${summary.frames} DAVIS PNGs, object in ${tracked} frames (stopped ${summary.stopped}), ${summary.seconds} s (${engine.name})\n`,
      );
    return 0;
  } catch (e) {
    await outputs.discard();
    throw e;
  } finally {
    await engine.close();
  }
}

/** A greyscale image file as 8-bit pixels. */
async function readImage(file: string): Promise<{ width: number; height: number; pixels: Uint8Array }> {
  try {
    const { data, info } = await sharp(file).greyscale().raw().toBuffer({ resolveWithObject: true });
    return {
      width: info.width,
      height: info.height,
      pixels: new Uint8Array(data.buffer, data.byteOffset, info.width * info.height),
    };
  } catch (e) {
    throw new BadRequest(`cannot read the image ${file}: ${(e as Error).message}`);
  }
}

/** The frames of a cine DICOM file or a folder of images. */
export async function readVideo(input: string, config: Pick<Config, 'decodeWorkers'>): Promise<VideoFrames> {
  const resolved = path.resolve(input);
  const info = await stat(resolved).catch(() => {
    throw new BadRequest(`video ${input} does not exist`);
  });
  if (info.isDirectory()) {
    const names = (await readdir(resolved))
      .filter((n) => IMAGE_EXTENSIONS.includes(path.extname(n).toLowerCase()) && !n.startsWith('.'))
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    if (names.length === 0) throw new BadRequest(`${input} holds no frames (${IMAGE_EXTENSIONS.join(', ')})`);
    if (names.length > MAX_FRAMES)
      throw new BadRequest(`${input} holds ${names.length} frames, over ${MAX_FRAMES}`);
    const frames: Uint8Array[] = [];
    let size: [number, number] | undefined;
    for (const name of names) {
      const image = await readImage(path.join(resolved, name));
      if (size && (image.width !== size[0] || image.height !== size[1]))
        throw new BadRequest(
          `${name} is ${image.width}x${image.height}; the first frame is ${size[0]}x${size[1]}`,
        );
      size = [image.width, image.height];
      frames.push(image.pixels);
    }
    const [width, height] = size as [number, number];
    return { width, height, frames, name: input };
  }
  return readDicomCine(resolved, config);
}

async function readDicomCine(file: string, config: Pick<Config, 'decodeWorkers'>): Promise<VideoFrames> {
  const storage = await LocalStorage.create(path.dirname(file));
  const decoder = new FrameSampleDecoder({ workers: config.decodeWorkers || undefined });
  try {
    const source = await storage.open(path.basename(file));
    if (!(await isDicomPart10(source)))
      throw new BadRequest(`${file} is neither a folder of frames nor a DICOM file`);
    const header = await parseDicomHeader(source);
    const { dataset: ds, transferSyntax } = header;
    const rows = ds.number(Tag.Rows) ?? 0;
    const columns = ds.number(Tag.Columns) ?? 0;
    const count = ds.number(Tag.NumberOfFrames) ?? 1;
    const samples = ds.number(Tag.SamplesPerPixel) ?? 1;
    const bitsAllocated = ds.number(Tag.BitsAllocated) ?? 8;
    if (rows < 1 || columns < 1) throw new BadRequest(`${file}: Rows/Columns missing`);
    if (count < 2)
      throw new BadRequest(`${file} has ${count} frame; a video needs a multi-frame (cine) instance`);
    if (count > MAX_FRAMES) throw new BadRequest(`${file} has ${count} frames, over ${MAX_FRAMES}`);
    const plane = rows * columns;
    const frames: Uint8Array[] = [];
    const patient: Record<string, string> = {};
    for (const [name, t] of Object.entries(PATIENT_STUDY_TAGS)) {
      const value = ds.string(t);
      if (value !== undefined) patient[name] = value;
    }
    const dicom: CineSource = {
      sopClassUid: ds.string(Tag.SopClassUid) ?? header.meta.string(VolumeTag.MediaStorageSopClassUid) ?? '',
      sopInstanceUid:
        ds.string(Tag.SopInstanceUid) ?? header.meta.string(VolumeTag.MediaStorageSopInstanceUid) ?? '',
      studyInstanceUid: ds.string(Tag.StudyInstanceUid) ?? '',
      seriesInstanceUid: ds.string(Tag.SeriesInstanceUid) ?? '',
      frameOfReferenceUid: ds.string(VolumeTag.FrameOfReferenceUid) || undefined,
      patient,
    };
    if (samples === 3) {
      const photometric = ds.string(Tag.PhotometricInterpretation) ?? '';
      const planar = ds.number(Tag.PlanarConfiguration) ?? 0;
      const native = ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2'].includes(transferSyntax);
      if (!native || bitsAllocated !== 8 || !['RGB', 'YBR_FULL'].includes(photometric))
        throw new UnsupportedFormat(
          `${file}: colour cine in ${photometric} / transfer syntax ${transferSyntax} is not read yet (native 8-bit RGB or YBR_FULL only; export greyscale frames to a folder instead)`,
        );
      const table = frameTable(source, header, count, plane * 3);
      for (let t = 0; t < count; t++) {
        const bytes = await table.read(t);
        const grey = new Uint8Array(plane);
        for (let i = 0; i < plane; i++) {
          const [a, b, c] =
            planar === 1
              ? [bytes[i], bytes[plane + i], bytes[2 * plane + i]]
              : [bytes[3 * i], bytes[3 * i + 1], bytes[3 * i + 2]];
          grey[i] = photometric === 'YBR_FULL' ? a : Math.round(0.299 * a + 0.587 * b + 0.114 * c);
        }
        frames.push(grey);
      }
      return { width: columns, height: rows, frames, name: file, dicom };
    }
    if (samples !== 1) throw new UnsupportedFormat(`${file}: ${samples} samples per pixel`);
    const table = frameTable(source, header, count, plane * (bitsAllocated / 8));
    const values = new Float32Array(plane * count);
    const pixelInfo = {
      rows,
      columns,
      bitsAllocated,
      bitsStored: ds.number(Tag.BitsStored) ?? bitsAllocated,
      pixelRepresentation: ds.number(Tag.PixelRepresentation) ?? 0,
      rescaleSlope: 1,
      rescaleIntercept: 0,
    };
    for (let t = 0; t < count; t++)
      await decoder.decodeInto(await table.read(t), transferSyntax, pixelInfo, values, t * plane);
    // 8-bit cines keep their grey levels; deeper ones are scaled min..max to 0..255 over the cine.
    let lo = 0;
    let hi = 255;
    if (pixelInfo.bitsStored > 8) {
      lo = Infinity;
      hi = -Infinity;
      for (const x of values) {
        if (x < lo) lo = x;
        if (x > hi) hi = x;
      }
    }
    const scale = hi > lo ? 255 / (hi - lo) : 0;
    for (let t = 0; t < count; t++)
      frames.push(
        Uint8Array.from(values.subarray(t * plane, (t + 1) * plane), (x) => Math.round((x - lo) * scale)),
      );
    if (ds.string(Tag.PhotometricInterpretation) === 'MONOCHROME1')
      for (const f of frames) for (let i = 0; i < f.length; i++) f[i] = 255 - f[i];
    return { width: columns, height: rows, frames, name: file, dicom };
  } finally {
    await decoder.close();
    await storage.close();
  }
}
