// The replay player (and its embeddable variant): plays a recording's HLS playlist with
// the browser's own HLS support or hls.js (Media Source Extensions), with speeds 0.75×–2×,
// resume where the learner left off, MP4 download, and for the trainer and the admin,
// embed codes: each with its own read-only, revocable token for this recording only.
import { t, onLangChange, fmtDateTime, fmtDuration } from './i18n.js';
import { initShell, takeToken, api, errorText, showFatal, el, pathParam, notify, copyText, claims, invites } from './common.js';
import { normalizeRecording, publicationLabel } from './recordings.js';

const $ = (name) => document.getElementById(name);
const id = pathParam(1);
const embed = document.body.classList.contains('embed');
const speeds = [0.75, 1, 1.25, 1.5, 1.75, 2];
const resumeKey = 'lectern.resume.' + id;
const st = { token: '', rec: null, hls: null };

main();

async function main() {
  initShell();
  st.token = takeToken('replays', { persist: !embed });
  const q = st.token ? '?token=' + encodeURIComponent(st.token) : '';
  try {
    st.rec = normalizeRecording(await api('/api/recordings/' + encodeURIComponent(id), { token: st.token }));
  } catch (err) {
    return showFatal(await recordingError(err), { retry: err.status === 0 || err.status >= 500 });
  }
  window.lectern.player = { video: $('video') };
  renderMeta();
  onLangChange(renderMeta);
  setupSpeeds();
  setupResume();
  const base = '/replay/' + encodeURIComponent(id) + '/';
  const links = st.rec.links || {};
  if (!embed) {
    $('download').href = (links.download || base + 'download.mp4') + q;
    setupEmbeds();
    if (st.rec.status === 'recording') notify(t('player.recording'), 'info', 8000);
  }
  const Hls = await loadHls();
  if (Hls === undefined) return;
  // The master playlist (there when the lecture has chapters) names the chapters track too.
  st.hls = play($('video'), (links.master || links.playlist || base + 'index.m3u8') + q, Hls, true);
  if (st.hls) {
    // The light hls.js build shows no subtitles, but it parses the master's tracks: kept
    // for whoever inspects the player (and the tests).
    st.hls.on(Hls.Events.MANIFEST_LOADED, (_, data) => {
      window.lectern.player.subtitles = (data.subtitles || []).map((s) => ({ name: s.name, lang: s.lang, group: s.groupId, url: s.url }));
    });
  }
  if (!embed && links.screen_playlist) followSlides(links.screen_playlist + q, Hls);
  if (!embed) setupChapters();
  if (!embed) setupRelated(q);
}

/**
 * The recordings of the same lecture: a lecture (the programme: what every site saw
 * and heard) lists each source's own recording ("Separate recordings": the trainer's,
 * each classroom's that had the floor); a source's own recording links to the lecture.
 */
function setupRelated(q) {
  const sources = Array.isArray(st.rec.sources) ? st.rec.sources : [];
  const lecture = st.rec.lecture;
  const render = () => {
    $('source-list').replaceChildren(...sources.map((r) => {
      const when = [fmtDateTime(r.started_at), Number.isFinite(r.duration) ? fmtDuration(r.duration) : ''].filter(Boolean).join(' · ');
      return el('li', { dataset: { recording: r.id } },
        el('a', { href: (r.page || '/replays/' + encodeURIComponent(r.id)) + q }, publicationLabel(r.publication)),
        ' ', el('span', { class: 'muted' }, when));
    }));
  };
  if (sources.length) {
    render();
    onLangChange(render);
    $('sources').hidden = false;
  }
  if (lecture && lecture.id) {
    $('lecture-href').href = (lecture.page || '/replays/' + encodeURIComponent(lecture.id)) + q;
    $('lecture-link').hidden = false;
  }
}

/**
 * The lecture's chapters (made by the server from the recording's timeline: the lecture,
 * each classroom's question, the slides): a list beside the player; a click seeks there,
 * and the chapter playing is highlighted (aria-current).
 */
