// The trainer's studio: choose camera and microphone, go live over WHIP, share the
// screen as the second video, see the classrooms, give and take back the floor, and
// hear the classroom that has it.
import { t, onLangChange, fmtDuration, fmtNumber, fmtTime, fmtDateTime } from './i18n.js';
import { initShell, takeToken, forgetToken, claims, api, errorText, showFatal, showDeleted, el, notify, pathParam, webrtcSupported, copyText } from './common.js';
import { watchSession, publication, displayName } from './events.js';
import { Publisher, statusOf } from './rtc.js';
import { setLiveBadge, setQuality } from './widgets.js';
import { SpeakerTiles } from './speakers.js';

const id = pathParam(1);
const $ = (name) => document.getElementById(name);
const st = {
  token: '',
  session: null,
  live: null, // the session state from the event stream
  camera: null,
  mic: null,
  screen: null,
  publisher: null,
  pubState: 'closed',
  liveSince: 0,
  tiles: null,
  devices: [], // device codes of the session (without the codes themselves)
  deleted: false, // the session was deleted: nothing is sent, the page says so and renders nothing else
  stopEvents: null, // closes the event stream
  ticker: 0,
};

main();

async function main() {
  initShell();
  // On an insecure origin (http:// other than localhost) browsers hide navigator.mediaDevices:
  // say why, rather than call the browser too old.
  if (!window.isSecureContext) return showFatal(t('err.insecure', { origin: location.origin }));
  if (!webrtcSupported() || !navigator.mediaDevices) return showFatal(t('err.browser'));
  const token = takeToken('studio:' + id);
  if (!token) return showFatal(t('err.noToken'));
  const c = claims(token);
  if (c && c.role && c.role !== 'trainer') {
    forgetToken('studio:' + id);
    return showFatal(t('err.wrongRole', { role: t('role.' + c.role) }));
  }
  try {
    st.session = await api('/api/sessions/' + encodeURIComponent(id), { token });
  } catch (err) {
    if (err.status === 401 || err.status === 403) forgetToken('studio:' + id);
    return showFatal(errorText(err), { retry: err.status === 0 || err.status >= 500 });
  }
  st.token = token;
  st.tiles = new SpeakerTiles({ session: id, token });
  $('session-title').textContent = st.session.title;
  document.title = st.session.title + ' — ' + t('studio.heading');

  $('golive').addEventListener('click', goLive);
  $('stop').addEventListener('click', stopLive);
  $('share').addEventListener('click', toggleShare);
  $('retry-devices').addEventListener('click', openDevices);
  $('camera-select').addEventListener('change', () => switchDevice('camera'));
  $('mic-select').addEventListener('change', () => switchDevice('mic'));
  onLangChange(render);
  onLangChange(renderDevices);
  setupDevices();
  // Leaving the page is not "stop": the publication waits (the server's reconnect grace)
  // for this studio to come back, e.g. after a reload.
  window.addEventListener('pagehide', () => { if (st.publisher) st.publisher.stop({ remote: false }); });

  st.stopEvents = watchSession(id, token, {
    onState: (s) => {
      if (s.deleted) return sessionDeleted();
      st.live = s;
      render();
    },
    onConnection: (ok) => { if (!ok && st.live) notify(t('room.eventsLost'), 'warn', 4000); },
  });
  st.ticker = setInterval(tick, 1000);
  window.lectern.health = health;
  render();
  await openDevices();
}

// The session was deleted while the studio was open: the publication ends (the
// server has ended it: no reconnection, no going live again after a reload), the
// camera, microphone and screen are released, and the page says so.
function sessionDeleted() {
  if (st.deleted) return;
  st.deleted = true;
  if (st.stopEvents) st.stopEvents();
  clearInterval(st.ticker);
  remember(false);
  const pub = st.publisher;
  st.publisher = null;
  if (pub) pub.stop({ remote: false });
  for (const kind of ['camera', 'mic', 'screen']) {
    if (st[kind]) st[kind].stop();
    st[kind] = null;
  }
  for (const name of ['camera-preview', 'screen-preview']) $(name).srcObject = null;
  st.tiles.stop();
  setLiveBadge($('live-badge'), 'off');
  showDeleted();
}

// Devices

