// WebRTC for the pages: publishing over WHIP and playing over WHEP, with the signalling
// done by the whip-whep library (RFC 9725: POST offer, trickle ICE by PATCH, DELETE to
// end), and the connection health read from getStats.
import { WHIPClient } from '../vendor/whip.js';
import { WHEPClient } from '../vendor/whep.js';

/** The HTTP status in a whip-whep error ("Request rejected with status 403"), or 0. */
export function statusOf(err) {
  const m = /status (\d{3})/.exec((err && err.message) || '');
  return m ? Number(m[1]) : 0;
}

// whip-whep trickles candidates from a timer; a refused PATCH (e.g. after the server
// ended the resource) would surface as an unhandled rejection. Candidates are an
// optimisation here (the offer/answer already connect), so a failed PATCH is dropped.
class QuietWHIP extends WHIPClient {
  async patch() {
    try { await super.patch(); } catch { /* see above */ }
  }
}
class QuietWHEP extends WHEPClient {
  async patch() {
    try { await super.patch(); } catch { /* see above */ }
  }
}

const pcConfig = { bundlePolicy: 'max-bundle' };

/**
 * The camera's simulcast layers (RFC 8853): the server ranks h > m > l and gives each
 * classroom the best one its link carries. The bitrates are ceilings; the browser's
 * congestion control (fed by the server's TWCC feedback) decides what it really sends,
 * and starts with the lowest layer only.
 */
export const cameraLayers = [
  { rid: 'h', maxBitrate: 2_500_000 },
  { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 800_000 },
  { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 250_000 },
];

// Errors of the browser's own WebRTC stack (not of the HTTP exchange): a browser that
// cannot send simulcast, or an answer it refuses for simulcast (a server without the
// mid and rid header extensions), gets one encoding instead. So does a server that
// refuses the simulcast offer itself (400, 422: too many or unknown layers).
const rtcErrors = ['InvalidAccessError', 'InvalidModificationError', 'OperationError', 'NotSupportedError', 'TypeError', 'RangeError'];
const simulcastRefused = [400, 422];

/**
 * Ends a WHIP/WHEP session: DELETE of its resource first (RFC 9725 §4.2), then the
 * connection closes. (Closing first lets the server notice the closed connection and
 * drop the resource before the DELETE arrives.) remote=false only closes: the server
 * has ended it already, or it is unreachable and will time it out.
 */
async function end(client, pc, remote) {
  const url = client && client.resourceURL;
  if (client) {
    clearTimeout(client.iceTrickeTimeout);
    client.pc = null;
  }
  if (remote && url) {
    const headers = client.token ? { Authorization: 'Bearer ' + client.token } : {};
    try { await fetch(url, { method: 'DELETE', headers, keepalive: true }); } catch { /* offline */ }
  }
  if (pc) pc.close();
}

/**
 * What a publication and a player share: watching their connection and, after a
 * network drop, connecting again with backoff (the server keeps the tracks, so a
 * new connection continues them). Subclasses provide connect(), url, token, pc,
 * client, onState, and set fatal (statuses that stop retrying) and lostDelay (how
 * long "disconnected" may last before a new connection is tried).
 */
class Reconnecting {
  watch(pc) {
    if (pc !== this.pc || this.stopped) return;
    switch (pc.connectionState) {
      case 'connected':
        this.retries = 0;
        this.onState('connected');
        break;
      case 'disconnected':
        this.onState('reconnecting');
        clearTimeout(this.lostTimer);
        this.lostTimer = setTimeout(() => { if (pc === this.pc && pc.connectionState !== 'connected') this.reconnect(); }, this.lostDelay);
        break;
      case 'failed':
        this.reconnect();
        break;
    }
  }

  /** Starts a new connection for the same publication. */
  async reconnect() {
    if (this.stopped || this.reconnecting) return;
    this.reconnecting = true;
    this.onState('reconnecting');
    const old = this.pc, oldClient = this.client;
    this.pc = null;
    this.client = null;
    end(oldClient, old, false); // the server times the old resource out
    while (!this.stopped) {
      await sleep(Math.min(1000 * 2 ** this.retries, 10000));
      this.retries++;
      if (this.stopped) break;
      try {
        await this.connect();
        break;
      } catch (err) {
        if (this.fatal.includes(statusOf(err))) {
          this.stopped = true;
          this.onState('failed', err);
        }
      }
    }
    this.reconnecting = false;
  }
}

