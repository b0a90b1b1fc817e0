package sfu

import (
	"errors"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoSession is returned for an unknown session id.
var ErrNoSession = errors.New("session not found")

// RegistryConfig configures a [Registry].
type RegistryConfig struct {
	// Grace is how long a publication whose source went away stays, paused, waiting
	// for the source to reconnect and continue the same tracks. Default 30 s; a
	// negative value removes publications at once.
	Grace time.Duration
	// MaxSubscribers limits consumers per session; 0 means no limit.
	MaxSubscribers int
	// OnEvent receives state changes of every session; may be nil.
	OnEvent EventFunc
	// TrackOptions tune every track's caches.
	TrackOptions TrackOptions
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Registry holds the live sessions.
type Registry struct {
	cfg         RegistryConfig
	log         *slog.Logger
	stats       *Stats
	subscribers atomic.Int64

	mu       sync.Mutex
	sessions map[string]*Session
}

// NewRegistry returns an empty registry.
func NewRegistry(cfg RegistryConfig) *Registry {
	if cfg.Grace == 0 {
		cfg.Grace = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Registry{cfg: cfg, log: cfg.Logger.With("component", "sfu"), stats: new(Stats), sessions: map[string]*Session{}}
}

// Stats returns the registry's counters.
func (r *Registry) Stats() *Stats { return r.stats }

// Session returns the live session with that id, creating it when missing. Whether
// the id names a real lecture is the caller's business.
func (r *Registry) Session(id string) *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sessions[id]
	if !ok {
		s = &Session{id: id, registry: r, pubs: map[string]*Publication{}, watchers: map[int]func(*Track){}}
		r.sessions[id] = s
	}
	return s
}

// Lookup returns a live session without creating it.
func (r *Registry) Lookup(id string) (*Session, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sessions[id]
	return s, ok
}

// Close ends a session: its publications are removed and their tracks closed.
func (r *Registry) Close(id string) {
	r.mu.Lock()
	s, ok := r.sessions[id]
	delete(r.sessions, id)
	r.mu.Unlock()
	if ok {
		s.close()
	}
}

// CloseAll ends every session (shutdown).
func (r *Registry) CloseAll() {
	r.mu.Lock()
	sessions := r.sessions
	r.sessions = map[string]*Session{}
	r.mu.Unlock()
	for _, s := range sessions {
		s.close()
	}
}

// Counts returns the number of sessions, publications and subscribers, for metrics.
func (r *Registry) Counts() (sessions, publications, subscribers int) {
	r.mu.Lock()
	list := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		list = append(list, s)
	}
	r.mu.Unlock()
	for _, s := range list {
		s.mu.Lock()
		publications += len(s.pubs)
		s.mu.Unlock()
	}
	return len(list), publications, int(r.subscribers.Load())
}

// IDs returns the ids of the live sessions, sorted.
func (r *Registry) IDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.sessions))
	for id := range r.sessions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