async function openDevices() {
  $('retry-devices').hidden = true;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: videoConstraints(''), audio: audioConstraints('') });
    if (st.deleted) { // deleted while the browser asked for the devices
      stream.getTracks().forEach((tr) => tr.stop());
      return;
    }
    setTrack('camera', stream.getVideoTracks()[0] || null);
    setTrack('mic', stream.getAudioTracks()[0] || null);
    await listDevices();
    $('golive').disabled = false;
    $('share').disabled = !navigator.mediaDevices.getDisplayMedia;
    if (wasLive() && !st.publisher) goLive();
  } catch (err) {
    notify(t('studio.noDevices', { detail: err.name || err.message }), 'warn', 0);
    $('retry-devices').hidden = false;
  }
}

function videoConstraints(deviceId) {
  const v = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
  if (deviceId) v.deviceId = { exact: deviceId };
  return v;
}

function audioConstraints(deviceId) {
  const a = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  if (deviceId) a.deviceId = { exact: deviceId };
  return a;
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  fill($('camera-select'), devices.filter((d) => d.kind === 'videoinput'), st.camera);
  fill($('mic-select'), devices.filter((d) => d.kind === 'audioinput'), st.mic);
}

function fill(select, devices, current) {
  const using = current && current.getSettings().deviceId;
  select.replaceChildren(...devices.map((d, i) =>
    el('option', { value: d.deviceId, selected: d.deviceId === using }, d.label || (select.id === 'camera-select' ? 'Camera ' : 'Micro ') + (i + 1))));
}

async function switchDevice(kind) {
  const deviceId = $(kind === 'camera' ? 'camera-select' : 'mic-select').value;
  try {
    const stream = await navigator.mediaDevices.getUserMedia(kind === 'camera'
      ? { video: videoConstraints(deviceId) } : { audio: audioConstraints(deviceId) });
    const track = kind === 'camera' ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
    const old = st[kind];
    setTrack(kind, track);
    if (st.publisher) await st.publisher.replace(kind, track);
    if (old) old.stop();
  } catch (err) {
    notify(t('studio.noDevices', { detail: err.name || err.message }), 'warn');
  }
}

function setTrack(kind, track) {
  st[kind] = track;
  if (kind === 'camera') $('camera-preview').srcObject = track ? new MediaStream([track]) : null;
  if (kind === 'screen') {
    $('screen-preview').srcObject = track ? new MediaStream([track]) : null;
    $('screen-preview').hidden = !track;
    $('screen-empty').hidden = !!track;
  }
}

// Going live

async function goLive() {
  $('golive').disabled = true;
  $('golive').textContent = t('studio.connecting');
  // The camera goes out as three simulcast layers, so each classroom gets the best its link carries.
  const pub = new Publisher({ url: location.origin + '/whip/' + id, token: st.token, simulcast: true, onState: onPublisherState });
  st.publisher = pub;
  try {
    await pub.start({ camera: st.camera, screen: st.screen, mic: st.mic });
    if (st.deleted) return; // sessionDeleted has stopped it
    st.liveSince = Date.now();
    remember(true);
  } catch (err) {
    if (st.deleted) return;
    st.publisher = null;
    notify(t('studio.publishFailed', { detail: whipErrorText(err) }), 'warn', 0);
  }
  render();
}

function onPublisherState(s, err) {
  if (st.deleted) return;
  st.pubState = s;
  if (s === 'reconnecting') notify(t('studio.lost'), 'warn', 4000);
  if (s === 'failed') {
    remember(false);
    st.publisher = null;
    notify(t('studio.publishFailed', { detail: whipErrorText(err) }), 'warn', 0);
  }
  render();
}

// A studio reloaded while live (a mis-click, a browser restart) goes live again by itself.
const liveKey = 'lectern.live.' + id;
function remember(live) {
  try {
    if (live) sessionStorage.setItem(liveKey, '1');
    else sessionStorage.removeItem(liveKey);
  } catch { /* storage blocked */ }
}
function wasLive() {
  try { return sessionStorage.getItem(liveKey) === '1'; } catch { return false; }
}

async function stopLive() {
  remember(false);
  const pub = st.publisher;
  st.publisher = null;
  st.liveSince = 0;
  render();
  if (pub) await pub.stop();
}

function whipErrorText(err) {
  const s = statusOf(err);
  if (s === 422) return 'H.264/Opus';
  if (s) return errorText({ status: s });
  return errorText({ status: 0 });
}

