// The study browser: a QIDO-RS search form (patient name or ID, date range, modality, accession)
// over /dicomweb/studies with paging (limit / offset), and each study's series with their WADO-RS
// thumbnails. Choosing a series opens the study view (through the hash).

import { el } from '../common.js';
import { dicomDate, personName, str, TAG, type DicomJson, type DicomwebClient } from './dicomweb.js';
import { formatHash } from './hash.js';

/** Studies per page: 25, or `?limit=` of the page's URL (1-1000). */
function pageSize(): number {
  const n = Number(new URLSearchParams(location.search).get('limit'));
  return Number.isInteger(n) && n >= 1 && n <= 1000 ? n : 25;
}

export function showStudyBrowser(root: HTMLElement, client: DicomwebClient): void {
  root.replaceChildren();
  const form = el('form', 'rad-search', undefined, { role: 'search', id: 'study-search' });
  const field = (name: string, label: string, attrs: Record<string, string> = {}): HTMLInputElement => {
    const input = el('input', undefined, undefined, {
      name,
      'aria-label': label,
      placeholder: label,
      ...attrs,
    });
    form.append(input);
    return input;
  };
  const patient = field('patient', 'Patient name or ID', { type: 'search', autocomplete: 'off' });
  const from = field('from', 'From date', { type: 'date' });
  const to = field('to', 'To date', { type: 'date' });
  const modality = field('modality', 'Modality (CT, MR…)', { size: '8' });
  const accession = field('accession', 'Accession', { size: '10' });
  form.append(el('button', undefined, 'Search', { type: 'submit' }));
  const status = el('p', 'status', '', { id: 'status', role: 'status' });
  const list = el('ul', 'rad-studies', undefined, { id: 'studies' });
  const more = el('button', undefined, 'Load more', { type: 'button', id: 'more' });
  more.hidden = true;
  root.append(form, status, list, more);

  const PAGE = pageSize();
  let offset = 0;
  let query = '';
  let controller: AbortController | undefined;

  const params = (): string => {
    const p = new URLSearchParams({ fuzzymatching: 'true', includefield: '00081030,00080061' });
    const who = patient.value.trim();
    // A value with a digit is an ID, otherwise a name (fuzzy: any name component's start).
    if (who) p.set(/\d/.test(who) ? 'PatientID' : 'PatientName', /\d/.test(who) ? `${who}*` : who);
    const d = (v: string): string => v.replace(/-/g, '');
    if (from.value || to.value) p.set('StudyDate', `${d(from.value)}-${d(to.value)}`);
    if (modality.value.trim()) p.set('ModalitiesInStudy', modality.value.trim().toUpperCase());
    if (accession.value.trim()) p.set('AccessionNumber', `${accession.value.trim()}*`);
    return p.toString();
  };

  const load = async (reset: boolean): Promise<void> => {
    controller?.abort();
    controller = new AbortController();
    if (reset) {
      offset = 0;
      query = params();
      list.replaceChildren();
    }
    status.textContent = 'Searching…';
    try {
      const studies = await client.json(
        `/studies?${query}&limit=${PAGE + 1}&offset=${offset}`,
        controller.signal,
      );
      const page = studies.slice(0, PAGE);
      for (const s of page) list.append(studyItem(s, client));
      offset += page.length;
      more.hidden = studies.length <= PAGE;
      status.textContent =
        offset === 0 ? 'No studies match.' : `${offset} ${offset === 1 ? 'study' : 'studies'}`;
      document.body.dataset.state = 'ready';
    } catch (err) {
      if ((err as Error).name === 'AbortError') return;
      status.textContent = `Search failed: ${(err as Error).message}`;
      document.body.dataset.state = 'error';
    }
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void load(true);
  });
  more.addEventListener('click', () => void load(false));
  void load(true);
}

function studyItem(study: DicomJson, client: DicomwebClient): HTMLLIElement {
  const uid = str(study, TAG.StudyInstanceUID);
  const li = el('li', 'rad-study', undefined, { 'data-study': uid });
  const head = el('div', 'rad-study-head');
  head.append(
    el('strong', undefined, personName(str(study, TAG.PatientName)) || '(no name)'),
    el('span', undefined, str(study, TAG.PatientID)),
    el('span', undefined, dicomDate(str(study, TAG.StudyDate))),
    el('span', 'rad-modalities', (study[TAG.ModalitiesInStudy]?.Value ?? []).join(', ')),
    el('span', undefined, str(study, TAG.AccessionNumber)),
    el('span', 'rad-desc', str(study, TAG.StudyDescription)),
  );
  const series = el('ul', 'rad-series-strip');
  li.append(head, series);
  void client
    .json(`/studies/${uid}/series`)
    .then((all) => {
      for (const s of all) {
        const seriesUid = str(s, TAG.SeriesInstanceUID);
        const a = el('a', 'rad-series-link', undefined, {
          href: formatHash({ study: uid, series: seriesUid }),
          'data-series': seriesUid,
        });
        const img = el('img', undefined, undefined, {
          alt: '',
          loading: 'lazy',
          width: '96',
          height: '96',
          src: client.linkUrl(`/studies/${uid}/series/${seriesUid}/thumbnail?viewport=96,96`),
        });
        const n = str(s, TAG.NumberOfSeriesRelatedInstances);
        a.append(
          img,
          el('span', undefined, `${str(s, TAG.Modality)} ${str(s, TAG.SeriesDescription)}`.trim()),
          el('small', undefined, `${n} image${n === '1' ? '' : 's'}`),
        );
        const item = el('li');
        item.append(a);
        series.append(item);
      }
    })
    .catch((err: Error) => series.append(el('li', 'rad-error-inline', `Series failed: ${err.message}`)));
  return li;
}
