package web

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"lectern/auth"
	"lectern/catalog"
	"lectern/events"
)

// Default limits of the event streams (GET /api/sessions/{id}/events). A stream costs
// a connection, two goroutines (net/http's) and some 40 KB while it is open; without a
// bound, one token opened thousands.
//
// Per token: each page of a session opens one stream. A classroom's site token drives
// its few screens (projector, trainer's PC, a tablet), and a viewer link is often shared
// by the screens of a hall: 32 leaves room for both and still bounds a single token to
// a few MB. Per address: a province's classrooms often reach the server through one NAT
// address, each with its own token, hence four times that.
const (
	DefaultEventStreamsPerToken   = 32
	DefaultEventStreamsPerAddress = 128
)

// errTooManyStreams refuses an event stream beyond a limit (429).
var errTooManyStreams = errors.New("too many event streams")

// streamRefusal is errTooManyStreams with its reason and when to try again: the
// pages' EventSource retries on its own, slower each time.
type streamRefusal struct{ error }

func (e streamRefusal) Unwrap() error           { return e.error }
func (streamRefusal) RetryAfter() time.Duration { return 15 * time.Second }

// streamLimits counts the open event streams per token and per client address.
type streamLimits struct{ tokenAddrLimit }

// newStreamLimits applies the defaults to 0 and no limit to negative values.
func newStreamLimits(perToken, perAddress int) *streamLimits {
	return &streamLimits{newTokenAddrLimit(perToken, perAddress, DefaultEventStreamsPerToken, DefaultEventStreamsPerAddress)}
}

// acquire takes a place for a stream of token from the request's address; release
// gives it back.
func (l *streamLimits) acquire(r *http.Request, token string) (release func(), err error) {
	return l.tokenAddrLimit.acquire(r, token, func(byToken bool, max int) error {
		if byToken {
			return streamRefusal{fmt.Errorf("%w: this token already has %d open (close other pages of this session, or ask for another link)",
				errTooManyStreams, max)}
		}
		return streamRefusal{fmt.Errorf("%w: this address already has %d open", errTooManyStreams, max)}
	})
}

// sessionEvents streams a session's live state as Server-Sent Events (events.ServeSSE:
// each write bounded in time, so a client that stops reading is dropped; the stream
// itself lasts as long as the client stays). Deleting the session ends its streams
// (events.Broker.End).
func (s *Server) sessionEvents(w http.ResponseWriter, r *http.Request) {
	c, p, ok := s.member(w, r)
	if !ok {
		return
	}
	token, _ := auth.BearerToken(r) // member has checked it
	release, err := s.streams.acquire(r, token)
	if err != nil {
		s.httpError(w, r, err)
		return
	}
	defer release()
	ch, cancel := s.cfg.Events.Subscribe(c.ID)
	defer cancel()
	defer s.cluster.watch(c.ID)() // cluster.go: a deletion this node missed still ends the stream
	// A session deleted between the check above and Subscribe ended its streams
	// before this one joined: it must not wait for events that will never come.
	if _, err := s.cfg.Catalog.Get(c.ID); errors.Is(err, catalog.ErrNotFound) {
		s.httpError(w, r, err)
		return
	}
	snapshot := func() any { // as GET /api/sessions/{id}: the settings only to those who manage it
		if cur, err := s.cfg.Catalog.Get(c.ID); err == nil {
			return stateFor(p, s.state(cur))
		}
		return stateFor(p, s.state(c))
	}
	if err := events.ServeSSE(w, r, ch, snapshot, 0); err != nil {
		s.log.Debug("event stream ended", "session", c.ID, "err", err)
	}
}