/**
 * A WHIP publication: camera, screen share (slides) and microphone. It always offers two
 * video sections, the first for the camera and the second for the screen, because WHIP
 * cannot renegotiate: sharing the screen later is a replaceTrack on the second.
 */
export class Publisher extends Reconnecting {
  /**
   * url: the WHIP endpoint; onState(state) gets "connecting", "connected", "reconnecting", "failed", "closed".
   * simulcast: send the camera as three layers (cameraLayers) when the browser and the server can.
   */
  constructor({ url, token, screen = true, simulcast = false, onState = () => {} }) {
    super();
    this.simulcast = simulcast;
    this.fatal = [401, 403, 404];
    this.lostDelay = 4000;
    this.url = url;
    this.token = token;
    this.withScreen = screen;
    this.onState = onState;
    this.tracks = { camera: null, screen: null, mic: null };
    this.pc = null;
    this.client = null;
    this.stopped = true;
    this.retries = 0;
    this.stats = new StatsMeter('outbound');
  }

  /** Starts publishing the given tracks (any may be null). Rejects with the WHIP error. */
  async start({ camera = null, screen = null, mic = null }) {
    this.tracks = { camera, screen, mic };
    this.stopped = false;
    this.retries = 0;
    try {
      await this.connect();
    } catch (err) {
      this.stopped = true;
      throw err;
    }
  }

  async connect() {
    if (!this.simulcast) return this.connectWith(false);
    try {
      return await this.connectWith(true);
    } catch (err) {
      const status = statusOf(err);
      if (status ? !simulcastRefused.includes(status) : !rtcErrors.includes(err && err.name)) throw err;
      // Refused by the browser or in the server's answer: one layer from now on.
      console.warn('Lectern: simulcast unavailable, sending one layer:', err.message || err);
      this.simulcast = false;
      return this.connectWith(false);
    }
  }

  async connectWith(simulcast) {
    const pc = new RTCPeerConnection(pcConfig);
    this.pc = pc;
    try {
      this.senders = {
        camera: this.addCamera(pc, simulcast),
        screen: this.withScreen ? pc.addTransceiver(this.tracks.screen || 'video', { direction: 'sendonly' }).sender : null,
        mic: pc.addTransceiver(this.tracks.mic || 'audio', { direction: 'sendonly' }).sender,
      };
    } catch (err) {
      pc.close();
      if (this.pc === pc) this.pc = null;
      throw err;
    }
    // A section created from a kind has no track: it sends nothing until replace().
    this.onState('connecting');
    const client = new QuietWHIP();
    this.client = client;
    try {
      await client.publish(pc, this.url, this.token);
    } catch (err) {
      // Refused after the server made the resource (e.g. the browser could not take
      // its answer): end it now, or it would hold the publication until it timed out.
      await end(client, pc, !!client.resourceURL);
      if (this.pc === pc) this.pc = null;
      this.client = null;
      throw err;
    }
    // whip-whep sets onconnectionstatechange; listen beside it.
    pc.addEventListener('connectionstatechange', () => this.watch(pc));
  }

  // The camera's section: simulcast layers when asked (the screen share stays one layer:
  // slides need their full resolution, and a classroom on a weak link pauses them rather
  // than blur the text).
  addCamera(pc, simulcast) {
    const init = { direction: 'sendonly' };
    if (simulcast) init.sendEncodings = cameraLayers.map((l) => ({ ...l }));
    const tr = pc.addTransceiver(this.tracks.camera || 'video', init);
    if (simulcast) {
      // A browser that ignores sendEncodings (or keeps only one) sends a plain stream.
      const n = tr.sender.getParameters().encodings.length;
      if (n < 2) console.warn('Lectern: the browser keeps', n, 'camera encoding(s) of', cameraLayers.length);
    }
    return tr.sender;
  }

  /** Replaces the camera, screen or microphone track (null stops sending it). */
  async replace(kind, track) {
    this.tracks[kind] = track;
    const sender = this.senders && this.senders[kind];
    if (sender && this.pc) await sender.replaceTrack(track);
  }

  /**
   * Ends the publication: DELETE of the WHIP resource, unless remote is false (the
   * server ended it, e.g. when it took the floor back).
   */
  async stop({ remote = true } = {}) {
    this.stopped = true;
    clearTimeout(this.lostTimer);
    const client = this.client, pc = this.pc;
    this.client = null;
    this.pc = null;
    this.onState('closed');
    await end(client, pc, remote);
  }

