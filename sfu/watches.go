package sfu

import "sync"

// Watches keeps one consumer's watches ([Session.Watch]) of many sessions, as the
// recorder and the transcoder have them: a session is watched once however often
// it is added (they add it on every publication.added event), and after Close
// nothing is watched any more. The zero value is ready to use.
type Watches struct {
	mu      sync.Mutex
	closed  bool
	cancels map[*Session]func()
}

// Add watches s with fn unless s is watched already or Close was called. fn runs
// as for Session.Watch, for s's present tracks before Add returns. Add must not be
// called with sfu locks held.
func (w *Watches) Add(s *Session, fn func(*Track)) {
	w.mu.Lock()
	if _, ok := w.cancels[s]; ok || w.closed {
		w.mu.Unlock()
		return
	}
	if w.cancels == nil {
		w.cancels = map[*Session]func(){}
	}
	// A placeholder while Watch runs unlocked (it calls fn for the present
	// tracks): a second Add of s in the meantime does nothing.
	w.cancels[s] = func() {}
	w.mu.Unlock()
	cancel := s.Watch(fn)
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.cancels[s]; !ok || w.closed {
		cancel() // removed or closed while Watch ran
		return
	}
	w.cancels[s] = cancel
}

// Remove stops watching s for new tracks.
func (w *Watches) Remove(s *Session) {
	w.mu.Lock()
	cancel := w.cancels[s]
	delete(w.cancels, s)
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// Close stops watching every session; Add does nothing afterwards. It is
// idempotent.
func (w *Watches) Close() {
	w.mu.Lock()
	w.closed = true
	cancels := w.cancels
	w.cancels = nil
	w.mu.Unlock()
	for _, cancel := range cancels {
		cancel()
	}
}