function setupChapters() {
  const chapters = Array.isArray(st.rec.chapters) ? st.rec.chapters : [];
  if (!chapters.length) return;
  const video = $('video'), list = $('chapter-list');
  const title = (c) => c.kind === 'question' ? t('chapter.question', { name: c.name || c.participant || '' })
    : t(c.kind === 'slides' ? 'chapter.slides' : 'chapter.lecture');
  const render = () => {
    list.replaceChildren(...chapters.map((c, i) => el('li', {},
      el('button', { type: 'button', class: 'chapter', dataset: { chapter: String(i), start: String(c.start) },
        onclick: () => {
          video.currentTime = c.start;
          if (video.paused) video.play().catch(() => {});
        } },
      el('span', { class: 'chapter-time' }, fmtDuration(c.start)), ' ', el('span', { class: 'chapter-title' }, title(c))))));
    highlight();
  };
  let currentIdx = -1;
  const highlight = () => {
    const now = video.currentTime;
    let idx = chapters.findIndex((c) => now >= c.start && now < c.end);
    if (idx < 0 && now >= chapters[chapters.length - 1].start) idx = chapters.length - 1;
    const buttons = list.querySelectorAll('button.chapter');
    if (idx === currentIdx && buttons[idx] && buttons[idx].hasAttribute('aria-current')) return;
    currentIdx = idx;
    buttons.forEach((b, i) => {
      if (i === idx) b.setAttribute('aria-current', 'true');
      else b.removeAttribute('aria-current');
    });
  };
  for (const ev of ['timeupdate', 'seeked', 'loadedmetadata']) video.addEventListener(ev, highlight);
  onLangChange(render);
  render();
  $('chapters').hidden = false;
}

async function recordingError(err) {
  if (embed && err.status === 401) return t('player.embedRevoked');
  if (err.status === 401 || err.status === 403) return t('replays.needToken');
  if (err.status !== 404) return errorText(err);
  // Is it this recording that is missing, or the whole replay service?
  try {
    await api('/api/recordings', { token: st.token });
  } catch (e) {
    if (e.status === 404) return t('replays.unavailable');
  }
  return t('player.notFound');
}

function renderMeta() {
  if (embed) return;
  const r = st.rec;
  $('title').textContent = r.title || r.session || id;
  $('session-title').textContent = r.title || '';
  document.title = (r.title || id) + ' — Lectern';
  const parts = [];
  if (r.start) parts.push(fmtDateTime(r.start));
  if (Number.isFinite(r.duration_seconds)) parts.push(fmtDuration(r.duration_seconds));
  $('meta').textContent = parts.join(' · ');
}

// hls.js (Media Source Extensions) wherever it works, since it can send the token with
// every segment request; null for the browser's own HLS (older iPhones); undefined
// when the browser can play neither.
async function loadHls() {
  const { default: Hls } = await import('../vendor/hls.light.min.mjs');
  if (Hls.isSupported()) return Hls;
  if ($('video').canPlayType('application/vnd.apple.mpegurl')) return null;
  showFatal(t('err.browser'));
  return undefined;
}

/** Plays an HLS playlist in a video element; primary: its errors are shown. */
function play(video, src, Hls, primary) {
  if (!Hls) {
    video.src = src;
    if (primary) video.addEventListener('error', () => notify(t('player.failed', { detail: (video.error && video.error.message) || 'media error' }), 'warn', 0));
    return null;
  }
  const token = st.token;
  const hls = new Hls({
    enableWorker: false,
    // Segment URLs in the playlist carry no token: send it as a header instead (the
    // request must be opened before a header can be set; hls.js then sends it).
    xhrSetup: (xhr, url) => {
      if (!token) return;
      xhr.open('GET', url, true);
      xhr.setRequestHeader('Authorization', 'Bearer ' + token);
    },
  });
  hls.on(Hls.Events.ERROR, (_, data) => {
    if (!data.fatal) return;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
      return;
    }
    if (!primary) return;
    const status = data.response && data.response.code;
    notify(t('player.failed', { detail: status ? errorText({ status }) : data.details }), 'warn', 0);
  });
  hls.loadSource(src);
  hls.attachMedia(video);
  return hls;
}

