// Binary image operations on one slice (Uint8Array, 0/1, row-major width x height): square
// dilation/erosion (separable, O(n) per radius step), hole filling, 4-connected components and
// the selections the engines and the stopping rule use. Pure functions, no allocation beyond the result.

export interface Plane {
  width: number;
  height: number;
}

/** Number of set pixels. */
export function area(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += mask[i] ? 1 : 0;
  return n;
}

/** Bounding box of the set pixels (inclusive), or undefined when empty. */
export function boundingBox(
  mask: Uint8Array,
  { width }: Plane,
): { x0: number; y0: number; x1: number; y1: number } | undefined {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -1;
  let y1 = -1;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    const x = i % width;
    const y = (i - x) / width;
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  return x1 < 0 ? undefined : { x0, y0, x1, y1 };
}

/** One pass of a 3x3 max (dilate) or min (erode) along x then y, repeated `radius` times. */
function morph(mask: Uint8Array, plane: Plane, radius: number, dilate: boolean): Uint8Array {
  const { width, height } = plane;
  let src = mask;
  const tmp = new Uint8Array(mask.length);
  for (let r = 0; r < radius; r++) {
    const out = new Uint8Array(mask.length);
    for (let y = 0; y < height; y++) {
      const row = y * width;
      for (let x = 0; x < width; x++) {
        const c = src[row + x];
        const l = x > 0 ? src[row + x - 1] : dilate ? 0 : c;
        const rr = x < width - 1 ? src[row + x + 1] : dilate ? 0 : c;
        tmp[row + x] = dilate ? c | l | rr : c & l & rr;
      }
    }
    for (let y = 0; y < height; y++) {
      const row = y * width;
      for (let x = 0; x < width; x++) {
        const c = tmp[row + x];
        const u = y > 0 ? tmp[row - width + x] : dilate ? 0 : c;
        const d = y < height - 1 ? tmp[row + width + x] : dilate ? 0 : c;
        out[row + x] = dilate ? c | u | d : c & u & d;
      }
    }
    src = out;
  }
  return radius > 0 ? src : mask.slice();
}

/** Dilation by a (2r+1)-square. */
export function dilate(mask: Uint8Array, plane: Plane, radius: number): Uint8Array {
  return morph(mask, plane, radius, true);
}

/** Erosion by a (2r+1)-square (the image border counts as inside). */
export function erode(mask: Uint8Array, plane: Plane, radius: number): Uint8Array {
  return morph(mask, plane, radius, false);
}

/** Opening: erosion then dilation; removes bridges and specks thinner than 2r+1 pixels. */
export function open(mask: Uint8Array, plane: Plane, radius: number): Uint8Array {
  const out = dilate(erode(mask, plane, radius), plane, radius);
  // Never add pixels the mask did not have (dilation of a border-touching mask can).
  for (let i = 0; i < out.length; i++) out[i] &= mask[i];
  return out;
}

/** Sets every background pixel not 4-connected to the image border (holes). */
export function fillHoles(mask: Uint8Array, plane: Plane): Uint8Array {
  const { width, height } = plane;
  const outside = new Uint8Array(mask.length);
  const stack = new Int32Array(mask.length);
  let top = 0;
  const push = (i: number) => {
    if (!mask[i] && !outside[i]) {
      outside[i] = 1;
      stack[top++] = i;
    }
  };
  for (let x = 0; x < width; x++) {
    push(x);
    push((height - 1) * width + x);
  }
  for (let y = 0; y < height; y++) {
    push(y * width);
    push(y * width + width - 1);
  }
  while (top > 0) {
    const i = stack[--top];
    const x = i % width;
    if (x > 0) push(i - 1);
    if (x < width - 1) push(i + 1);
    if (i >= width) push(i - width);
    if (i < mask.length - width) push(i + width);
  }
  const out = new Uint8Array(mask.length);
  for (let i = 0; i < out.length; i++) out[i] = outside[i] ? 0 : 1;
  return out;
}