async function toggleShare() {
  if (st.screen) {
    stopShare();
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    const track = stream.getVideoTracks()[0];
    track.contentHint = 'detail'; // slides: sharp text over smooth motion
    track.addEventListener('ended', stopShare);
    setTrack('screen', track);
    if (st.publisher) await st.publisher.replace('screen', track);
  } catch (err) {
    if (err.name !== 'NotAllowedError') notify(t('studio.shareFailed', { detail: err.name || err.message }), 'warn');
  }
  render();
}

function stopShare() {
  const track = st.screen;
  setTrack('screen', null);
  if (st.publisher) st.publisher.replace('screen', null);
  if (track) track.stop();
  render();
}

// The floor

async function give(participant) {
  try {
    await api('/api/sessions/' + id + '/speakers/' + encodeURIComponent(participant), { method: 'PUT', token: st.token });
  } catch (err) {
    notify(errorText(err), 'warn');
  }
}

async function takeBack(participant) {
  try {
    await api('/api/sessions/' + id + '/speakers/' + encodeURIComponent(participant), { method: 'DELETE', token: st.token });
  } catch (err) {
    if (err.status !== 404) notify(errorText(err), 'warn');
  }
}

// Device codes: a hall decoder (or VLC, a projector) speaking RTSP gets a short code
// as its password instead of the long invitation link, which such devices cannot hold.

function setupDevices() {
  $('device-form').addEventListener('submit', (e) => { e.preventDefault(); mintDevice(); });
  $('device-copy').addEventListener('click', async (e) => {
    await copyText($('device-url').value, $('device-url'));
    e.target.textContent = t('admin.copied');
  });
  loadDevices();
}

async function loadDevices() {
  try {
    const r = await api('/api/sessions/' + id + '/codes', { token: st.token });
    st.devices = r.codes;
  } catch (err) {
    notify(errorText(err), 'warn');
  }
  renderDevices();
}

async function mintDevice() {
  const name = $('device-name').value.trim();
  $('device-mint').disabled = true;
  try {
    const c = await api('/api/sessions/' + id + '/codes', { method: 'POST', token: st.token,
      body: { role: $('device-role').value, name, ttl: $('device-ttl').value } });
    $('device-code').textContent = c.code;
    // Without RTSP on the server there is no address: the code alone is shown.
    $('device-url').value = c.rtsp_url || '';
    $('device-url').closest('li').hidden = !c.rtsp_url;
    $('device-copy').textContent = t('admin.copy');
    $('device-new').hidden = false;
    await loadDevices();
  } catch (err) {
    notify(t('studio.deviceFailed', { detail: errorText(err) }), 'warn');
  } finally {
    $('device-mint').disabled = false;
  }
}

async function revokeDevice(code) {
  try {
    await api('/api/sessions/' + id + '/codes/' + encodeURIComponent(code.id), { method: 'DELETE', token: st.token });
  } catch (err) {
    if (err.status !== 404) notify(errorText(err), 'warn');
  }
  await loadDevices();
}

function renderDevices() {
  if (st.deleted) return;
  $('devices').replaceChildren(...st.devices.map((c) =>
    el('li', { dataset: { code: c.id, name: c.name } },
      el('span', { class: 'who' }, c.display || c.name,
        el('span', { class: 'when' }, t('studio.deviceUntil', { role: t('role.' + c.role), time: fmtDateTime(c.expires_at) }))),
      el('button', { type: 'button', class: 'btn btn-small btn-danger', dataset: { action: 'revoke' },
        'aria-label': t('studio.deviceRevokeLabel', { name: c.display || c.name }), onclick: () => revokeDevice(c) }, t('studio.deviceRevoke')))));
}

// Rendering

function render() {
  if (st.deleted) return;
  const s = st.live;
  const trainer = s && publication(s, 'trainer');
  const badge = s && s.live ? (trainer && trainer.paused ? 'paused' : 'on') : 'off';
  setLiveBadge($('live-badge'), badge);
  const publishing = !!st.publisher;
  $('golive').hidden = publishing;
  $('stop').hidden = !publishing;
  if (!publishing) {
    $('golive').textContent = t('studio.goLive');
    $('golive').disabled = !st.camera && !st.mic;
  }
  $('share').textContent = t(st.screen ? 'studio.stopShare' : 'studio.share');
  $('share').classList.toggle('btn-danger', !!st.screen);
  $('share').classList.toggle('btn-secondary', !st.screen);
  const notice = $('studio-notice');
  notice.textContent = t(publishing && badge === 'on' ? 'studio.liveNotice' : 'studio.offNotice');
  notice.className = 'banner ' + (publishing && badge === 'on' ? 'banner-onair' : 'banner-info');
  if (!s) return;
  $('viewers').textContent = fmtNumber(s.subscribers);
  renderHands(s.hands);
  renderSpeakers(s);
}

