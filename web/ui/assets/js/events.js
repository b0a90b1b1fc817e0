// The session's live state, kept current from its Server-Sent Events stream.
//
// The server first sends a "snapshot" (the whole state), then small events. Events are
// hints on top of snapshots: every reconnection starts again from a fresh snapshot, so
// the page rebuilds its state from it alone.
import { api } from './common.js';

/**
 * Opens the event stream of a session and calls onState(state, type) with the whole,
 * current state after the snapshot and after every event, and onConnection(ok) when the
 * stream is lost or back. The state is
 * {session, live, publications: [{name, paused, tracks}], subscribers, hands, speakers},
 * and deleted: true once the session has been deleted: the stream is then closed for
 * good (a deleted session's stream only answers 404), and the page stops its media.
 * Returns a function that closes the stream.
 */
export function watchSession(id, token, { onState, onConnection }) {
  let state = null;
  let es = null;
  let closed = false;
  let retry = 1000;
  let timer = 0;

  const connect = () => {
    es = new EventSource('/api/sessions/' + encodeURIComponent(id) + '/events?token=' + encodeURIComponent(token));
    es.addEventListener('open', () => { retry = 1000; });
    es.addEventListener('snapshot', (e) => {
      const ev = parse(e);
      if (!ev || !ev.data) return;
      state = normalize(ev.data);
      onConnection && onConnection(true);
      onState(state, 'snapshot');
    });
    for (const type of ['session.live', 'session.ended', 'publication.added', 'publication.paused',
      'publication.resumed', 'publication.removed', 'hands', 'speakers', 'subscribers']) {
      es.addEventListener(type, (e) => {
        const ev = parse(e);
        if (!ev || !state) return;
        apply(state, type, ev.data);
        // The server ends the stream right after this last event: closed now, the
        // EventSource does not connect again (to a 404) on its own.
        if (state.deleted) close();
        onState(state, type);
      });
    }
    es.addEventListener('error', () => {
      if (closed) return;
      onConnection && onConnection(false);
      if (es.readyState === EventSource.CLOSED) {
        // The server refused (or the stream could not start). A session deleted while
        // this page was offline (it missed the last event) answers 404: ask, since an
        // EventSource does not tell the status. Otherwise try again, slower each time.
        clearTimeout(timer);
        const wait = retry;
        retry = Math.min(retry * 2, 15000);
        gone().then((deleted) => {
          if (closed) return;
          if (deleted) {
            state = state || normalize({});
            state.live = false;
            state.deleted = true;
            close();
            onState(state, 'session.ended');
            return;
          }
          timer = setTimeout(connect, wait);
        });
      }
    });
  };
  // Whether the session no longer exists (a network failure or another refusal is
  // not an answer: the stream is tried again).
  const gone = async () => {
    try {
      await api('/api/sessions/' + encodeURIComponent(id), { token });
      return false;
    } catch (err) {
      return err.status === 404;
    }
  };
  const close = () => {
    closed = true;
    clearTimeout(timer);
    if (es) es.close();
  };
  connect();
  return close;
}

function parse(e) {
  try { return JSON.parse(e.data); } catch { return null; }
}

function normalize(s) {
  return {
    ...s,
    live: !!s.live,
    publications: s.publications || [],
    hands: s.hands || [],
    speakers: s.speakers || [],
    subscribers: s.subscribers || 0,
  };
}

/** Applies one event to the state (idempotently). */
function apply(state, type, data) {
  const pubs = state.publications;
  const named = (name) => pubs.findIndex((p) => p.name === name);
  switch (type) {
    case 'session.live': state.live = true; break;
    case 'session.ended':
      state.live = false;
      if (data && data.deleted) state.deleted = true;
      break;
    case 'publication.added':
    case 'publication.paused':
    case 'publication.resumed': {
      if (!data || !data.name) break;
      const p = { ...data, paused: type === 'publication.paused' ? true : type === 'publication.resumed' ? false : !!data.paused };
      const i = named(data.name);
      if (i >= 0) pubs[i] = p; else pubs.push(p);
      if (data.name === 'trainer') state.live = true;
      break;
    }
    case 'publication.removed': {
      const i = data && data.name ? named(data.name) : -1;
      if (i >= 0) pubs.splice(i, 1);
      if (data && data.name === 'trainer') state.live = false;
      break;
    }
    case 'hands': state.hands = Array.isArray(data) ? data : []; break;
    case 'speakers': state.speakers = Array.isArray(data) ? data : []; break;
    case 'subscribers': state.subscribers = typeof data === 'number' ? data : state.subscribers; break;
  }
}

/** The publication of a session state by name, or undefined. */
export function publication(state, name) {
  return state && state.publications.find((p) => p.name === name);
}

/** The name a person sees for a participant: its display name, else its id. */
export function displayName(entry) {
  return (entry && (entry.display || entry.participant)) || '';
}
