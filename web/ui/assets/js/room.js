// A classroom: watch the lecture (slides large, trainer small, swappable), raise a hand,
// speak when given the floor, hear the other classrooms that have it, and reconnect by
// itself after a network drop.
import { t, onLangChange, fmtNumber } from './i18n.js';
import { initShell, takeToken, forgetToken, claims, api, errorText, showFatal, showDeleted, notify, pathParam, webrtcSupported } from './common.js';
import { watchSession, publication } from './events.js';
import { Publisher, Viewer, statusOf } from './rtc.js';
import { setLiveBadge, setQuality, tryPlay } from './widgets.js';
import { SpeakerTiles } from './speakers.js';

const id = pathParam(1);
const $ = (name) => document.getElementById(name);
const st = {
  token: '',
  me: null, // token claims
  live: null, // session state from the event stream
  viewer: null,
  viewerState: 'connecting',
  frames: [0, 0], // framesDecoded of camera and slides at the last sample
  lastFrameAt: [0, 0],
  active: [false, false], // camera, slides are moving
  swapped: false,
  publisher: null, // while this classroom has the floor
  speaking: false,
  micMuted: false,
  tiles: null,
  eventsOK: true,
  session: null, // the session's definition (title, schedule)
  wasLive: false, // the lecture was live while this page was open
  replay: null, // the newest recording of the session, once it has ended
  layer: null, // the server's layer state for this classroom (GET of the WHEP layer extension), when it has one
  pinning: false, // a pin request is on its way: the next poll must not undo the selector
  layerGone: '', // the layer URL of a resource the server has ended
  deleted: false, // the session was deleted: media stopped, the page says so and renders nothing else
  stopEvents: null, // closes the event stream
  timers: [], // the periodic samplers
};

main();

async function main() {
  initShell();
  if (!webrtcSupported()) return showFatal(t('err.browser'));
  const token = takeToken('room:' + id);
  if (!token) return showFatal(t('err.noToken'));
  const c = claims(token);
  if (c && c.role === 'learner') {
    forgetToken('room:' + id);
    return showFatal(t('err.wrongRole', { role: t('role.learner') }));
  }
  let session;
  try {
    session = await api('/api/sessions/' + encodeURIComponent(id), { token });
  } catch (err) {
    if (err.status === 401 || err.status === 403) forgetToken('room:' + id);
    return showFatal(errorText(err), { retry: err.status === 0 || err.status >= 500 });
  }
  st.token = token;
  st.me = c || {};
  st.session = session;
  // A classroom speaks with its camera and microphone, which browsers give only to secure
  // origins: say so now, not when the trainer gives it the floor.
  if (st.me.role === 'site' && !window.isSecureContext) notify(t('err.insecure', { origin: location.origin }), 'warn', 0);
  $('session-title').textContent = session.title;
  document.title = session.title + ' — Lectern';
  st.tiles = new SpeakerTiles({ session: id, token, skip: st.me.name || '' });

  $('hand').addEventListener('click', toggleHand);
  $('mute').addEventListener('click', toggleMute);
  $('swap').addEventListener('click', () => { st.swapped = !st.swapped; layout(); });
  $('fullscreen').addEventListener('click', toggleFullscreen);
  document.addEventListener('fullscreenchange', renderFullscreen);
  $('enable-sound').addEventListener('click', enableSound);
  $('layer-pin').addEventListener('change', pinLayer);
  onLangChange(() => { if (st.deleted) return; render(); st.tiles.relabel(); renderFullscreen(); });
  window.addEventListener('pagehide', () => {
    if (st.publisher) st.publisher.stop({ remote: false }); // back after a reload, within the grace
    if (st.viewer) st.viewer.stop();
  });
  window.lectern.health = health;

  st.viewer = new Viewer({
    // The trainer's own tracks: the classrooms with the floor play in their own
    // tiles (speakers.js), so /whep/{id}, the programme with their voices mixed in,
    // would play each of them twice.
    url: location.origin + '/whep/' + id + '/trainer',
    token,
    videos: 2, // the trainer's camera, then its screen share
    onTracks: attach,
    onState: (s, err) => {
      if (st.deleted) return;
      st.viewerState = s;
      if (s === 'failed') return showFatal(errorText({ status: statusOf(err) }));
      render();
    },
  });
  // A classroom's choice of picture quality holds for the session on this computer,
  // across reloads (its viewer asks for it again after every connection).
  const pin = savedPin();
  if (pin !== 'auto') {
    st.viewer.pin = pin;
    $('layer-pin').value = pin;
  }
  st.viewer.start();
  st.stopEvents = watchSession(id, token, {
    onState: (s) => {
      if (s.deleted) return sessionDeleted();
      // s is the same object at every call, changed in place: compare with what we saw.
      const ended = st.seenLive && !s.live;
      st.seenLive = s.live;
      st.live = s;
      if (s.live) st.wasLive = true;
      else if (ended || !st.replayChecked) findReplay();
      render();
      floor();
    },
    onConnection: (ok) => { st.eventsOK = ok; render(); },
  });
  st.timers.push(setInterval(sample, 1000), setInterval(pollLayer, 2000));
  render();
}

