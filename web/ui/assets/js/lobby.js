// The lobby: lectures live now and scheduled, with a join button for the invitations
// this browser has opened; a box to open an invitation; and, for the administrator,
// creating lectures and their invitations (links, copyable text, QR codes).
import { t, onLangChange, fmtDateTime } from './i18n.js';
import { initShell, api, errorText, el, notify, invites, forgetInvite, claims, copyText } from './common.js';

const $ = (name) => document.getElementById(name);
const st = { sessions: [], admin: '', inviteFor: null, minted: [] };

main();

async function main() {
  initShell();
  try { st.admin = sessionStorage.getItem('lectern.admin') || ''; } catch { /* ignore */ }
  $('invite-form').addEventListener('submit', openInvite);
  $('admin-login').addEventListener('submit', adminLogin);
  $('admin-logout').addEventListener('click', adminLogout);
  $('create-form').addEventListener('submit', createSession);
  $('mint-form').addEventListener('submit', mintInvites);
  $('copy-all').addEventListener('click', copyAll);
  $('invite-close').addEventListener('click', () => $('invite-dialog').close());
  $('qr-close').addEventListener('click', () => $('qr-dialog').close());
  onLangChange(() => { render(); renderAdmin(); renderMinted(); });
  renderAdmin();
  await load();
  setInterval(load, 30000);
}

// The sessions this browser may see: the listed ones (all of them for the admin),
// and those of the invitations it holds, each read with its own token (the server
// lists a session that is not public only to the admin and its token holders).
async function load() {
  try {
    const list = await api('/api/sessions', { token: st.admin });
    const seen = new Set(list.map((s) => s.id));
    for (const inv of invites()) {
      if (seen.has(inv.sid)) continue;
      seen.add(inv.sid);
      try {
        list.push(await api('/api/sessions/' + encodeURIComponent(inv.sid), { token: inv.token }));
      } catch (err) {
        // Deleted, or a token the server no longer takes: stop offering it.
        if (err.status === 401 || err.status === 404) forgetInvite(inv);
        else seen.delete(inv.sid);
      }
    }
    st.sessions = list;
    $('load-error').hidden = true;
  } catch (err) {
    if (err.status === 401 && st.admin) adminLogout();
    $('load-error').textContent = t('lobby.loadFailed') + ' ' + errorText(err);
    $('load-error').hidden = false;
  }
  render();
}

function render() {
  const now = Date.now();
  const live = [], upcoming = [], other = [];
  for (const s of st.sessions) {
    const at = s.scheduled_at ? Date.parse(s.scheduled_at) : NaN;
    if (s.live) live.push(s);
    else if (at > now - 3 * 3600 * 1000) upcoming.push(s);
    else other.push(s);
  }
  upcoming.sort((a, b) => Date.parse(a.scheduled_at) - Date.parse(b.scheduled_at));
  other.sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  fillList('live-list', live);
  fillList('upcoming-list', upcoming);
  fillList('other-list', other.slice(0, 30));
  $('live-none').hidden = live.length > 0;
  $('upcoming-none').hidden = upcoming.length > 0;
  $('other-section').hidden = other.length === 0;
}

function fillList(listId, sessions) {
  const mine = invites();
  $(listId).replaceChildren(...sessions.map((s) => {
    const joins = mine.filter((i) => i.sid === s.id).sort((a, b) => roleOrder(a.role) - roleOrder(b.role)).map((i) => joinLink(i));
    const when = s.scheduled_at ? t('lobby.scheduled', { time: fmtDateTime(s.scheduled_at) }) : '';
    return el('li', { class: 'session', dataset: { session: s.id, live: String(!!s.live) } },
      el('div', {},
        el('h3', {}, s.live ? el('span', { class: 'live-badge', dataset: { live: 'on' } }, t('live.on')) : null, ' ', s.title),
        s.description ? el('p', { class: 'desc' }, s.description) : null,
        when ? el('p', { class: 'muted' }, when) : null),
      el('div', { class: 'actions' },
        joins.length ? joins : el('span', { class: 'muted' }, t('lobby.needInvite')),
        st.admin ? el('button', { type: 'button', class: 'btn btn-secondary', dataset: { action: 'invites' }, onclick: () => openInvites(s) }, t('admin.invites')) : null));
  }));
}

