// Recordings as the replay pages show them.
import { t } from './i18n.js';

/**
 * A recording as the pages use it: {id, session, title, publication, start, end,
 * duration_seconds}, also from the recorder's own field names (started_at, ended_at,
 * duration).
 */
export function normalizeRecording(r) {
  const start = r.start || r.started_at || '';
  const end = r.end || r.ended_at || '';
  let duration = r.duration_seconds ?? r.duration;
  if (!Number.isFinite(duration) && start && end) duration = (Date.parse(end) - Date.parse(start)) / 1000;
  return { ...r, start, end, duration_seconds: duration };
}

/**
 * Who a recording is of: the whole class (the programme: the trainer with the
 * classrooms' questions), the trainer, or a classroom that had the floor.
 */
export function publicationLabel(pub) {
  if (pub === 'programme') return t('pub.programme');
  if (!pub || pub === 'trainer') return t('pub.trainer');
  return t('pub.site', { name: pub.replace(/^site-/, '') });
}