// The session was deleted while the page was open: everything it plays or sends
// stops (the server ends the connections anyway: none may try to connect again), and
// the page says so instead of a lecture that will never come.
function sessionDeleted() {
  if (st.deleted) return;
  st.deleted = true;
  if (st.stopEvents) st.stopEvents();
  st.timers.forEach(clearInterval);
  if (st.speaking) stopSpeaking(false);
  document.body.classList.remove('on-air');
  const viewer = st.viewer;
  st.viewer = null;
  if (viewer) viewer.stop();
  st.tiles.stop();
  for (const name of ['camera-video', 'slides-video', 'lecture-audio']) $(name).srcObject = null;
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  setLiveBadge($('live-badge'), 'off');
  showDeleted();
}

async function attach({ videos, audio }) {
  $('camera-video').srcObject = new MediaStream([videos[0]]);
  $('slides-video').srcObject = new MediaStream([videos[1]]);
  $('lecture-audio').srcObject = new MediaStream([audio]);
  tryPlay($('camera-video'));
  tryPlay($('slides-video'));
  $('enable-sound').hidden = await tryPlay($('lecture-audio'));
}

async function enableSound() {
  $('enable-sound').hidden = await tryPlay($('lecture-audio'));
}

// What the stage shows: an overlay says why there is no picture (never a silent freeze).
function stageState() {
  const s = st.live;
  const trainer = s && publication(s, 'trainer');
  if (st.viewerState === 'reconnecting' || (st.viewerState === 'connecting' && st.viewer && st.viewer.retries > 0)) return 'reconnecting';
  if (s && !s.live) return ended() ? 'ended' : 'waiting';
  if (trainer && trainer.paused) return 'paused';
  if (st.viewerState === 'connecting' || !s) return 'connecting';
  if (videoPaused()) return 'video-paused';
  if (!st.active[0] && !st.active[1]) return 'no-video';
  return 'playing';
}

const overlayText = { reconnecting: 'room.reconnecting', waiting: 'room.waiting', ended: 'room.ended', paused: 'room.paused', connecting: 'room.connecting', 'no-video': 'room.noVideo' };

// The lecture has ended (rather than not started) when it was live while this page
// was open, or when it has a recording and its scheduled start has passed.
function ended() {
  if (st.wasLive) return true;
  const at = st.session && st.session.scheduled_at ? Date.parse(st.session.scheduled_at) : 0;
  return !!st.replay && !(at > Date.now());
}

