// The replay library: recorded lectures, searchable by title and date, each linking to
// its player. Works with a learner's link, or without one for public sessions.
import { t, onLangChange, fmtDateTime, fmtDuration } from './i18n.js';
import { initShell, takeToken, claims, api, errorText, el } from './common.js';
import { normalizeRecording, publicationLabel } from './recordings.js';

const $ = (name) => document.getElementById(name);
const st = { token: '', items: [], next: '', session: '' };

main();

async function main() {
  initShell();
  st.token = takeToken('replays');
  const c = claims(st.token);
  st.session = new URLSearchParams(location.search).get('session') || (c && c.sid) || '';
  $('filters').addEventListener('submit', (e) => { e.preventDefault(); if (datesOK()) load(false); });
  $('f-text').addEventListener('input', render);
  $('more').addEventListener('click', () => load(true));
  onLangChange(() => {
    if ($('list-message').dataset.status === 'date' && !$('list-message').hidden) $('list-message').textContent = t('replays.badDate', { value: st.badDate });
    render();
  });
  await load(false);
}

/**
 * A date typed as day/month/year (the order of the page's languages, whatever the
 * browser's own locale: a date input would follow the browser), with "/", "-" or
 * "." between, or as YYYY-MM-DD. Returns a local Date at the start of that day,
 * null for an empty field, undefined for something that is not a date.
 */
export function parseDay(text) {
  const s = (text || '').trim();
  if (!s) return null;
  let m = /^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$/.exec(s);
  let y, mo, d;
  if (m) [d, mo, y] = [Number(m[1]), Number(m[2]), Number(m[3])];
  else if ((m = /^(\d{4})-(\d{1,2})-(\d{1,2})$/.exec(s))) [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  else return undefined;
  const date = new Date(y, mo - 1, d);
  return date.getFullYear() === y && date.getMonth() === mo - 1 && date.getDate() === d ? date : undefined;
}

/** Checks the date fields, marking and announcing a bad one. */
function datesOK() {
  for (const f of ['f-from', 'f-to']) {
    const bad = parseDay($(f).value) === undefined;
    $(f).toggleAttribute('aria-invalid', bad);
    if (bad) {
      st.badDate = $(f).value.trim();
      $('list-message').textContent = t('replays.badDate', { value: st.badDate });
      $('list-message').hidden = false;
      $('list-message').dataset.status = 'date';
      $(f).focus();
      return false;
    }
  }
  return true;
}

function query(more) {
  const q = new URLSearchParams();
  if (st.session) q.set('session', st.session);
  const from = parseDay($('f-from').value), to = parseDay($('f-to').value);
  if (from) q.set('from', from.toISOString());
  if (to) q.set('to', new Date(to.getFullYear(), to.getMonth(), to.getDate(), 23, 59, 59).toISOString());
  if (more && st.next) q.set('cursor', st.next);
  return q.toString();
}

async function load(more) {
  $('list-status').textContent = t('replays.loading');
  $('list-status').hidden = false;
  try {
    const r = await api('/api/recordings?' + query(more), { token: st.token });
    const items = ((r && (r.items || r.recordings)) || []).map(normalizeRecording);
    st.items = more ? st.items.concat(items) : items;
    st.next = (r && (r.next_page || r.next)) || '';
    $('list-message').hidden = true;
  } catch (err) {
    st.items = [];
    st.next = '';
    $('list-message').textContent = err.status === 404 ? t('replays.unavailable')
      : err.status === 401 || err.status === 403 ? t('replays.needToken') : errorText(err);
    $('list-message').hidden = false;
    $('list-message').dataset.status = String(err.status);
  }
  render();
}

/** Text without case or Vietnamese diacritics, for searching. */
function fold(s) {
  return (s || '').normalize('NFD').replace(/[\u0300-\u036f]/g, '').replace(/[đĐ]/g, 'd').toLowerCase();
}

/**
 * A note on a recording that lost media while it was recorded (the server's
 * spool was full): its duration counts the lost time, which plays as a gap.
 */
function lostMedia(r) {
  const lost = r.lost_media;
  if (!lost || !(lost.seconds > 0)) return null;
  const text = t('replays.lostMedia', { duration: fmtDuration(lost.seconds) });
  return el('span', { class: 'lost-media', title: t('replays.lostMediaHint') }, ' ', text);
}

function render() {
  const q = fold($('f-text').value.trim());
  const shown = st.items.filter((r) => !q || fold(r.title).includes(q));
  const failed = !$('list-message').hidden;
  $('recordings').hidden = failed || shown.length === 0;
  $('list-status').hidden = failed;
  $('list-status').textContent = shown.length ? '' : t('replays.none');
  $('more').hidden = failed || !st.next;
  $('recording-rows').replaceChildren(...shown.map((r) => {
    const duration = r.duration_seconds;
    return el('tr', { dataset: { recording: r.id } },
      el('td', {}, el('a', { href: '/replays/' + encodeURIComponent(r.id) }, r.title || r.session || r.id)),
      el('td', { class: 'col-pub' }, publicationLabel(r.publication)),
      el('td', { class: 'num' }, r.start ? fmtDateTime(r.start) : '–'),
      el('td', { class: 'num' }, fmtDuration(duration), lostMedia(r)));
  }));
}