  /** Health of the outgoing media: {kbps, loss, rtt, fps}. */
  async health() { return this.pc ? this.stats.sample(this.pc) : null; }
}

/**
 * A WHEP player of one publication: `videos` video sections (the trainer's camera, then
 * its screen) and one audio section. It reconnects by itself after a network drop.
 */
export class Viewer extends Reconnecting {
  /**
   * onTracks({videos: [MediaStreamTrack], audio}) is called after every (re)connection;
   * onState(state) gets "connecting", "connected", "reconnecting", "failed", "closed".
   */
  constructor({ url, token, videos = 1, fatal = [401, 403], onTracks = () => {}, onState = () => {} }) {
    super();
    this.lostDelay = 3000;
    this.url = url;
    this.fatal = fatal;
    this.token = token;
    this.videos = videos;
    this.onTracks = onTracks;
    this.onState = onState;
    this.pc = null;
    this.client = null;
    this.stopped = false;
    this.retries = 0;
    this.stats = new StatsMeter('inbound');
  }

  /** Connects; on failure it keeps retrying unless the server refused the token. */
  async start() {
    this.stopped = false;
    this.onState('connecting');
    try {
      await this.connect();
    } catch (err) {
      if (this.fatal.includes(statusOf(err))) {
        this.stopped = true;
        this.onState('failed', err);
        return;
      }
      this.reconnect();
    }
  }

  async connect() {
    const pc = new RTCPeerConnection(pcConfig);
    this.pc = pc;
    const transceivers = [];
    for (let i = 0; i < this.videos; i++) transceivers.push(pc.addTransceiver('video', { direction: 'recvonly' }));
    const audio = pc.addTransceiver('audio', { direction: 'recvonly' });
    this.receivers = { videos: transceivers.map((tr) => tr.receiver), audio: audio.receiver };
    const client = new QuietWHEP();
    this.client = client;
    try {
      await client.view(pc, this.url, this.token);
    } catch (err) {
      pc.close();
      throw err;
    }
    pc.addEventListener('connectionstatechange', () => this.watch(pc));
    // A pin belongs to a resource: a new connection (after a network drop) asks again.
    if (this.pin && this.pin !== 'auto' && client.layerUrl) this.pinLayer(this.pin).catch(() => {});
    this.onTracks({ videos: transceivers.map((tr) => tr.receiver.track), audio: audio.receiver.track });
  }

  /**
   * The URL of the layer extension of the current WHEP resource (the answer's
   * `Link: <…>; rel="urn:ietf:params:whep:ext:core:layer"`), or "" when the server
   * offers none (an older server, another WHEP server) or before the answer.
   */
  get layerURL() { return this.client && this.client.layerUrl ? String(this.client.layerUrl) : ''; }

  /**
   * The layer this player gets: {pin, layer: "high"|"medium"|"low"|"paused"|"", paused,
   * estimate_bps, layers}, or null without a layer extension. Rejects with an Error
   * carrying .status when the server refuses.
   */
  async layer() {
    const url = this.layerURL;
    if (!url) return null;
    const r = await fetch(url, { headers: this.authHeaders(), cache: 'no-store' });
    if (!r.ok) throw httpError(r.status);
    return r.json();
  }

  /**
   * Pins a layer: "auto" (the server chooses by the link), "high", "medium", "low" or
   * "audio" (video paused). It is kept and asked for again after a reconnection.
   * Rejects with an Error carrying .status (400: a layer the server does not know).
   */
  async pinLayer(layer) {
    const url = this.layerURL;
    if (!url) {
      this.pin = layer; // asked for when connected
      throw httpError(404);
    }
    const r = await fetch(url, {
      method: 'POST',
      headers: { ...this.authHeaders(), 'Content-Type': 'application/json' },
      body: JSON.stringify({ layer }),
    });
    if (!r.ok) throw httpError(r.status);
    this.pin = layer;
  }

  authHeaders() { return this.token ? { Authorization: 'Bearer ' + this.token } : {}; }

  /**
   * Whether the media transport is still up: a server that ends the resource closes
   * DTLS (close_notify) at once, while ICE takes seconds to call it disconnected.
   */
  transportOpen() {
    const tr = this.receivers && this.receivers.audio && this.receivers.audio.transport;
    return !tr || tr.state === 'connected';
  }

  /** Ends playback (DELETE of the WHEP resource). */
  async stop() {
    this.stopped = true;
    clearTimeout(this.lostTimer);
    const client = this.client, pc = this.pc;
    this.client = null;
    this.pc = null;
    this.onState('closed');
    await end(client, pc, true);
  }