/**
 * The screen share, recorded as its own rendition, plays large beside the main video
 * and follows it: play, pause, speed and seeks, with the rendition's start offset.
 */
function followSlides(src, Hls) {
  const main = $('video'), slides = $('slides');
  const rd = (st.rec.renditions || []).find((r) => r.dir === 'screen/') || {};
  const offset = Number(rd.offset) || 0;
  $('slides-box').hidden = false;
  $('replay-grid').classList.add('with-slides');
  play(slides, src, Hls, false);
  const sync = (force) => {
    if (main.readyState < 1 || slides.readyState < 1) return; // nothing to line up yet
    const target = main.currentTime - offset;
    const inRange = target >= 0 && (!Number.isFinite(slides.duration) || target <= slides.duration + 0.5);
    $('slides-empty').hidden = inRange;
    if (!inRange) {
      if (!slides.paused) slides.pause();
      return;
    }
    if (force || Math.abs(slides.currentTime - target) > 0.5) slides.currentTime = target;
    if (slides.playbackRate !== main.playbackRate) slides.playbackRate = main.playbackRate;
    if (main.paused && !slides.paused) slides.pause();
    if (!main.paused && slides.paused) slides.play().catch(() => {});
  };
  for (const ev of ['play', 'pause', 'ratechange', 'timeupdate']) main.addEventListener(ev, () => sync(false));
  main.addEventListener('seeked', () => sync(true));
  slides.addEventListener('loadedmetadata', () => sync(true));
}

function setupSpeeds() {
  const video = $('video');
  let saved = 1;
  try { saved = Number(localStorage.getItem('lectern.speed')) || 1; } catch { /* ignore */ }
  if (!speeds.includes(saved)) saved = 1;
  const set = (v) => {
    video.playbackRate = v;
    video.defaultPlaybackRate = v;
    try { localStorage.setItem('lectern.speed', String(v)); } catch { /* ignore */ }
  };
  video.addEventListener('loadedmetadata', () => { video.playbackRate = saved; });
  set(saved);
  const label = (v) => v.toLocaleString(document.documentElement.lang === 'en' ? 'en' : 'vi') + '×';
  if (embed) {
    const sel = $('speed-select');
    sel.replaceChildren(...speeds.map((v) => el('option', { value: v, selected: v === saved }, label(v))));
    sel.addEventListener('change', () => { saved = Number(sel.value); set(saved); });
    return;
  }
  $('speeds').append(...speeds.map((v) => el('label', {},
    el('input', { type: 'radio', name: 'speed', value: v, checked: v === saved, onchange: () => { saved = v; set(v); } }),
    el('span', {}, label(v)))));
}

// Resume: the position is remembered every few seconds and offered again on return.
function setupResume() {
  const video = $('video');
  let lastSave = 0;
  const save = () => {
    if (!video.duration || video.ended) return;
    try { localStorage.setItem(resumeKey, String(Math.floor(video.currentTime))); } catch { /* ignore */ }
  };
  video.addEventListener('timeupdate', () => {
    if (Date.now() - lastSave > 5000) { lastSave = Date.now(); save(); }
  });
  video.addEventListener('pause', save);
  video.addEventListener('ended', () => { try { localStorage.removeItem(resumeKey); } catch { /* ignore */ } });
  window.addEventListener('pagehide', save);
  video.addEventListener('loadedmetadata', () => {
    let pos = 0;
    try { pos = Number(localStorage.getItem(resumeKey)) || 0; } catch { /* ignore */ }
    if (pos < 5 || (Number.isFinite(video.duration) && pos > video.duration - 5)) return;
    video.currentTime = pos;
    if (embed) return;
    $('resume-text').textContent = t('player.resumed', { time: fmtDuration(pos) }) + ' ';
    $('resume').hidden = false;
    $('restart').onclick = () => { video.currentTime = 0; $('resume').hidden = true; video.play(); };
  }, { once: true });
}

