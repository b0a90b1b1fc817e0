// Package transcode gives every audio track that browsers cannot play, or that the
// recorder cannot store — AAC from studio encoders and cameras, G.711 from cameras —
// an Opus variant in the same publication ([sfu.OpusVariant]: "trainer/audio.opus"
// beside "trainer/audio"). WebRTC subscribers play the variant instead of the
// original, the recorder stores a G.711 track through it; RTSP readers keep the
// original.
//
// G.711 is expanded and resampled from 8 to 48 kHz in Go. AAC is decoded by an
// ffmpeg process per track (Debian's ffmpeg is then a runtime dependency): a
// decoder fed by cameras and encoders of every make runs outside the server, so a
// crash or a hang of it ends one transcoding, not the server, and its lifetime is
// the track's. libavcodec through cgo would have saved the process but put a
// decoder of untrusted input in the server's address space. Both encode Opus with
// libopus (gopkg.in/hraban/opus.v2) in 20 ms frames.
//
// The publisher's read goroutine only hands packets to a transcoding's goroutine
// through a bounded queue; when it is full (the transcoder fell behind) packets are
// dropped and counted.
package transcode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

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

// queueSize bounds the packets waiting for a transcoding's goroutine: about 1.3 s
// of 20 ms G.711 packets or of AAC access units at 48 kHz.
const queueSize = 64

// maxWarned bounds the publications remembered as told that ffmpeg is missing.
const maxWarned = 4096

// Transcoder watches sessions and transcodes their audio tracks that are neither
// Opus nor playable by every consumer.
type Transcoder struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	watches sfu.Watches         // the attached sessions
	jobs    map[*sfu.Track]*job // running transcodings, by source track
	warned  map[*sfu.Publication]bool
}

// New returns a Transcoder; it starts nothing until Attach.
func New(cfg Config) *Transcoder {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Transcoder{cfg: cfg, log: log, metrics: newMetrics(), ctx: ctx, cancel: cancel,
		jobs: map[*sfu.Track]*job{}, warned: map[*sfu.Publication]bool{}}
}

// Attach transcodes the session's audio tracks, present and future, that need it.
// It is idempotent: call it on every sfu.EventPublicationAdded. It must not be
// called with sfu locks held.
func (t *Transcoder) Attach(s *sfu.Session) {
	t.watches.Add(s, func(tr *sfu.Track) { t.track(s, tr) })
}

// Detach stops watching the session for new tracks (call it when the session
// ends). Transcodings in progress go on until their tracks end.
func (t *Transcoder) Detach(s *sfu.Session) { t.watches.Remove(s) }

// Collector returns the transcoder's metrics: lectern_transcode_streams{codec}
// and lectern_transcode_errors_total{reason}.
func (t *Transcoder) Collector() prometheus.Collector { return t.metrics }

// Close stops every transcoding (their variants end), stops watching sessions,
// and waits for the goroutines and ffmpeg processes. It is idempotent.
func (t *Transcoder) Close() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.watches.Close()
	t.cancel()
	t.wg.Wait()
	return nil
}

// sourceCodec names the codecs transcoded, as the streams metric labels them; ""
// for a codec that is not.
func sourceCodec(c sfu.Codec) string {
	switch {
	case strings.EqualFold(c.MimeType, sfu.MimeAAC):
		return "aac"
	case strings.EqualFold(c.MimeType, sfu.MimePCMU):
		return "pcmu"
	case strings.EqualFold(c.MimeType, sfu.MimePCMA):
		return "pcma"
	}
	return ""
}