// Each invitation's page and button label: a classroom link and a viewer link both
// open the room, so their buttons say which one they are.
function pageFor(role, sid) {
  if (role === 'trainer') return ['/studio/' + sid, 'lobby.openStudio'];
  if (role === 'site') return ['/room/' + sid, 'lobby.openRoom'];
  if (role === 'viewer') return ['/room/' + sid, 'lobby.openWatch'];
  if (role === 'learner') return ['/replays', 'lobby.openReplays'];
  return [null, ''];
}

const roleOrder = (role) => ['trainer', 'site', 'viewer', 'learner'].indexOf(role);

function joinLink(inv) {
  const [path, label] = pageFor(inv.role, inv.sid);
  if (!path) return null;
  return el('a', { class: inv.role === 'site' || inv.role === 'trainer' ? 'btn' : 'btn btn-secondary', href: path + '?token=' + encodeURIComponent(inv.token), dataset: { role: inv.role } }, t(label));
}

// An invitation pasted into the box: a link to one of our pages, or a bare token.
function openInvite(e) {
  e.preventDefault();
  const raw = $('invite-input').value.trim();
  const err = $('invite-error');
  let target = null;
  try {
    const u = new URL(raw, location.origin);
    if (/^\/(studio|room)\/[a-z0-9]+\/?$|^\/replays(\/|$)/.test(u.pathname) && u.searchParams.get('token')) target = u.pathname + u.search;
  } catch { /* not a URL */ }
  if (!target) {
    const c = claims(raw);
    const [path] = c ? pageFor(c.role, c.sid) : [null];
    if (path) target = path + '?token=' + encodeURIComponent(raw);
  }
  if (!target) {
    err.textContent = t('lobby.inviteBad');
    err.hidden = false;
    $('invite-input').setAttribute('aria-invalid', 'true');
    return;
  }
  location.href = target;
}

// Administration

function renderAdmin() {
  $('admin-login').hidden = !!st.admin;
  $('admin-panel').hidden = !st.admin;
}

async function adminLogin(e) {
  e.preventDefault();
  const token = $('admin-token').value.trim();
  const err = $('admin-error');
  err.hidden = true;
  // Listing the sessions with the token checks it, with no effect.
  try {
    await api('/api/sessions', { token });
  } catch (ex) {
    err.textContent = ex.status === 401 || ex.status === 403 ? t('admin.badToken') : errorText(ex);
    err.hidden = false;
    return;
  }
  st.admin = token;
  try { sessionStorage.setItem('lectern.admin', token); } catch { /* ignore */ }
  $('admin-token').value = '';
  renderAdmin();
  await load();
}

function adminLogout() {
  st.admin = '';
  try { sessionStorage.removeItem('lectern.admin'); } catch { /* ignore */ }
  renderAdmin();
  load();
}

async function createSession(e) {
  e.preventDefault();
  const title = $('c-title').value.trim();
  if (!title) { $('c-title').focus(); return; }
  const when = $('c-when').value;
  try {
    const s = await api('/api/sessions', {
      method: 'POST', token: st.admin,
      body: { title, description: $('c-desc').value, scheduled_at: when ? new Date(when).toISOString() : null, public_replays: $('c-public').checked, listed: $('c-listed').checked,
        programme_video: $('c-programme').value },
    });
    notify(t('admin.created', { title: s.title }), 'ok');
    $('create-form').reset();
    await load();
    openInvites(s);
  } catch (err) {
    notify(err.status === 401 ? t('admin.badToken') : errorText(err), 'warn', 0);
  }
}

