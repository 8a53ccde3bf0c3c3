// Entry of the radiology viewer page (/radiology/): the study browser, or the study view when the
// hash names a study (deep links, see hash.ts). The DICOMweb token, when auth is on, comes from
// the page's hash (`#token=…`, never sent to the server) or its `?token=` and is kept for the tab.

import { metaData } from '@cornerstonejs/core';
import { readConfig } from '../common.js';
import { dicomwebClient } from './dicomweb.js';
import { parseHash } from './hash.js';
import { showStudyBrowser } from './studies.js';
import { showStudy, type StudyView } from './study-view.js';

interface RadiologyConfig {
  dicomwebRoot?: string;
}

const TOKEN_KEY = 'medstream-dicomweb-token';

function takeToken(): string | undefined {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  const fromQuery = new URLSearchParams(location.search).get('token');
  const token = fromHash ?? fromQuery;
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    const hash = new URLSearchParams(location.hash.slice(1));
    const query = new URLSearchParams(location.search);
    hash.delete('token');
    query.delete('token');
    const q = query.toString();
    const h = hash.toString();
    history.replaceState(null, '', `${location.pathname}${q ? `?${q}` : ''}${h ? `#${h}` : ''}`);
    return token;
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

const config = readConfig() as RadiologyConfig;
const client = dicomwebClient(
  new URL(config.dicomwebRoot ?? '/dicomweb', location.href).href.replace(/\/$/, ''),
  takeToken(),
);
const app = document.getElementById('app')!;
const title = document.getElementById('title');
let view: StudyView | undefined;
let shown = '';

async function route(): Promise<void> {
  const state = parseHash(location.hash);
  const key = state.study ?? '';
  if (view && key === shown && state.series) {
    // Same study: a different series or layout from a link in the series list.
    const d = view.display;
    if (d && (d.series.seriesUid !== state.series || (state.layout && state.layout !== d.layout)))
      await view.open(state.series, state.layout ?? d.layout, state);
    return;
  }
  view?.destroy();
  view = undefined;
  shown = key;
  document.body.dataset.state = 'loading';
  if (!state.study) {
    if (title) title.textContent = 'Studies';
    showStudyBrowser(app, client);
    return;
  }
  if (title) title.textContent = 'Study';
  try {
    view = await showStudy(app, client, state);
  } catch (err) {
    app.replaceChildren();
    const p = document.createElement('p');
    p.className = 'rad-error';
    p.setAttribute('role', 'alert');
    p.textContent = `This study cannot be shown: ${(err as Error).message}`;
    app.append(p);
    document.body.dataset.state = 'error';
  }
}

window.addEventListener('hashchange', () => void route());
void route();

// For the tests and the benchmark: what is shown, read from the page.
Object.assign(window, {
  medstreamRadiology: {
    get view() {
      return view;
    },
    /** An image's plane geometry as Cornerstone sees it (the segmentation test places boxes with it). */
    imagePlane: (imageId: string): unknown => metaData.get('imagePlaneModule', imageId),
  },
});