// Looks for the session's newest recording, for the "watch the replay" link. A
// lecture that just ended is finalised by the recorder within seconds: look again.
async function findReplay(again = true) {
  st.replayChecked = true;
  try {
    const r = await api('/api/recordings?limit=1&session=' + encodeURIComponent(id), { token: st.token });
    st.replay = (r && r.recordings && r.recordings[0]) || null;
  } catch {
    st.replay = null; // no replays on this server, or not for this link
  }
  render();
  if (again && st.wasLive && !st.replay) setTimeout(() => findReplay(false), 5000);
}

function render() {
  if (st.deleted) return;
  const state = stageState();
  $('stage').dataset.state = state;
  // A video pause leaves the last picture under a notice: the sound goes on.
  $('overlay').hidden = state === 'playing' || state === 'video-paused';
  if (overlayText[state]) $('overlay-text').textContent = t(overlayText[state]);
  renderLayer(state);
  const link = $('replay-link');
  link.hidden = state !== 'ended' || !st.replay;
  if (!link.hidden) link.href = '/replays/' + encodeURIComponent(st.replay.id) + '?token=' + encodeURIComponent(st.token);
  const s = st.live;
  const trainer = s && publication(s, 'trainer');
  setLiveBadge($('live-badge'), s && s.live ? (trainer && trainer.paused ? 'paused' : 'on') : 'off');
  renderHand();
  if (s) {
    const tiles = st.tiles.update(s);
    const box = $('tiles');
    for (const node of [...box.children]) if (![...tiles.values()].includes(node)) node.remove();
    for (const tile of tiles.values()) if (tile.parentNode !== box) box.append(tile);
    $('side').hidden = !st.speaking && tiles.size === 0;
  }
  layout();
}

function renderHand() {
  const btn = $('hand');
  const status = $('hand-status');
  if (st.me.role !== 'site') {
    btn.hidden = true;
    status.textContent = st.me.role === 'viewer' ? t('room.viewerNote') : '';
    return;
  }
  const raised = !!(st.live && st.live.hands.some((h) => h.participant === st.me.name));
  btn.hidden = st.speaking;
  btn.textContent = t(raised ? 'room.lower' : 'room.raise');
  btn.setAttribute('aria-pressed', String(raised));
  btn.classList.toggle('btn-secondary', raised);
  status.textContent = st.speaking ? '' : raised ? t('room.handRaised') : '';
  $('mute').hidden = !st.speaking;
  $('mute').textContent = t(st.micMuted ? 'room.unmuteMic' : 'room.muteMic');
  $('mute').setAttribute('aria-pressed', String(st.micMuted));
  $('onair').hidden = !st.speaking || !st.publisher;
  $('onair').textContent = t(st.pubLive ? 'room.onAir' : 'room.goingOnAir');
  $('self-box').hidden = !st.speaking;
  document.body.classList.toggle('on-air', st.speaking);
}

function layout() {
  const [cam, slides] = st.active;
  let main = $('box-camera'), pip = $('box-slides');
  if (slides && (!st.swapped || !cam)) [main, pip] = [pip, main];
  main.className = 'main-video';
  pip.className = 'pip-video';
  main.hidden = false;
  pip.hidden = !(cam && slides);
  $('swap').hidden = !(cam && slides);
}

async function toggleHand() {
  const raised = st.live && st.live.hands.some((h) => h.participant === st.me.name);
  try {
    await api('/api/sessions/' + id + '/hands', { method: raised ? 'DELETE' : 'POST', token: st.token });
  } catch (err) {
    notify(errorText(err), 'warn');
  }
}

// The floor: publish camera and microphone while this classroom holds it.
async function floor() {
  const has = !!(st.live && st.me.role === 'site' && st.live.speakers.some((s) => s.participant === st.me.name));
  if (has && !st.speaking) startSpeaking();
  else if (!has && st.speaking) stopSpeaking(true);
}

