package web

import (
	"slices"
	"sync"
	"time"

	"lectern/events"
)

// Hand is a raised hand: a classroom asking for the floor.
type Hand struct {
	Participant string    `json:"participant"`
	Display     string    `json:"display,omitempty"`
	RaisedAt    time.Time `json:"raised_at"`
}

// Speaker is a classroom that holds the floor: it may publish.
type Speaker struct {
	Participant string    `json:"participant"`
	Display     string    `json:"display,omitempty"`
	Publication string    `json:"publication"`
	Since       time.Time `json:"since"`
}

// floor is the talk-back state of every session: raised hands in order, and who
// holds the floor. It is live state (a restart clears it, as it ends every
// connection).
type floor struct {
	publish func(session, typ string, data any)

	mu       sync.Mutex
	hands    map[string][]Hand
	speakers map[string][]Speaker
}

func newFloor(publish func(session, typ string, data any)) *floor {
	return &floor{publish: publish, hands: map[string][]Hand{}, speakers: map[string][]Speaker{}}
}

// sitePublication is the publication name of a classroom with the floor.
func sitePublication(participant string) string { return "site-" + participant }

func (f *floor) raise(session, participant, display string) {
	f.mu.Lock()
	list := f.hands[session]
	if slices.ContainsFunc(list, func(h Hand) bool { return h.Participant == participant }) {
		f.mu.Unlock()
		return
	}
	f.hands[session] = append(list, Hand{Participant: participant, Display: display, RaisedAt: time.Now().UTC()})
	snap := slices.Clone(f.hands[session])
	f.mu.Unlock()
	f.publish(session, events.TypeHands, snap)
}

func (f *floor) lower(session, participant string) bool {
	return removeEntry(f, f.hands, session, events.TypeHands, func(h Hand) bool { return h.Participant == participant })
}

// removeEntry removes from m[session] (one of f's lists, guarded by f.mu) the
// entry for which is says true, into a copy that replaces the list (earlier
// snapshots may share its array), and publishes what is left as typ; false
// when there was none.
func removeEntry[T any](f *floor, m map[string][]T, session, typ string, is func(T) bool) bool {
	f.mu.Lock()
	list := m[session]
	i := slices.IndexFunc(list, is)
	if i < 0 {
		f.mu.Unlock()
		return false
	}
	m[session] = slices.Delete(slices.Clone(list), i, i+1)
	snap := slices.Clone(m[session])
	f.mu.Unlock()
	f.publish(session, typ, snap)
	return true
}

// grant gives participant the floor (and lowers its hand). display is taken from
// its raised hand when known.
func (f *floor) grant(session, participant string) Speaker {
	f.mu.Lock()
	display := ""
	for _, h := range f.hands[session] {
		if h.Participant == participant {
			display = h.Display
		}
	}
	sp := Speaker{Participant: participant, Display: display, Publication: sitePublication(participant), Since: time.Now().UTC()}
	list := f.speakers[session]
	if i := slices.IndexFunc(list, func(s Speaker) bool { return s.Participant == participant }); i >= 0 {
		f.mu.Unlock()
		return list[i]
	}
	f.speakers[session] = append(list, sp)
	snap := slices.Clone(f.speakers[session])
	f.mu.Unlock()
	f.publish(session, events.TypeSpeakers, snap)
	f.lower(session, participant)
	return sp
}

func (f *floor) revoke(session, participant string) bool {
	return removeEntry(f, f.speakers, session, events.TypeSpeakers, func(s Speaker) bool { return s.Participant == participant })
}

func (f *floor) holds(session, participant string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.ContainsFunc(f.speakers[session], func(s Speaker) bool { return s.Participant == participant })
}

func (f *floor) snapshot(session string) (hands []Hand, speakers []Speaker) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hands = slices.Clone(f.hands[session])
	speakers = slices.Clone(f.speakers[session])
	if hands == nil {
		hands = []Hand{}
	}
	if speakers == nil {
		speakers = []Speaker{}
	}
	return hands, speakers
}

func (f *floor) forget(session string) {
	f.mu.Lock()
	delete(f.hands, session)
	delete(f.speakers, session)
	f.mu.Unlock()
}
