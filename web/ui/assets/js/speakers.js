// Tiles that show and play the classrooms that have the floor, for the studio and for
// the other classrooms. One WHEP player per classroom, started when its publication
// appears and stopped when it goes away or the floor is taken back.
import { t } from './i18n.js';
import { el } from './common.js';
import { publication, displayName } from './events.js';
import { Viewer } from './rtc.js';
import { tryPlay } from './widgets.js';

export class SpeakerTiles {
  /** skip: a participant not to show (the classroom itself). */
  constructor({ session, token, skip = '' }) {
    this.session = session;
    this.token = token;
    this.skip = skip;
    this.tiles = new Map(); // participant → {tile, viewer, pubName}
  }

  /** Brings the tiles in line with a session state; returns participant → tile element. */
  update(state) {
    const speakers = state.speakers.filter((s) => s.participant !== this.skip);
    const names = new Set(speakers.map((s) => s.participant));
    for (const [p, entry] of this.tiles) {
      if (!names.has(p)) {
        this.drop(entry);
        this.tiles.delete(p);
      }
    }
    for (const sp of speakers) {
      let entry = this.tiles.get(sp.participant);
      if (!entry) {
        entry = this.create(sp);
        this.tiles.set(sp.participant, entry);
      }
      entry.title.textContent = t('room.speaking', { name: displayName(sp) });
      entry.empty.textContent = t('studio.waitingSpeaker', { name: displayName(sp) });
      const live = !!publication(state, entry.pubName);
      if (live && !entry.viewer) this.play(entry);
      if (!live && entry.viewer) this.drop(entry);
    }
    return new Map([...this.tiles].map(([p, e]) => [p, e.tile]));
  }

  create(sp) {
    const video = el('video', { autoplay: true, muted: true, playsinline: true });
    video.muted = true;
    const audio = el('audio', { autoplay: true });
    const empty = el('p', { class: 'video-empty' });
    const title = el('h3', {});
    const sound = el('button', { type: 'button', class: 'btn btn-small icon-sound', hidden: true }, t('room.enableSound'));
    const box = el('div', { class: 'video-box' }, video, empty);
    const tile = el('div', { class: 'tile', dataset: { participant: sp.participant, state: 'waiting' } }, title, box, audio, sound);
    sound.addEventListener('click', async () => { sound.hidden = await tryPlay(audio); });
    return { tile, video, audio, empty, title, sound, viewer: null, pubName: sp.publication || 'site-' + sp.participant };
  }

  play(entry) {
    entry.viewer = new Viewer({
      url: location.origin + '/whep/' + this.session + '/' + entry.pubName,
      token: this.token,
      videos: 1,
      fatal: [401, 403, 404], // 404: the publication ended; the event stream says when it is back
      onTracks: async ({ videos, audio }) => {
        entry.video.srcObject = new MediaStream([videos[0]]);
        entry.audio.srcObject = new MediaStream([audio]);
        tryPlay(entry.video);
        entry.sound.hidden = await tryPlay(entry.audio);
      },
      onState: (s) => {
        entry.tile.dataset.state = s === 'connected' ? 'playing' : s;
        entry.empty.hidden = s === 'connected';
        if (s === 'failed') entry.viewer = null;
      },
    });
    entry.viewer.start();
  }

  drop(entry) {
    if (entry.viewer) entry.viewer.stop();
    entry.viewer = null;
    entry.video.srcObject = null;
    entry.audio.srcObject = null;
    entry.empty.hidden = false;
    entry.tile.dataset.state = 'waiting';
  }

  /** Stops every tile's player and forgets the tiles (the session is gone). */
  stop() {
    for (const entry of this.tiles.values()) this.drop(entry);
    this.tiles.clear();
  }

  /** Health of every playing tile: participant → sample. */
  async health() {
    const out = {};
    for (const [p, e] of this.tiles) if (e.viewer) out[p] = await e.viewer.health();
    return out;
  }

  /** Re-renders the texts after a language change. */
  relabel() {
    for (const e of this.tiles.values()) e.sound.textContent = t('room.enableSound');
  }
}