  /** Health of the incoming media: {kbps, loss, rtt, fps, framesDecoded, audioPackets, width, height, videos: [{framesDecoded, width, height}]}. */
  async health() {
    if (!this.pc) return null;
    const h = await this.stats.sample(this.pc);
    h.state = this.pc.connectionState;
    h.transport = this.receivers.audio.transport ? this.receivers.audio.transport.state : '';
    h.resource = this.client ? String(this.client.resourceURL || '') : '';
    h.videos = [];
    for (const r of this.receivers.videos) {
      let frames = 0, width = 0, height = 0;
      (await r.getStats()).forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        frames += s.framesDecoded || 0;
        width = Math.max(width, s.frameWidth || 0);
        height = Math.max(height, s.frameHeight || 0);
      });
      h.videos.push({ framesDecoded: frames, width, height });
    }
    return h;
  }
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function httpError(status) {
  const err = new Error('Request rejected with status ' + status);
  err.status = status;
  return err;
}

/**
 * Turns getStats totals into rates between two samples: bitrate, packet loss (percent of
 * the packets of the interval) and round-trip time of the selected candidate pair.
 */
export class StatsMeter {
  constructor(direction) {
    this.direction = direction;
    this.last = null;
  }

  async sample(pc) {
    const report = await pc.getStats();
    const now = performance.now();
    const cur = { bytes: 0, packets: 0, lost: 0, framesDecoded: 0, framesEncoded: 0, audioPackets: 0, fps: 0, rtt: NaN, width: 0, height: 0, layers: [] };
    let pairId = '';
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
      if (this.direction === 'inbound' && s.type === 'inbound-rtp') {
        cur.bytes += s.bytesReceived || 0;
        cur.packets += s.packetsReceived || 0;
        cur.lost += Math.max(0, s.packetsLost || 0);
        if (s.kind === 'video') {
          cur.framesDecoded += s.framesDecoded || 0;
          cur.fps = Math.max(cur.fps, s.framesPerSecond || 0);
          cur.width = Math.max(cur.width, s.frameWidth || 0);
          cur.height = Math.max(cur.height, s.frameHeight || 0);
        } else if (s.kind === 'audio') {
          cur.audioPackets += s.packetsReceived || 0;
        }
      }
      if (this.direction === 'outbound') {
        if (s.type === 'outbound-rtp') {
          cur.bytes += s.bytesSent || 0;
          cur.packets += s.packetsSent || 0;
          if (s.kind === 'video') {
            cur.framesEncoded += s.framesEncoded || 0;
            cur.fps = Math.max(cur.fps, s.framesPerSecond || 0);
            cur.width = Math.max(cur.width, s.frameWidth || 0);
            cur.height = Math.max(cur.height, s.frameHeight || 0);
            // Simulcast: one outbound-rtp per layer, told apart by its rid.
            if (s.rid) cur.layers.push({ rid: s.rid, width: s.frameWidth || 0, height: s.frameHeight || 0, packets: s.packetsSent || 0, active: s.active !== false, limitation: s.qualityLimitationReason || '' });
          }
        }
        if (s.type === 'remote-inbound-rtp') cur.lost += Math.max(0, s.packetsLost || 0);
      }
    });
    if (!pairId) report.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pairId = s.id; });
    const pair = pairId && report.get(pairId);
    if (pair && typeof pair.currentRoundTripTime === 'number') cur.rtt = pair.currentRoundTripTime * 1000;

    const prev = this.last;
    this.last = { ...cur, at: now };
    const out = { ...cur, kbps: 0, loss: 0 };
    if (prev) {
      const dt = (now - prev.at) / 1000;
      if (dt > 0) out.kbps = Math.max(0, ((cur.bytes - prev.bytes) * 8) / 1000 / dt);
      const dp = cur.packets - prev.packets, dl = cur.lost - prev.lost;
      out.loss = dp + dl > 0 ? Math.max(0, (100 * dl) / (dp + dl)) : 0;
    }
    return out;
  }
}

/** "good", "fair", "poor" or "none" for a health sample. */
export function quality(h) {
  if (!h || h.kbps < 1) return 'none';
  const rtt = Number.isFinite(h.rtt) ? h.rtt : 0;
  if (h.loss < 2 && rtt < 300) return 'good';
  if (h.loss < 8 && rtt < 800) return 'fair';
  return 'poor';
}
