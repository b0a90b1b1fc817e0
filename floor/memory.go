package floor

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Memory is the in-memory [Floor] of one node. Its state is live state: a restart
// clears it, as it ends every connection.
type Memory struct {
	hook func(Event)

	// emit serialises the hook calls, so that a session's events reach the hook in
	// the order of its changes (the hook is not called under mu: it may call back).
	emit sync.Mutex

	mu       sync.Mutex
	hands    map[string][]Hand
	speakers map[string][]Speaker
}

var _ Floor = (*Memory)(nil)

// NewMemory returns an empty floor reporting its changes to hook (nil: none).
// The hook must not block for long: changes of every session wait for it.
func NewMemory(hook func(Event)) *Memory {
	if hook == nil {
		hook = func(Event) {}
	}
	return &Memory{hook: hook, hands: map[string][]Hand{}, speakers: map[string][]Speaker{}}
}

// Raise implements [Floor].
func (f *Memory) Raise(_ context.Context, session, participant, display string) error {
	f.emit.Lock()
	defer f.emit.Unlock()
	f.mu.Lock()
	list := f.hands[session]
	if slices.ContainsFunc(list, func(h Hand) bool { return h.Participant == participant }) {
		f.mu.Unlock()
		return nil
	}
	now := time.Now().UTC()
	f.hands[session] = append(list, Hand{Participant: participant, Display: display, RaisedAt: now})
	snap := slices.Clone(f.hands[session])
	f.mu.Unlock()
	f.hook(Event{Session: session, Change: HandRaised, Participant: participant, Display: display, At: now, Hands: snap})
	return nil
}

// Lower implements [Floor].
func (f *Memory) Lower(_ context.Context, session, participant string) (bool, error) {
	f.emit.Lock()
	defer f.emit.Unlock()
	return f.lower(session, participant), nil
}

// lower runs with f.emit held.
func (f *Memory) lower(session, participant string) bool {
	f.mu.Lock()
	h, snap, ok := remove(f.hands, session, func(h Hand) bool { return h.Participant == participant })
	f.mu.Unlock()
	if ok {
		f.hook(Event{Session: session, Change: HandLowered, Participant: participant, Display: h.Display, At: time.Now().UTC(), Hands: snap})
	}
	return ok
}

// remove removes from m[session] the entry for which is says true, into a copy
// that replaces the list (earlier snapshots may share its array), and returns it
// and a snapshot of what is left; false when there was none. It runs with f.mu held.
func remove[T any](m map[string][]T, session string, is func(T) bool) (T, []T, bool) {
	list := m[session]
	i := slices.IndexFunc(list, is)
	if i < 0 {
		var zero T
		return zero, nil, false
	}
	gone := list[i]
	m[session] = slices.Delete(slices.Clone(list), i, i+1)
	snap := slices.Clone(m[session])
	if snap == nil {
		snap = []T{}
	}
	return gone, snap, true
}

// Grant implements [Floor].
func (f *Memory) Grant(_ context.Context, session, participant string) (Speaker, error) {
	f.emit.Lock()
	defer f.emit.Unlock()
	f.mu.Lock()
	list := f.speakers[session]
	if i := slices.IndexFunc(list, func(s Speaker) bool { return s.Participant == participant }); i >= 0 {
		sp := list[i]
		f.mu.Unlock()
		return sp, nil
	}
	display := ""
	for _, h := range f.hands[session] {
		if h.Participant == participant {
			display = h.Display
		}
	}
	sp := Speaker{Participant: participant, Display: display, Publication: SitePublication(participant), Since: time.Now().UTC()}
	f.speakers[session] = append(list, sp)
	snap := slices.Clone(f.speakers[session])
	f.mu.Unlock()
	f.hook(Event{Session: session, Change: Granted, Participant: participant, Display: display, At: sp.Since, Speakers: snap})
	f.lower(session, participant)
	return sp, nil
}

// Revoke implements [Floor].
func (f *Memory) Revoke(_ context.Context, session, participant string) (bool, error) {
	f.emit.Lock()
	defer f.emit.Unlock()
	f.mu.Lock()
	sp, snap, ok := remove(f.speakers, session, func(s Speaker) bool { return s.Participant == participant })
	f.mu.Unlock()
	if ok {
		f.hook(Event{Session: session, Change: Revoked, Participant: participant, Display: sp.Display, At: time.Now().UTC(), Speakers: snap})
	}
	return ok, nil
}

// Holds implements [Floor].
func (f *Memory) Holds(_ context.Context, session, participant string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.ContainsFunc(f.speakers[session], func(s Speaker) bool { return s.Participant == participant }), nil
}

// Snapshot implements [Floor].
func (f *Memory) Snapshot(_ context.Context, session string) ([]Hand, []Speaker, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hands := slices.Clone(f.hands[session])
	speakers := slices.Clone(f.speakers[session])
	if hands == nil {
		hands = []Hand{}
	}
	if speakers == nil {
		speakers = []Speaker{}
	}
	return hands, speakers, nil
}

// Forget implements [Floor].
func (f *Memory) Forget(_ context.Context, session string) error {
	f.mu.Lock()
	delete(f.hands, session)
	delete(f.speakers, session)
	f.mu.Unlock()
	return nil
}