// track starts transcoding tr when it needs it. It runs on the goroutine that
// added the track (a publisher's, or Attach's) and must not block.
func (t *Transcoder) track(s *sfu.Session, tr *sfu.Track) {
	codec := sourceCodec(tr.Codec())
	if tr.Kind() != sfu.KindAudio || codec == "" {
		return
	}
	if _, ok := sfu.IsOpusVariant(tr.Name()); ok {
		return
	}
	pubName, local, ok := strings.Cut(tr.Name(), "/")
	if !ok {
		return
	}
	pub, ok := s.Publication(pubName)
	if !ok || !slices.Contains(pub.Tracks(), tr) {
		return // already gone
	}
	if pub.Relayed() {
		return // a copy of another node's publication: transcoded there, its variant relayed
	}
	log := t.log.With("session", s.ID(), "track", tr.Name(), "codec", tr.Codec().MimeType)

	var dec decoder
	switch codec {
	case "aac":
		f, err := parseAACFormat(tr.Codec())
		if err != nil {
			t.metrics.errors.WithLabelValues(reasonFormat).Inc()
			log.Error("audio not transcoded to Opus: browsers will not hear it", "err", err)
			return
		}
		path, err := t.ffmpegPath()
		if err != nil {
			t.metrics.errors.WithLabelValues(reasonNoFFmpeg).Inc()
			if t.warnOnce(pub) {
				log.Error("audio not transcoded to Opus: browsers will not hear this publication's AAC audio; install ffmpeg", "err", err)
			}
			return
		}
		dec = &aacDecoder{format: f, ffmpeg: path, log: log, metrics: t.metrics}
	case "pcmu", "pcma":
		if c := tr.Codec(); c.ClockRate != 8000 || c.Channels > 1 {
			t.metrics.errors.WithLabelValues(reasonFormat).Inc()
			log.Error("audio not transcoded to Opus: G.711 is 8 kHz mono", "clock_rate", c.ClockRate, "channels", c.Channels)
			return
		}
		table := &ulawTable
		if codec == "pcma" {
			table = &alawTable
		}
		dec = &g711Decoder{table: table}
	}

	t.mu.Lock()
	if t.closed || t.jobs[tr] != nil {
		t.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(t.ctx)
	j := &job{t: t, log: log, pub: pub, src: tr, codec: codec, dec: dec, ctx: ctx, cancel: cancel,
		in:      make(chan *sfu.Packet, queueSize),
		dropped: t.metrics.errors.WithLabelValues(reasonDropped)}
	t.jobs[tr] = j
	t.wg.Add(1)
	t.mu.Unlock()

	variant, err := pub.DerivedTrack(sfu.OpusVariant(local), sfu.KindAudio, OpusCodec)
	if err != nil { // the publication ended meanwhile
		t.endJob(j)
		t.wg.Done()
		return
	}
	j.variant = variant
	t.metrics.streams.WithLabelValues(codec).Inc()
	log.Info("audio transcoded to Opus for browsers and the replay", "variant", variant.Name())
	j.removeSink = tr.AddSink(j) // ends j at once when tr already ended
	go j.run()
}

// endJob forgets a job.
func (t *Transcoder) endJob(j *job) {
	j.cancel()
	t.mu.Lock()
	if t.jobs[j.src] == j {
		delete(t.jobs, j.src)
	}
	t.mu.Unlock()
}

// ffmpegPath finds the ffmpeg binary, each time: one installed while the server
// runs is used from the next track on.
func (t *Transcoder) ffmpegPath() (string, error) {
	name := t.cfg.FFmpeg
	if name == "" {
		name = "ffmpeg"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("ffmpeg (%s): %w", name, err)
	}
	return path, nil
}

// warnOnce reports whether pub has not been told yet that ffmpeg is missing.
func (t *Transcoder) warnOnce(pub *sfu.Publication) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.warned[pub] {
		return false
	}
	if len(t.warned) >= maxWarned {
		clear(t.warned)
	}
	t.warned[pub] = true
	return true
}

// decoder turns a source track's packets into 20 ms Opus frames on a variant. One
// goroutine runs it.
type decoder interface {
	// run consumes in until ctx ends or relayed reports true (checked once per
	// packet); it owns the packets it receives (releases them) and writes the
	// variant through out.
	run(ctx context.Context, in <-chan *sfu.Packet, out *opusOut, relayed func() bool) error
	// channels is the PCM channel count it hands to the encoder.
	channels() int
}

// job is one track's transcoding: a sink on the source track, a goroutine, a
// variant track.
type job struct {
	t       *Transcoder
	log     *slog.Logger
	pub     *sfu.Publication
	src     *sfu.Track
	variant *sfu.Track
	codec   string
	dec     decoder
	ctx     context.Context
	cancel  context.CancelFunc

	in         chan *sfu.Packet
	stopped    atomic.Bool
	dropped    prometheus.Counter
	removeSink func()
}

var (
	errStopped = errors.New("transcoding stopped")
	// errRelayed ends a job whose publication became a relay of another node's:
	// the relay feeds the variant from there.
	errRelayed = errors.New("publication relayed from another node")
)

// receive returns the next queued packet for a decoder's goroutine, or nil when
// ctx ends (nil error) or the publication became a relay (errRelayed).
func receive(ctx context.Context, in <-chan *sfu.Packet, relayed func() bool) (*sfu.Packet, error) {
	select {
	case <-ctx.Done():
		return nil, nil
	case p := <-in:
		if relayed() {
			p.Release()
			return nil, errRelayed
		}
		return p, nil
	}
}

// WriteRTP implements sfu.Sink: it hands the packet to the job's goroutine, or
// drops it when the queue is full. It runs on the publisher's read goroutine with
// the track's lock held: it never blocks and does not allocate.
func (j *job) WriteRTP(p *sfu.Packet) error {
	if j.stopped.Load() {
		return errStopped
	}
	p.Retain()
	select {
	case j.in <- p:
	default:
		p.Release()
		j.dropped.Inc()
	}
	return nil
}

// TrackEnded implements sfu.TrackEnder: the source ended (its publication was
// removed, or the publisher replaced it with a track of another codec), so does its
// variant, at once: a replacement's own variant may follow right after.
func (j *job) TrackEnded(*sfu.Track) {
	j.cancel()
	j.pub.RemoveDerived(j.variant)
}

// run is the job's goroutine.
func (j *job) run() {
	defer j.t.wg.Done()
	defer j.t.metrics.streams.WithLabelValues(j.codec).Dec()
	out, err := newOpusOut(j.variant, j.dec.channels())
	if err == nil {
		err = j.dec.run(j.ctx, j.in, out, j.pub.Relayed)
	}
	relayed := errors.Is(err, errRelayed)
	if err != nil && !relayed && j.ctx.Err() == nil {
		j.t.metrics.errors.WithLabelValues(reasonEncoder).Inc()
		j.log.Error("audio transcoding stopped", "err", err)
	}
	// No packet comes in after removeSink (it waits for the track's lock, under
	// which WriteRTP runs); then what is queued is released.
	j.stopped.Store(true)
	j.removeSink()
	j.t.endJob(j)
	if !relayed {
		j.pub.RemoveDerived(j.variant) // Close, or a decoder that gave up
	}
	for {
		select {
		case p := <-j.in:
			p.Release()
		default:
			return
		}
	}
}
