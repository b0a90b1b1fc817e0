// What every page shares: the page shell (language switch, notices), access tokens,
// the JSON API and its errors, and a small DOM helper.
import { t, setLang, lang, apply } from './i18n.js';

/** An error answered by the API: status is the HTTP status (0 for a network failure). */
export class ApiError extends Error {
  constructor(status, message) {
    super(message || 'HTTP ' + status);
    this.name = 'ApiError';
    this.status = status;
  }
}

/**
 * The access token of this page: from ?token= (which is then removed from the address
 * bar, so a projector does not show it, and remembered for reloads and bookmarks), or
 * the one remembered under scope. persist=false keeps it in memory only (embeds).
 */
export function takeToken(scope, { persist = true } = {}) {
  const url = new URL(location.href);
  const fromURL = url.searchParams.get('token');
  const key = 'lectern.token.' + scope;
  if (fromURL) {
    url.searchParams.delete('token');
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
    if (persist) {
      try { localStorage.setItem(key, fromURL); } catch { /* storage blocked */ }
      rememberInvite(fromURL);
    }
    return fromURL.trim();
  }
  if (!persist) return '';
  try { return localStorage.getItem(key) || ''; } catch { return ''; }
}

/** Forgets the token remembered under scope (after the server refused it). */
export function forgetToken(scope) {
  try { localStorage.removeItem('lectern.token.' + scope); } catch { /* ignore */ }
}

/** The claims of a Lectern token ({sid, role, name, display, exp}), or null. Unverified: display only. */
export function claims(token) {
  const part = (token || '').split('.')[1];
  if (!part) return null;
  try {
    const bin = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const c = JSON.parse(new TextDecoder().decode(bytes));
    return typeof c === 'object' && c ? c : null;
  } catch {
    return null;
  }
}

/** Remembers a token by session so that the lobby can offer to open it again. */
export function rememberInvite(token) {
  const c = claims(token);
  if (!c || !c.sid || !c.role) return;
  try {
    const all = JSON.parse(localStorage.getItem('lectern.invites') || '{}');
    all[c.sid + ':' + c.role] = { token, role: c.role, sid: c.sid, exp: c.exp || 0 };
    localStorage.setItem('lectern.invites', JSON.stringify(all));
  } catch { /* ignore */ }
}

/** Forgets a remembered invitation (its session was deleted or its token refused). */
export function forgetInvite(inv) {
  try {
    const all = JSON.parse(localStorage.getItem('lectern.invites') || '{}');
    delete all[inv.sid + ':' + inv.role];
    localStorage.setItem('lectern.invites', JSON.stringify(all));
  } catch { /* ignore */ }
}

/** The remembered, unexpired invitations: [{token, role, sid, exp}]. */
export function invites() {
  try {
    const all = JSON.parse(localStorage.getItem('lectern.invites') || '{}');
    const now = Date.now() / 1000;
    return Object.values(all).filter((i) => !i.exp || i.exp > now);
  } catch {
    return [];
  }
}

/** Calls the JSON API; resolves to the decoded body (null for 204), rejects with ApiError. */
export async function api(path, { method = 'GET', token = '', body, signal } = {}) {
  const headers = {};
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: 'no-store' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, err.message);
  }
  if (resp.status === 204) return null;
  let data = null;
  const text = await resp.text();
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) throw new ApiError(resp.status, data && data.error);
  return data;
}

/** A message for an error, in the user's language, for people who are not technical. */
export function errorText(err) {
  const status = err && typeof err.status === 'number' ? err.status : -1;
  switch (true) {
    case status === 0: return t('err.network');
    case status === 401: return t('err.badToken');
    case status === 403: return t('err.forbidden');
    case status === 404: return t('err.notFound');
    case status >= 500: return t('err.server', { status });
    case status > 0: return (err.message || 'HTTP ' + status);
  }
  return (err && err.message) || String(err);
}

/**
 * Replaces the page's main content with a clear message that says what went wrong and
 * what to do (never a blank page).
 */
export function showFatal(message, { retry = false } = {}) {
  const main = document.querySelector('main');
  main.replaceChildren(
    el('section', { class: 'fatal card', role: 'alert', 'aria-live': 'assertive', 'data-state': 'fatal' },
      el('h1', {}, t('err.title')),
      el('p', { class: 'fatal-message' }, message),
      el('p', { class: 'actions' },
        retry ? el('button', { type: 'button', class: 'btn', onclick: () => location.reload() }, t('err.reload')) : null,
        el('a', { class: 'btn btn-secondary', href: '/' }, t('err.back')))));
  document.body.dataset.state = 'fatal';
}

/**
 * Replaces the page's main content with the notice that its session was deleted while
 * the page was open (the page has stopped its media); it follows the language switch.
 */
export function showDeleted() {
  const main = document.querySelector('main');
  main.replaceChildren(
    el('section', { class: 'fatal card', role: 'alert', 'aria-live': 'assertive', 'data-state': 'deleted' },
      el('h1', { 'data-i18n': 'session.deleted' }, t('session.deleted')),
      el('p', { class: 'fatal-message', 'data-i18n': 'session.deletedDetail' }, t('session.deletedDetail')),
      el('p', { class: 'actions' }, el('a', { class: 'btn btn-secondary', href: '/', 'data-i18n': 'err.back' }, t('err.back')))));
  document.body.dataset.state = 'deleted';
}

/** Shows a transient notice (polite live region); kind is "info", "ok" or "warn". */
export function notify(message, kind = 'info', ms = 6000) {
  let box = document.getElementById('notices');
  if (!box) {
    box = el('div', { id: 'notices', class: 'notices', role: 'status', 'aria-live': 'polite' });
    document.body.append(box);
  }
  const n = el('div', { class: 'notice notice-' + kind }, el('span', {}, message),
    el('button', { type: 'button', class: 'notice-close', 'aria-label': t('notice.dismiss'), onclick: () => n.remove() }, '×'));
  box.append(n);
  if (ms > 0) setTimeout(() => n.remove(), ms);
  return n;
}

/**
 * Creates an element: el('button', {class: 'btn', onclick: fn}, 'text', child…).
 * Attributes starting with "on" become listeners; null/false children are skipped.
 */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** Sets up what every page has: translated text and the language switch. */
export function initShell() {
  apply(document);
  const btn = document.getElementById('lang-switch');
  if (btn) btn.addEventListener('click', () => setLang(lang() === 'vi' ? 'en' : 'vi'));
  // Pages expose a little state for support staff and the browser tests.
  window.lectern = window.lectern || {};
}

/** The session id in a path like /room/{id}. */
export function pathParam(index) {
  return decodeURIComponent(location.pathname.split('/').filter(Boolean)[index] || '');
}

/** Copies text to the clipboard (falls back to selecting it for Ctrl+C). */
export async function copyText(text, field) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (field) { field.focus(); field.select(); }
    return false;
  }
}

/** Whether the browser can do live WebRTC lectures at all. */
export function webrtcSupported() {
  return typeof RTCPeerConnection === 'function' && typeof EventSource === 'function';
}