// Embed codes. Only the trainer of the recording's session and the admin make them
// (the server checks it too): the panel shows when this browser holds such a token.
function managerToken() {
  let admin = '';
  try { admin = sessionStorage.getItem('lectern.admin') || ''; } catch { /* ignore */ }
  if (admin) return admin;
  const own = claims(st.token);
  if (own && own.role === 'trainer' && own.sid === st.rec.session) return st.token;
  const inv = invites().find((i) => i.role === 'trainer' && i.sid === st.rec.session);
  return inv ? inv.token : '';
}

function setupEmbeds() {
  st.manager = managerToken();
  $('embed-panel').hidden = !st.manager;
  if (!st.manager) return;
  const labelTTL = () => {
    const names = { '720h': t('player.ttlMonth'), '8760h': t('player.ttlYear'), '43800h': t('player.ttlFiveYears') };
    for (const o of $('embed-ttl').options) o.textContent = names[o.value];
  };
  labelTTL();
  onLangChange(() => { labelTTL(); renderEmbeds(); });
  $('embed-form').addEventListener('submit', createEmbed);
  $('copy-embed').addEventListener('click', async (e) => { await copyText($('embed-code').value, $('embed-code')); e.target.textContent = t('admin.copied'); });
  $('embed-panel').addEventListener('toggle', () => { if ($('embed-panel').open) loadEmbeds(); });
}

const embedsURL = () => '/api/recordings/' + encodeURIComponent(id) + '/embeds';

async function loadEmbeds() {
  try {
    st.embeds = (await api(embedsURL(), { token: st.manager })).embeds || [];
    $('embed-error').hidden = true;
  } catch (err) {
    showEmbedError(err);
  }
  renderEmbeds();
}

function showEmbedError(err) {
  $('embed-error').textContent = errorText(err);
  $('embed-error').hidden = false;
}

async function createEmbed(e) {
  e.preventDefault();
  try {
    const r = await api(embedsURL(), { method: 'POST', token: st.manager, body: { ttl: $('embed-ttl').value, label: $('embed-label').value.trim() } });
    // The server's link is built from the public URL; the page's own origin is what
    // this browser reaches the server at, so it is the one shown.
    const src = location.origin + '/replays/' + encodeURIComponent(id) + '/embed?token=' + encodeURIComponent(r.token);
    $('embed-code').value = `<iframe src="${escapeAttr(src)}" width="960" height="540" allow="fullscreen; autoplay" allowfullscreen title="${escapeAttr(st.rec.title || 'Lectern')}"></iframe>`;
    $('embed-result').hidden = false;
    $('embed-label').value = '';
    $('embed-error').hidden = true;
  } catch (err) {
    showEmbedError(err);
  }
  await loadEmbeds();
}

async function revokeEmbed(embedId) {
  try {
    await api(embedsURL() + '/' + encodeURIComponent(embedId), { method: 'DELETE', token: st.manager });
    notify(t('player.embedRevokedOK'), 'ok');
  } catch (err) {
    showEmbedError(err);
  }
  await loadEmbeds();
}

function renderEmbeds() {
  const list = st.embeds || [];
  $('embed-none').hidden = list.length > 0;
  $('embed-list').replaceChildren(...list.map((x) => el('li', { dataset: { embed: x.id } },
    el('span', {}, (x.label || t('player.embedNoLabel')) + ' · ' + t('player.embedUntil', { time: fmtDateTime(x.expires_at) })),
    ' ',
    el('button', { type: 'button', class: 'btn btn-small btn-secondary', dataset: { action: 'revoke' }, onclick: () => revokeEmbed(x.id) }, t('player.embedRevoke')))));
}

function escapeAttr(s) {
  return String(s).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
}
