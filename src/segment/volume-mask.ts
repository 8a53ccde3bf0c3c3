// Whole-volume mask logic of the pipeline: OR of the forward and backward passes, the largest
// 6-connected 3D component (MedSAM2's getLargestCC), and slice access into a mask laid out like
// its volume (index i + nx * (j + ny * k)).

/** `a | b` voxel by voxel (a new array). */
export function orMasks(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length !== b.length) throw new RangeError(`masks differ in size: ${a.length} vs ${b.length}`);
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] || b[i] ? 1 : 0;
  return out;
}

/** The largest 6-connected component of a 3D binary mask (empty in, empty out). */
export function largestComponent3d(mask: Uint8Array, dims: [number, number, number]): Uint8Array {
  const [nx, ny, nz] = dims;
  const plane = nx * ny;
  if (mask.length !== plane * nz)
    throw new RangeError(`mask has ${mask.length} voxels, dims say ${plane * nz}`);
  const labels = new Int32Array(mask.length);
  const stack = new Int32Array(mask.length);
  let bestId = 0;
  let bestSize = 0;
  let next = 0;
  for (let start = 0; start < mask.length; start++) {
    if (!mask[start] || labels[start]) continue;
    const id = ++next;
    let size = 0;
    let top = 0;
    labels[start] = id;
    stack[top++] = start;
    while (top > 0) {
      const v = stack[--top];
      size++;
      const x = v % nx;
      const y = ((v - x) / nx) % ny;
      const z = Math.floor(v / plane);
      const visit = (w: number) => {
        if (mask[w] && !labels[w]) {
          labels[w] = id;
          stack[top++] = w;
        }
      };
      if (x > 0) visit(v - 1);
      if (x < nx - 1) visit(v + 1);
      if (y > 0) visit(v - nx);
      if (y < ny - 1) visit(v + nx);
      if (z > 0) visit(v - plane);
      if (z < nz - 1) visit(v + plane);
    }
    if (size > bestSize) {
      bestSize = size;
      bestId = id;
    }
  }
  const out = new Uint8Array(mask.length);
  if (bestId === 0) return out;
  for (let i = 0; i < mask.length; i++) out[i] = labels[i] === bestId ? 1 : 0;
  return out;
}

/** A view of slice k of a volume-shaped array (no copy). */
export function sliceOf<T extends Uint8Array | Float32Array>(
  data: T,
  dims: [number, number, number],
  k: number,
): T {
  const plane = dims[0] * dims[1];
  return data.subarray(k * plane, (k + 1) * plane) as T;
}