async function startSpeaking() {
  st.speaking = true;
  st.pubLive = false;
  st.micMuted = false;
  render();
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 1280 }, height: { ideal: 720 } },
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (err) {
    st.speaking = false;
    render();
    notify(window.isSecureContext ? t('room.publishFailed', { detail: err.name || err.message }) : t('err.insecure', { origin: location.origin }), 'warn', 0);
    return;
  }
  if (!st.speaking) { // the floor was taken back meanwhile
    stream.getTracks().forEach((tr) => tr.stop());
    return;
  }
  st.stream = stream;
  $('self-video').srcObject = new MediaStream(stream.getVideoTracks());
  const pub = new Publisher({
    url: location.origin + '/whip/' + id,
    token: st.token,
    screen: false,
    onState: (s) => {
      if (pub !== st.publisher) return;
      st.pubLive = s === 'connected' || (st.pubLive && s === 'reconnecting');
      if (s === 'failed') stopSpeaking(false);
      render();
    },
  });
  st.publisher = pub;
  try {
    await pub.start({ camera: stream.getVideoTracks()[0] || null, mic: stream.getAudioTracks()[0] || null });
  } catch (err) {
    if (st.publisher === pub) {
      const s = statusOf(err);
      stopSpeaking(false);
      if (s !== 403) notify(t('room.publishFailed', { detail: errorText({ status: s }) }), 'warn');
    }
  }
  render();
}

// The server ends the publication itself when it takes the floor back or refuses it.
function stopSpeaking(announce) {
  const pub = st.publisher;
  st.publisher = null;
  st.speaking = false;
  st.pubLive = false;
  if (pub) pub.stop({ remote: false });
  if (st.stream) st.stream.getTracks().forEach((tr) => tr.stop());
  st.stream = null;
  $('self-video').srcObject = null;
  if (announce) notify(t('room.floorEnded'), 'info');
  render();
}

function toggleMute() {
  st.micMuted = !st.micMuted;
  if (st.stream) st.stream.getAudioTracks().forEach((tr) => { tr.enabled = !st.micMuted; });
  render();
}

// Layers: the server sends each classroom the camera layer its link carries (or pauses
// the video and keeps the sound); the page shows which, and lets the classroom pin one.
// Both go through the WHEP layer extension the server advertises in its answer; a
// server without it (an older Lectern) leaves the controls hidden.

function videoPaused() {
  return !!(st.layer && (st.layer.paused || st.layer.layer === 'paused') && st.viewerState === 'connected');
}

// Every 2 s while connected: the layer this classroom gets.
async function pollLayer() {
  if (st.deleted) return;
  const v = st.viewer;
  if (!v || v.stopped || st.viewerState !== 'connected' || !v.layerURL) {
    if (st.layer) { st.layer = null; render(); }
    else renderLayer(stageState());
    return;
  }
  const url = v.layerURL;
  // The server ended this resource (DTLS closed, or the layer URL answered 404): its
  // state is of no use, and the connection watch connects again.
  if (url === st.layerGone || !v.transportOpen()) {
    if (st.layer) { st.layer = null; render(); }
    return;
  }
  let layer = null;
  try {
    layer = await v.layer();
  } catch (err) {
    layer = null; // the server is unreachable, or the resource has ended
    if (err.status === 404) st.layerGone = url;
  }
  if (url !== v.layerURL || st.deleted) return; // reconnected meanwhile: that answer is about the old resource
  st.layer = layer && typeof layer === 'object' ? layer : null;
  render();
}

async function pinLayer() {
  const select = $('layer-pin');
  const want = select.value;
  st.pinning = true;
  try {
    await st.viewer.pinLayer(want);
    savePin(want);
  } catch (err) {
    select.value = (st.layer && st.layer.pin) || 'auto'; // what the server still applies
    notify(t('layer.pinFailed', { detail: errorText({ status: err.status || 0 }) }), 'warn');
  } finally {
    st.pinning = false;
  }
  await pollLayer();
}