function openInvites(s) {
  st.inviteFor = s;
  st.minted = [];
  $('invite-title').textContent = t('admin.invitesFor', { title: s.title });
  $('mint-error').hidden = true;
  renderMinted();
  const ttl = $('m-ttl');
  for (const o of ttl.options) o.textContent = t('admin.days', { n: parseInt(o.value, 10) / 24 });
  $('invite-dialog').showModal();
}

/** A participant id from a classroom's display name: "Hà Nội" → "ha-noi". */
export function slug(display) {
  return display.normalize('NFD').replace(/[\u0300-\u036f]/g, '').replace(/[đĐ]/g, 'd').toLowerCase()
    .replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 50);
}

async function mintInvites(e) {
  e.preventDefault();
  const s = st.inviteFor;
  const ttl = $('m-ttl').value;
  const err = $('mint-error');
  err.hidden = true;
  const wanted = [
    { role: 'trainer', name: 'trainer', label: t('admin.trainer') },
  ];
  const used = new Set();
  for (const line of $('m-sites').value.split('\n')) {
    const display = line.trim();
    if (!display) continue;
    let name = slug(display);
    if (!name) {
      err.textContent = t('admin.badName', { name: display });
      err.hidden = false;
      return;
    }
    for (let n = 2; used.has(name); n++) name = slug(display) + '-' + n;
    used.add(name);
    wanted.push({ role: 'site', name, display, label: t('admin.site', { name: display }) });
  }
  wanted.push({ role: 'viewer', name: 'viewer', label: t('admin.viewer') });
  wanted.push({ role: 'learner', name: 'learner', label: t('admin.learner') });
  st.minted = [];
  try {
    for (const w of wanted) {
      const r = await api('/api/sessions/' + s.id + '/tokens', { method: 'POST', token: st.admin, body: { role: w.role, name: w.name, display: w.display || '', ttl } });
      const link = r.links.studio || r.links.room || r.links.replays;
      st.minted.push({ ...w, link, expires: r.expires_at });
    }
  } catch (ex) {
    err.textContent = ex.status === 401 ? t('admin.badToken') : errorText(ex);
    err.hidden = false;
  }
  renderMinted();
}

function renderMinted() {
  $('copy-all').hidden = st.minted.length === 0;
  $('invite-links').replaceChildren(...st.minted.map((m, i) => {
    const id = 'link-' + i;
    const input = el('input', { type: 'text', id, readonly: true, value: m.link, spellcheck: 'false' });
    return el('li', { dataset: { role: m.role, name: m.name } },
      el('label', { for: id }, m.label),
      input,
      el('button', { type: 'button', class: 'btn btn-small', onclick: async (e) => { await copyText(m.link, input); e.target.textContent = t('admin.copied'); } }, t('admin.copy')),
      el('button', { type: 'button', class: 'btn btn-small btn-secondary', 'aria-label': t('admin.qrFor', { who: m.label }), onclick: () => showQR(m) }, t('admin.qr')));
  }));
}

async function showQR(m) {
  const { renderSVG } = await import('../vendor/uqr.mjs');
  const box = $('qr');
  box.innerHTML = renderSVG(m.link, { border: 2 }); // an SVG string made here from our own link
  const svg = box.querySelector('svg');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', t('admin.qrFor', { who: m.label }));
  $('qr-title').textContent = t('admin.qrFor', { who: m.label });
  $('qr-dialog').showModal();
}

async function copyAll() {
  const s = st.inviteFor;
  const lines = [t('admin.inviteText', { title: s.title })];
  if (s.scheduled_at) lines.push(t('admin.inviteWhen', { time: fmtDateTime(s.scheduled_at) }));
  lines.push('');
  for (const m of st.minted) lines.push(m.label + ': ' + m.link);
  if (st.minted[0]) lines.push('', t('admin.inviteValid', { time: fmtDateTime(st.minted[0].expires) }));
  const ok = await copyText(lines.join('\n'));
  notify(ok ? t('admin.copied') : lines.join('\n'), ok ? 'ok' : 'info', ok ? 3000 : 0);
}