function renderHands(hands) {
  $('hands').replaceChildren(...hands.map((h, i) => {
    const name = displayName(h);
    return el('li', { dataset: { participant: h.participant } },
      el('span', { class: 'who' }, el('span', { class: 'order', 'aria-hidden': 'true' }, i + 1), name,
        el('span', { class: 'when' }, t('studio.raisedAt', { time: fmtTime(h.raised_at) }))),
      el('button', { type: 'button', class: 'btn btn-small', dataset: { action: 'give' }, 'aria-label': t('studio.giveLabel', { name }), onclick: () => give(h.participant) }, t('studio.give')));
  }));
  $('no-hands').hidden = hands.length > 0;
}

function renderSpeakers(s) {
  const tiles = st.tiles.update(s);
  const list = $('speakers');
  const items = s.speakers.map((sp) => {
    const name = displayName(sp);
    let li = list.querySelector(`li[data-participant="${CSS.escape(sp.participant)}"]`);
    if (!li) {
      li = el('li', { dataset: { participant: sp.participant } },
        el('span', { class: 'who' }),
        el('button', { type: 'button', class: 'btn btn-small btn-danger', dataset: { action: 'take-back' }, onclick: () => takeBack(sp.participant) }),
        el('div', { class: 'speaker-tile' }));
    }
    li.querySelector('.who').textContent = name;
    const btn = li.querySelector('button');
    btn.textContent = t('studio.takeBack');
    btn.setAttribute('aria-label', t('studio.takeBackLabel', { name }));
    const slot = li.querySelector('.speaker-tile');
    const tile = tiles.get(sp.participant);
    if (tile && tile.parentNode !== slot) slot.replaceChildren(tile);
    return li;
  });
  // Keep existing nodes (their videos keep playing); only add and remove.
  for (const li of [...list.children]) if (!items.includes(li)) li.remove();
  items.forEach((li, i) => { if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null); });
  $('no-speakers').hidden = s.speakers.length > 0;
}

let ticks = 0;
async function tick() {
  if (st.deleted) return;
  const s = st.live;
  const trainer = s && publication(s, 'trainer');
  let since = st.liveSince;
  if (!since && trainer && trainer.started) since = Date.parse(trainer.started);
  $('elapsed').textContent = s && s.live && since ? fmtDuration((Date.now() - since) / 1000) : '0:00';
  if (++ticks % 2) return;
  const h = st.publisher ? await st.publisher.health() : null;
  if (st.deleted) return;
  setQuality($('quality'), h);
  $('h-bitrate').textContent = h ? fmtNumber(h.kbps) + ' kbit/s' : '–';
  $('h-loss').textContent = h ? fmtNumber(h.loss, 1) + ' %' : '–';
  $('h-rtt').textContent = h && Number.isFinite(h.rtt) ? fmtNumber(h.rtt) + ' ms' : '–';
  renderLayers(h ? h.layers : []);
}

// The camera's simulcast layers that sent since the last look, best first (a layer the
// browser holds back keeps its last frame size in the stats, but sends nothing). With
// fewer than all, the browser's estimate of the trainer's uplink holds the upper ones
// back: say so, since every classroom then gets a lower picture.
const layerPackets = {};
function renderLayers(all) {
  const sending = all.filter((l) => l.width > 0 && l.active && l.packets > (layerPackets[l.rid] || 0)).sort((a, b) => b.width - a.width);
  for (const l of all) layerPackets[l.rid] = l.packets;
  const box = $('h-layers');
  box.hidden = all.length < 2 || sending.length === 0;
  if (box.hidden) return;
  let text = t('studio.layers', { n: sending.length, list: sending.map((l) => l.width + '×' + l.height).join(' · ') });
  if (sending.length < all.length && all.some((l) => l.limitation === 'bandwidth')) text += '. ' + t('studio.layersLimited');
  box.textContent = text;
}

/** For support staff and tests: what this page sends and receives. */
async function health() {
  return {
    publishing: !!st.publisher,
    // The camera, microphone or screen is still captured.
    capturing: [st.camera, st.mic, st.screen].some((tr) => tr && tr.readyState === 'live'),
    state: st.pubState,
    publisher: st.publisher ? await st.publisher.health() : null,
    speakers: await st.tiles.health(),
  };
}
