package rtsp

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"lectern/auth"
	"lectern/sfu"
)

// SourcesConfig configures [Sources].
type SourcesConfig struct {
	// Sessions resolves a session id; it returns an error wrapping
	// ErrSessionNotFound for unknown ids. Required.
	Sessions func(id string) (*sfu.Session, error)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// BackoffMin and BackoffMax bound the wait between reconnection attempts, which
	// doubles from min to max while a camera stays away (with ±20 % jitter). Defaults
	// 1 s and 30 s.
	BackoffMin, BackoffMax time.Duration
	// Timeout bounds connecting, each request, and the silence of a playing camera
	// before it counts as dropped. Default 10 s.
	Timeout time.Duration
	// TLSConfig is used for rtsps:// sources; nil verifies certificates against the
	// system roots.
	TLSConfig *tls.Config
	// Allow is where sources may connect; nil: anywhere but loopback, link-local,
	// unspecified and multicast addresses (see Destinations).
	Allow *Destinations
	// TrainersMayAdd lets a session's trainer add sources; otherwise only the admin
	// may (the HTTP layer asks TrainersMayAdd). A source makes the server connect
	// where its URL says: it is the admin's to allow.
	TrainersMayAdd bool
}

// SourceSpec is what an operator asks for: pull URL into the session as the
// trainer, or as the site Name.
type SourceSpec struct {
	URL  string `json:"url"`  // rtsp:// or rtsps://, credentials in the user info
	Name string `json:"name"` // a valid name (auth.ValidName), unique in the session
	As   string `json:"as"`   // "trainer" or "site"
}

// Source states.
const (
	StateConnecting = "connecting" // not live yet (first attempt, or retrying before it ever was)
	StateLive       = "live"       // media is flowing
	StatePaused     = "paused"     // it was live and dropped: retrying, the publication is kept
	StateStopped    = "stopped"    // given up: removed, replaced by another publisher, or its session ended
)

// SourceInfo is a source's state for the API. URL has its credentials redacted.
type SourceInfo struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	As          string    `json:"as"`
	URL         string    `json:"url"`
	Publication string    `json:"publication"`
	State       string    `json:"state"`
	LastError   string    `json:"last_error,omitempty"`
	Since       time.Time `json:"since"` // when State was entered
}

// Sources runs pull sources: per session, cameras or encoders that Lectern plays
// over RTSP and publishes into the session. Each source has one goroutine that
// connects, forwards, and reconnects with backoff. Close stops them all.
type Sources struct {
	cfg SourcesConfig
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	bySession map[string][]*source
}

// NewSources returns a manager with no sources.
func NewSources(cfg SourcesConfig) *Sources {
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = time.Second
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = max(30*time.Second, cfg.BackoffMin)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Sources{cfg: cfg, log: cfg.Logger.With("component", "rtsp-sources"), ctx: ctx, cancel: cancel, bySession: map[string][]*source{}}
}

// TrainersMayAdd reports whether a session's trainer may add sources (otherwise
// only the admin may).
func (s *Sources) TrainersMayAdd() bool { return s.cfg.TrainersMayAdd }

// validateSpec checks spec and returns the parsed URL and the publication name.
func validateSpec(spec SourceSpec, allow *Destinations) (*url.URL, string, error) {
	u, err := url.Parse(spec.URL)
	if err != nil {
		return nil, "", fmt.Errorf("%w: the URL does not parse", ErrInvalidSource)
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return nil, "", fmt.Errorf("%w: URL scheme %q, want rtsp or rtsps", ErrInvalidSource, truncate(u.Scheme, 16))
	}
	if u.Hostname() == "" {
		return nil, "", fmt.Errorf("%w: the URL has no host", ErrInvalidSource)
	}
	if err := allow.precheck(u.Hostname()); err != nil {
		return nil, "", err
	}
	if !auth.ValidName(spec.Name) {
		return nil, "", fmt.Errorf("%w: name %q: 1-63 of a-z 0-9 _ -, starting with a letter or digit", ErrInvalidSource, truncate(spec.Name, 70))
	}
	switch spec.As {
	case "trainer":
		return u, sfu.TrainerPublication, nil
	case "site":
		return u, "site-" + spec.Name, nil
	}
	return nil, "", fmt.Errorf("%w: as %q, want \"trainer\" or \"site\"", ErrInvalidSource, truncate(spec.As, 16))
}

