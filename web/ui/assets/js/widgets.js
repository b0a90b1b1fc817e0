// Small pieces of page shared by the studio and the classroom.
import { t, fmtNumber } from './i18n.js';
import { quality } from './rtc.js';

/** Updates a live badge element: data-live is "on", "off" or "paused". */
export function setLiveBadge(badge, state) {
  badge.dataset.live = state;
  badge.textContent = t(state === 'on' ? 'live.on' : state === 'paused' ? 'live.paused' : 'live.off');
}

/**
 * Updates a quality indicator (an element with .q-bars and .q-text children) from a
 * health sample of rtc.js; the numbers go to its title and its .q-details child.
 */
export function setQuality(box, h) {
  const level = quality(h);
  box.dataset.quality = level;
  const text = box.querySelector('.q-text');
  if (text) text.textContent = t('q.' + level);
  const details = h && h.kbps >= 1
    ? t('q.details', { kbps: fmtNumber(h.kbps), loss: fmtNumber(h.loss, 1), rtt: Number.isFinite(h.rtt) ? fmtNumber(h.rtt) : '–' })
    : '';
  box.title = details;
  const d = box.querySelector('.q-details');
  if (d) d.textContent = details;
}

/** Plays a media element; resolves false when the browser blocks autoplay. */
export async function tryPlay(media) {
  try {
    await media.play();
    return true;
  } catch (err) {
    return err && err.name === 'NotAllowedError' ? false : true;
  }
}