/** 4-connected component labels (1..n, 0 background) and each label's size (sizes[0] unused). */
export function label2d(mask: Uint8Array, { width }: Plane): { labels: Int32Array; sizes: number[] } {
  const labels = new Int32Array(mask.length);
  const sizes = [0];
  const stack = new Int32Array(mask.length);
  for (let start = 0; start < mask.length; start++) {
    if (!mask[start] || labels[start]) continue;
    const id = sizes.length;
    let size = 0;
    let top = 0;
    labels[start] = id;
    stack[top++] = start;
    while (top > 0) {
      const i = stack[--top];
      size++;
      const x = i % width;
      const visit = (j: number) => {
        if (mask[j] && !labels[j]) {
          labels[j] = id;
          stack[top++] = j;
        }
      };
      if (x > 0) visit(i - 1);
      if (x < width - 1) visit(i + 1);
      if (i >= width) visit(i - width);
      if (i + width < mask.length) visit(i + width);
    }
    sizes.push(size);
  }
  return { labels, sizes };
}

/** The components of `mask` that share at least one pixel with `seeds`. */
export function componentsTouching(mask: Uint8Array, seeds: Uint8Array, plane: Plane): Uint8Array {
  const { labels } = label2d(mask, plane);
  const keep = new Set<number>();
  for (let i = 0; i < mask.length; i++) if (seeds[i] && labels[i]) keep.add(labels[i]);
  const out = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) out[i] = keep.has(labels[i]) ? 1 : 0;
  return out;
}

/** The largest 4-connected component (the one with most seed pixels when `seeds` is given). */
export function largestComponent2d(mask: Uint8Array, plane: Plane, seeds?: Uint8Array): Uint8Array {
  const { labels, sizes } = label2d(mask, plane);
  const score = seeds ? new Array<number>(sizes.length).fill(0) : sizes.slice();
  if (seeds) for (let i = 0; i < mask.length; i++) if (seeds[i] && labels[i]) score[labels[i]]++;
  let best = 0;
  for (let id = 1; id < score.length; id++) {
    if (
      score[id] > (best ? score[best] : 0) ||
      (score[id] === score[best] && best && sizes[id] > sizes[best])
    )
      best = id;
  }
  const out = new Uint8Array(mask.length);
  if (best === 0) return out;
  for (let i = 0; i < mask.length; i++) out[i] = labels[i] === best ? 1 : 0;
  return out;
}

/**
 * A pixel deep inside the mask: the set pixel of the last non-empty erosion (3x3, repeated) closest
 * to that erosion's centroid — the centre of the thickest part, never on a thin limb or outside a
 * concave outline as a centroid can be. Undefined for an empty mask.
 */
export function deepestPoint(mask: Uint8Array, plane: Plane): { x: number; y: number } | undefined {
  if (!mask.some((v) => v)) return undefined;
  let core = mask;
  // Bounded: a mask covering the whole image never erodes away (the border counts as inside).
  for (let r = 0; r < Math.max(plane.width, plane.height); r++) {
    const next = erode(core, plane, 1);
    if (!next.some((v) => v)) break;
    core = next;
  }
  const { width } = plane;
  let sx = 0;
  let sy = 0;
  let n = 0;
  for (let i = 0; i < core.length; i++) {
    if (!core[i]) continue;
    sx += i % width;
    sy += Math.floor(i / width);
    n++;
  }
  const cx = sx / n;
  const cy = sy / n;
  let best = -1;
  let bestDistance = Infinity;
  for (let i = 0; i < core.length; i++) {
    if (!core[i]) continue;
    const d = ((i % width) - cx) ** 2 + (Math.floor(i / width) - cy) ** 2;
    if (d < bestDistance) {
      bestDistance = d;
      best = i;
    }
  }
  return { x: best % width, y: Math.floor(best / width) };
}