// Add starts pulling spec into the session. It returns at once: the source connects
// in the background (see List for its state). A second source for the same name or
// publication is refused with ErrSourceExists; an unknown session with
// ErrSessionNotFound; an address the allow-list refuses with ErrDestinationRefused
// (a host name is checked on the address it resolves to, at every connection).
func (s *Sources) Add(sessionID string, spec SourceSpec) (SourceInfo, error) {
	u, pub, err := validateSpec(spec, s.cfg.Allow)
	if err != nil {
		return SourceInfo{}, err
	}
	hub, err := s.cfg.Sessions(sessionID)
	if err != nil {
		return SourceInfo{}, fmt.Errorf("session %q: %w", sessionID, err)
	}
	if hub == nil {
		return SourceInfo{}, fmt.Errorf("session %q: %w", sessionID, ErrSessionNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return SourceInfo{}, ErrClosed
	}
	for _, o := range s.bySession[sessionID] {
		if o.name == spec.Name || o.pub == pub {
			return SourceInfo{}, fmt.Errorf("%w: %q (publication %q) in session %q", ErrSourceExists, o.name, o.pub, sessionID)
		}
	}
	src := newSource(s, sessionID, spec, u, pub, hub)
	s.bySession[sessionID] = append(s.bySession[sessionID], src)
	go src.run()
	src.log.Info("rtsp source added")
	return src.info(), nil
}

// List returns the session's sources in the order they were added.
func (s *Sources) List(sessionID string) []SourceInfo {
	s.mu.Lock()
	list := append([]*source(nil), s.bySession[sessionID]...)
	s.mu.Unlock()
	out := make([]SourceInfo, 0, len(list))
	for _, src := range list {
		out = append(out, src.info())
	}
	return out
}

// Remove stops a source and ends its publication. It waits for the source's
// goroutine.
func (s *Sources) Remove(sessionID, id string) error {
	s.mu.Lock()
	var src *source
	list := s.bySession[sessionID]
	for i, o := range list {
		if o.id == id {
			src = o
			s.bySession[sessionID] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(s.bySession[sessionID]) == 0 {
		delete(s.bySession, sessionID)
	}
	s.mu.Unlock()
	if src == nil {
		return fmt.Errorf("%w: %q in session %q", ErrSourceNotFound, truncate(id, 40), sessionID)
	}
	src.stop(true)
	src.log.Info("rtsp source removed")
	return nil
}

// RemoveAll stops every source of a session (the session was deleted).
func (s *Sources) RemoveAll(sessionID string) {
	for _, info := range s.List(sessionID) {
		_ = s.Remove(sessionID, info.ID)
	}
}

// Close stops every source and waits for them. Their publications are released (not
// ended): at shutdown the sessions close anyway.
func (s *Sources) Close() {
	s.mu.Lock()
	s.closed = true
	var all []*source
	for _, list := range s.bySession {
		all = append(all, list...)
	}
	s.bySession = map[string][]*source{}
	s.mu.Unlock()
	s.cancel()
	for _, src := range all {
		src.stop(false)
	}
}

// redactURL returns u without credentials: no user information, and the values of
// query parameters that look like secrets replaced.
func redactURL(u *url.URL) string {
	r := *u
	if r.User != nil {
		r.User = url.User("REDACTED")
	}
	if r.RawQuery != "" {
		q := r.Query()
		for k := range q {
			lk := strings.ToLower(k)
			for _, word := range []string{"pass", "pwd", "token", "key", "secret", "auth", "user", "sig"} {
				if strings.Contains(lk, word) {
					q[k] = []string{"REDACTED"}
					break
				}
			}
		}
		r.RawQuery = q.Encode()
	}
	return r.String()
}
