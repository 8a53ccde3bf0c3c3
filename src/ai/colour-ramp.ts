// The one colour ramp for probability maps (values 0..1), shared by the server (heat-map pyramids
// over slides, heatmap-pyramid.ts) and the browser (the radiology viewer's AI overlay, bundled
// from here): ColorBrewer RdYlBu, 5 classes, reversed. No imports, so the viewer bundle stays light.

/** Red-yellow-blue (ColorBrewer RdYlBu, reversed): value 0 blue, 0.5 pale yellow, 1 red. */
export const RAMP: [number, [number, number, number]][] = [
  [0, [44, 123, 182]],
  [0.25, [171, 217, 233]],
  [0.5, [255, 255, 191]],
  [0.75, [253, 174, 97]],
  [1, [215, 25, 28]],
];

/** The ramp's colour for a value in 0..1 (clamped), linearly interpolated and rounded. */
export function rampColour(value: number): [number, number, number] {
  const v = Math.min(1, Math.max(0, value));
  for (let i = 1; i < RAMP.length; i++) {
    const [v1, c1] = RAMP[i];
    if (v <= v1) {
      const [v0, c0] = RAMP[i - 1];
      const t = (v - v0) / (v1 - v0);
      return [0, 1, 2].map((k) => Math.round(c0[k] + (c1[k] - c0[k]) * t)) as [number, number, number];
    }
  }
  return RAMP[RAMP.length - 1][1];
}

const hex = (c: number[]) => '#' + c.map((v) => v.toString(16).padStart(2, '0')).join('');

/** The ramp's stops as [value, "#rrggbb"] (a legend's gradient). */
export function legend(): [number, string][] {
  return RAMP.map(([v, c]) => [v, hex(c)]);
}