const pinKey = 'lectern.pin.' + id;
function savedPin() {
  try {
    const p = localStorage.getItem(pinKey);
    return ['high', 'medium', 'low', 'audio'].includes(p) ? p : 'auto';
  } catch { return 'auto'; }
}
function savePin(p) {
  try {
    if (p === 'auto') localStorage.removeItem(pinKey);
    else localStorage.setItem(pinKey, p);
  } catch { /* storage blocked */ }
}

// The names of the layers the stream has now ("high", "medium", "low"), from the state's
// "layers" list (names, or objects naming one).
function layerNames(state) {
  const list = state && Array.isArray(state.layers) ? state.layers : [];
  return list.map((l) => (typeof l === 'string' ? l : l && (l.layer || l.name || l.rid || l.encodingId))).filter(Boolean);
}

function renderLayer(state) {
  const v = st.viewer;
  const supported = !!(v && v.layerURL);
  $('layer-pin-box').hidden = !supported;
  const l = supported ? st.layer : null;
  const box = $('layer');
  box.hidden = !l;
  const paused = state === 'video-paused';
  const notice = $('video-paused');
  notice.hidden = !paused;
  if (paused) {
    const chosen = l && l.pin === 'audio';
    notice.dataset.reason = chosen ? 'audio' : 'weak';
    $('video-paused-title').textContent = t(chosen ? 'room.audioOnly' : 'room.weakLink');
    $('video-paused-detail').textContent = t(chosen ? 'room.audioOnlyDetail' : 'room.weakLinkDetail');
  }
  if (!l) return;
  const name = l.paused ? 'paused' : ['high', 'medium', 'low', 'paused'].includes(l.layer) ? l.layer : 'unknown';
  const value = $('layer-value');
  value.dataset.layer = name;
  const text = t('layer.' + name);
  value.textContent = l.pin && l.pin !== 'auto' ? t('layer.pinned', { layer: text }) : text;
  box.title = Number.isFinite(l.estimate_bps) && l.estimate_bps > 0 ? fmtNumber(l.estimate_bps / 1000) + ' kbit/s' : '';
  const select = $('layer-pin');
  if (!st.pinning && l.pin && select.value !== l.pin && document.activeElement !== select) select.value = l.pin;
  // Layers the stream lacks (a single-layer encoder) cannot be pinned.
  const have = layerNames(l);
  for (const opt of select.options) {
    if (['high', 'medium', 'low'].includes(opt.value)) opt.disabled = have.length > 0 && !have.includes(opt.value) && opt.value !== l.pin;
  }
}

function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen();
  else $('stage').requestFullscreen().catch(() => {});
}

function renderFullscreen() {
  if (st.deleted) return;
  $('fullscreen').textContent = t(document.fullscreenElement ? 'room.exitFullscreen' : 'room.fullscreen');
}

// Every second: which pictures move (slides shared or not), and the quality indicator.
async function sample() {
  if (!st.viewer || st.deleted) return;
  const h = await st.viewer.health();
  if (!h || st.deleted) return;
  const now = performance.now();
  h.videos.forEach((v, i) => {
    if (v.framesDecoded > st.frames[i]) st.lastFrameAt[i] = now;
    st.frames[i] = v.framesDecoded;
  });
  const active = st.lastFrameAt.map((at) => at > 0 && now - at < 3000);
  if (active[0] !== st.active[0] || active[1] !== st.active[1]) {
    st.active = active;
    render();
  } else if ($('stage').dataset.state !== stageState()) {
    render();
  }
  setQuality($('quality'), h);
  st.lastHealth = h;
}

/** For support staff and tests: what this page receives and sends. */
async function health() {
  return {
    stage: st.deleted ? 'deleted' : $('stage').dataset.state,
    main: st.viewer ? await st.viewer.health() : null,
    speaking: st.speaking,
    onAir: !!st.pubLive,
    publisher: st.publisher ? await st.publisher.health() : null,
    speakers: await st.tiles.health(),
    layer: st.layer,
    layerURL: st.viewer ? st.viewer.layerURL : '',
  };
}
