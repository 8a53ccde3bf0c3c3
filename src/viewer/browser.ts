// The slide browser (`GET /`): one page of `/slides` at a time as a grid of cards; thumbnails
// and metadata load only when a card scrolls into view (IntersectionObserver). The search box
// is the server's `search`, folders are its `prefix`/`folders`, "Load more" its `next_cursor`.
// The state (prefix, search) lives in the page's query string, so a folder can be linked.

import {
  byId,
  el,
  fetchJson,
  formatDimensions,
  formatMpp,
  readConfig,
  slideUrl,
  withToken,
  type SlideMetadata,
} from './common';

interface SlidePage {
  slides: string[];
  folders: string[];
  next_cursor?: string;
}

/** Slides per page; `?limit=` overrides it (1–1000, as the API allows). */
const PAGE_SIZE = pageSize(new URLSearchParams(location.search).get('limit'));
/** Pages fetched in a row while a search filters every slide of a page out. */
const MAX_EMPTY_PAGES = 20;
const THUMBNAIL_SIZE = 256;

const config = readConfig();
const grid = byId<HTMLUListElement>('grid');
const folderList = byId<HTMLUListElement>('folders');
const crumbs = byId('crumbs');
const status = byId('status');
const more = byId<HTMLButtonElement>('more');
const search = byId<HTMLInputElement>('search');

let state = readState();
let cursor: string | undefined;
let shown = 0;
let generation = 0;
let controller: AbortController | undefined;

const observer = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      observer.unobserve(entry.target);
      loadCard(entry.target as HTMLElement);
    }
  },
  { rootMargin: '200px' },
);

function pageSize(raw: string | null): number {
  const n = Number(raw);
  return raw && Number.isInteger(n) && n >= 1 && n <= 1000 ? n : 60;
}

function readState(): { prefix: string; search: string } {
  const q = new URLSearchParams(location.search);
  return { prefix: q.get('prefix') ?? '', search: q.get('search') ?? '' };
}

function writeState(push: boolean): void {
  const q = new URLSearchParams();
  if (state.prefix) q.set('prefix', state.prefix);
  if (state.search) q.set('search', state.search);
  if (new URLSearchParams(location.search).has('limit')) q.set('limit', String(PAGE_SIZE));
  const qs = q.toString();
  const url = `${location.pathname}${qs ? `?${qs}` : ''}`;
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
}

function listUrl(after?: string): string {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.prefix) q.set('prefix', state.prefix);
  if (state.search) q.set('search', state.search);
  if (after) q.set('cursor', after);
  return withToken(`/slides?${q}`, config);
}

/** Starts the listing over for the current state. */
function reload(): void {
  generation++;
  controller?.abort();
  cursor = undefined;
  shown = 0;
  grid.replaceChildren();
  folderList.replaceChildren();
  renderCrumbs();
  search.value = state.search;
  void loadPage(true);
}

async function loadPage(first: boolean): Promise<void> {
  const gen = generation;
  controller = new AbortController();
  const { signal } = controller;
  more.hidden = true;
  status.textContent = 'Loading…';
  try {
    let page: SlidePage;
    let empty = 0;
    do {
      page = await fetchJson<SlidePage>(listUrl(cursor), signal);
      if (gen !== generation) return;
      if (first && empty === 0) renderFolders(page.folders);
      cursor = page.next_cursor;
      empty++;
    } while (page.slides.length === 0 && cursor && empty < MAX_EMPTY_PAGES);
    for (const id of page.slides) grid.append(card(id));
    shown += page.slides.length;
    more.hidden = !cursor;
    status.textContent = summary();
  } catch (e) {
    if (gen !== generation || signal.aborted) return;
    status.textContent = `Could not list slides: ${(e as Error).message}`;
    status.classList.add('error');
    more.hidden = !cursor;
  }
}

function summary(): string {
  const what = shown === 1 ? '1 slide' : `${shown} slides`;
  if (shown === 0) return state.search ? `No slide matches “${state.search}”.` : 'No slides here.';
  return `${what}${cursor ? ' so far' : ''}${state.search ? ` matching “${state.search}”` : ''}`;
}

function renderCrumbs(): void {
  const parts = state.prefix.split('/').filter(Boolean);
  const items: HTMLElement[] = [folderButton('All slides', '')];
  let acc = '';
  for (const part of parts) {
    acc += `${part}/`;
    items.push(el('span', 'sep', '/'), folderButton(part, acc));
  }
  crumbs.replaceChildren(...items);
}

function renderFolders(folders: string[]): void {
  folderList.replaceChildren(
    ...folders.map((prefix) => {
      const li = el('li', 'folder');
      const name = prefix.slice(state.prefix.length).replace(/\/$/, '') || prefix;
      li.append(folderButton(`${name}/`, prefix));
      return li;
    }),
  );
}

function folderButton(label: string, prefix: string): HTMLButtonElement {
  const b = el('button', 'link', label, { type: 'button' });
  b.addEventListener('click', () => {
    state = { prefix, search: '' };
    writeState(true);
    reload();
  });
  return b;
}

function card(id: string): HTMLLIElement {
  const li = el('li', 'card');
  li.dataset.slide = id;
  const a = el('a', '', undefined, { href: `/view/${encodeURIComponent(id)}` });
  const thumb = el('div', 'thumb');
  const name = el('div', 'name', id.split('/').pop() ?? id, { title: id });
  const meta = el('div', 'meta', '…');
  a.append(thumb, name, meta);
  li.append(a);
  observer.observe(li);
  return li;
}

/** A card scrolled into view: its thumbnail and metadata. */
function loadCard(li: HTMLElement): void {
  const id = li.dataset.slide ?? '';
  const thumb = li.querySelector('.thumb');
  const meta = li.querySelector('.meta');
  const img = el('img', '', undefined, { alt: `Thumbnail of ${id}`, decoding: 'async' });
  img.addEventListener('load', () => li.classList.add('loaded'));
  img.addEventListener('error', () => {
    img.remove();
    thumb?.append(el('span', 'no-thumb', 'no preview'));
  });
  img.src = withToken(slideUrl(id, `/thumbnail?max_size=${THUMBNAIL_SIZE}`), config);
  thumb?.append(img);
  fetchJson<SlideMetadata>(withToken(slideUrl(id), config)).then(
    (m) => {
      if (!meta) return;
      const parts = [m.vendor ?? m.format, formatDimensions(m), formatMpp(m)].filter(Boolean);
      meta.textContent = parts.join(' · ');
    },
    (e: Error) => {
      li.classList.add('unreadable');
      if (meta) meta.textContent = e.message;
    },
  );
}

let searchTimer: number | undefined;
search.addEventListener('input', () => {
  window.clearTimeout(searchTimer);
  searchTimer = window.setTimeout(() => {
    const value = search.value.trim();
    if (value === state.search) return;
    state = { ...state, search: value };
    writeState(false);
    reload();
  }, 250);
});
more.addEventListener('click', () => void loadPage(false));
window.addEventListener('popstate', () => {
  state = readState();
  reload();
});

reload();
