// Shared by the slide browser and the viewer: the page configuration the server embeds, the
// viewer token (when signed URLs are on) appended to every request, and small DOM helpers.

/** The `<script type="application/json" id="medstream-config">` block of every page. */
export interface PageConfig {
  /** The slide the viewer page shows (absent on the browser page). */
  slideId?: string;
  /** A viewer token: `vt` and `exp` are appended to every request the page makes. */
  token?: { vt: string; exp: number };
}

export function readConfig(): PageConfig {
  const el = document.getElementById('medstream-config');
  if (!el?.textContent) return {};
  try {
    return JSON.parse(el.textContent) as PageConfig;
  } catch {
    return {};
  }
}

/** `url` with the viewer token's `vt` and `exp` query parameters, when the page has a token. */
export function withToken(url: string, config: PageConfig): string {
  if (!config.token) return url;
  const sep = url.includes('?') ? '&' : '?';
  return `${url}${sep}vt=${encodeURIComponent(config.token.vt)}&exp=${encodeURIComponent(String(config.token.exp))}`;
}

/** The server's JSON error `{error, message, status}`, or a message built from the status. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export async function errorOf(res: Response): Promise<ApiError> {
  let message = `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { message?: unknown };
    if (typeof body.message === 'string') message = body.message;
  } catch {
    // Not JSON: keep the status.
  }
  return new ApiError(message, res.status);
}

export async function fetchJson<T>(url: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(url, { signal, headers: { accept: 'application/json' } });
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as T;
}

export async function fetchText(url: string, signal?: AbortSignal): Promise<string> {
  const res = await fetch(url, { signal });
  if (!res.ok) throw await errorOf(res);
  return res.text();
}

/** `document.createElement` with a class name, text and attributes. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
  attrs: Record<string, string> = {},
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`missing #${id}`);
  return e as T;
}

/** The metadata `/slides/{id}` answers (the fields the pages show). */
export interface SlideMetadata {
  slide_id: string;
  format: string;
  vendor?: string | null;
  width: number;
  height: number;
  level_count: number;
  levels: {
    level: number;
    width: number;
    height: number;
    tile_width: number;
    tile_height: number;
    downsample: number;
    native?: boolean;
  }[];
  mpp_x?: number | null;
  mpp_y?: number | null;
  objective_power?: number | null;
  associated_images?: { name: string; width: number; height: number }[];
  properties?: Record<string, string>;
}

/** `/slides/{id}` + `suffix`, the id URL-encoded as every route expects. */
export function slideUrl(id: string, suffix = ''): string {
  return `/slides/${encodeURIComponent(id)}${suffix}`;
}

export function formatMpp(meta: SlideMetadata): string | undefined {
  if (!meta.mpp_x) return undefined;
  const x = round(meta.mpp_x, 4);
  const y = meta.mpp_y ? round(meta.mpp_y, 4) : x;
  return x === y ? `${x} µm/px` : `${x} × ${y} µm/px`;
}

export function formatDimensions(meta: { width: number; height: number }): string {
  return `${meta.width.toLocaleString('en-US')} × ${meta.height.toLocaleString('en-US')} px`;
}

export function round(n: number, digits: number): number {
  return Number(n.toPrecision(digits));
}
