// Package programme makes each live session's programme: the publication
// "programme" that carries what every site should see and hear. Its audio is the
// trainer's microphone, mixed with up to four floor holders while they speak; its
// video is the trainer's camera or, in speaker mode, the camera of the classroom
// that holds the floor; its screen is the trainer's slides. WHEP, RTSP and the
// recorder consume it like any other publication.
//
// Each session's programme runs on one goroutine. Sinks on the source tracks only
// retain the packet and hand it over (they run under the source track's lock on the
// publisher's read goroutine); decoding, mixing and encoding happen on the
// programme goroutine, and only while someone with the floor speaks: otherwise the
// trainer's audio packets are written through untouched.
package programme

import (
	"context"
	"log/slog"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"lectern/sfu"
)

// Publication is the name of the programme publication in every session.
const Publication = "programme"

// Video modes (catalog setting programme_video).
const (
	VideoTrainer = "trainer"
	VideoSpeaker = "speaker"
)

// MaxMixed is the most floor holders mixed at once: the first ones granted.
const MaxMixed = 4

// Config configures a [Manager].
type Config struct {
	// VideoMode returns the session's programme_video setting; nil or "" means VideoTrainer.
	VideoMode func(session string) string
	Logger    *slog.Logger
}

// Manager makes the programme of every session it is attached to.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	wg      sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	progs    map[string]*prog    // by session id
	speakers map[string][]string // by session id, in grant order
}

// New returns a manager; it starts nothing until Attach. Close stops it.
func New(cfg Config) *Manager {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Manager{
		cfg: cfg, log: log.With("component", "programme"), metrics: newMetrics(),
		progs: map[string]*prog{}, speakers: map[string][]string{},
	}
}

// Attach makes the programme of s while its trainer publishes; idempotent; safe to
// call on every sfu.EventPublicationAdded. It does nothing while s has no trainer
// publication: the programme exists while the trainer's does.
func (m *Manager) Attach(s *sfu.Session) {
	if !s.Live() {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if old := m.progs[s.ID()]; old != nil {
		if old.sess == s && !old.isStopping() {
			return
		}
		// A programme of an earlier incarnation of the session (closed and made
		// again) or one that is ending: a new one takes its place.
		old.stop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := newProg(m, s, cancel, slices.Clone(m.speakers[s.ID()]))
	m.progs[s.ID()] = p
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		p.run(ctx)
		m.mu.Lock()
		if m.progs[s.ID()] == p {
			delete(m.progs, s.ID())
		}
		m.mu.Unlock()
	}()
}

// SetSpeakers says which publications hold the floor in session, in grant order
// (web calls it on every floor change with floor.SitePublication(participant) of
// each speaker). The first MaxMixed of them whose audio decodes are mixed; in
// speaker mode the programme shows the camera of the last one that sends video.
func (m *Manager) SetSpeakers(session string, publications []string) {
	pubs := slices.Clone(publications)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(pubs) == 0 {
		delete(m.speakers, session)
	} else {
		m.speakers[session] = pubs
	}
	if p := m.progs[session]; p != nil {
		p.post(event{speakers: pubs, setSpeakers: true})
	}
}

// Collector exposes the metrics: lectern_programme_mixing_sessions,
// lectern_programme_mix_seconds_total, lectern_programme_switches_total{kind},
// lectern_programme_excluded_total{reason} and lectern_programme_inbox_drops_total.
func (m *Manager) Collector() prometheus.Collector { return m.metrics }

// Close stops every session's programme goroutine and ends the programme
// publications. Attach does nothing afterwards.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	for _, p := range m.progs {
		p.stop()
	}
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}
