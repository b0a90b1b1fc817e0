package recorder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"lectern/sfu"
	"lectern/storage"
)

// Store is what the recorder needs of an object store; [storage.Dir] and
// [storage.S3] implement it.
type Store interface {
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, storage.ObjectInfo, error)
	List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error
	DeletePrefix(ctx context.Context, prefix string) error
}

// Config configures a [Recorder]. Zero values select the documented defaults.
type Config struct {
	// Store receives the recordings. Required.
	Store Store
	// SpoolDir is the local directory where segments wait until they are stored,
	// with each recording's journal. Required; created when missing.
	SpoolDir string
	// MaxSpoolBytes bounds the spool. When a segment would exceed it, the segment is
	// dropped (counted in lectern_recording_segments_failed_total{reason="spool_full"},
	// its place kept as a gap, see Meta.LostMedia) and the live stream is unaffected. It defaults to 2 GiB: about 1.8 hours of
	// one 2.5 Mbit/s lecture without a reachable store.
	MaxSpoolBytes int64
	// SegmentDuration is the target segment length: a segment ends at the first
	// keyframe after it. It defaults to 4 s.
	SegmentDuration time.Duration
	// Settle is how long a new recording waits for all the tracks of its
	// publication (they appear one by one as their first packets arrive) before it
	// decides its renditions. It defaults to 1 s; packets meanwhile are buffered.
	Settle time.Duration
	// Title returns the title of a session for meta.json; may be nil. It runs on a
	// recording's goroutine.
	Title func(session string) string
	// RetryMin and RetryMax bound the exponential backoff between attempts to
	// store an object. They default to 500 ms and 30 s.
	RetryMin, RetryMax time.Duration
	// UploadTimeout bounds one attempt to store an object. It defaults to 60 s.
	UploadTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *Config) fill() error {
	if c.Store == nil || c.SpoolDir == "" {
		return errors.New("recorder: Store and SpoolDir are required")
	}
	if c.MaxSpoolBytes <= 0 {
		c.MaxSpoolBytes = 2 << 30
	}
	if c.SegmentDuration <= 0 {
		c.SegmentDuration = 4 * time.Second
	}
	if c.Settle <= 0 {
		c.Settle = time.Second
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 500 * time.Millisecond
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(30*time.Second, c.RetryMin)
	}
	if c.UploadTimeout <= 0 {
		c.UploadTimeout = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// pubKey identifies a publication of a live session.
type pubKey struct {
	sess *sfu.Session
	pub  string
}

// Recorder records every publication of the sessions it is attached to. Create it
// with [New]; stop it with [Recorder.Close]. Its methods are safe for concurrent use.
type Recorder struct {
	cfg       Config
	log       *slog.Logger
	metrics   *metrics
	spool     *spool
	index     *index
	downloads downloadCache
	health    health

	hard       context.Context // done on a hard stop: recordings stop where they are
	hardCancel context.CancelFunc
	recWG      sync.WaitGroup // every recording goroutine (readers, mux, uploaders)
	ixCancel   context.CancelFunc
	ixDone     chan struct{}
	ixFlush    context.Context
	watches    sfu.Watches // the attached sessions

	mu        sync.Mutex
	closed    bool
	active    map[pubKey]*recording // the recording in progress per publication
	uploaders map[string]*uploader  // by recording id, until finalised
}

// New returns a recorder storing into cfg.Store. It loads the recording index
// from the store (ctx bounds that) and resumes the work a previous run left in the
// spool: leftover segments are uploaded and interrupted recordings finalised, in
// the background. Recordings the index says are in progress but that neither the
// spool nor this process knows (their server was lost with its disk) are
// finalised from what the store holds.
func New(ctx context.Context, cfg Config) (*Recorder, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.SpoolDir, 0o755); err != nil {
		return nil, fmt.Errorf("recorder: spool: %w", err)
	}
	r := &Recorder{
		cfg: cfg, log: cfg.Logger.With("component", "recorder"), metrics: newMetrics(),
		active: map[pubKey]*recording{}, uploaders: map[string]*uploader{},
	}
	r.downloads.m = map[string]*Download{}
	r.spool = &spool{dir: cfg.SpoolDir, max: cfg.MaxSpoolBytes, m: r.metrics, log: r.log}
	r.index = newIndex(r)
	if err := r.index.load(ctx); err != nil {
		return nil, err
	}
	r.hard, r.hardCancel = context.WithCancel(context.Background())
	ixCtx, ixCancel := context.WithCancel(context.Background())
	r.ixCancel, r.ixDone, r.ixFlush = ixCancel, make(chan struct{}), context.Background()
	go func() {
		defer close(r.ixDone)
		r.index.run(ixCtx, func() context.Context { return r.ixFlush })
	}()
	if err := r.recoverSpool(); err != nil {
		r.hardCancel()
		r.recWG.Wait()
		r.ixCancel()
		<-r.ixDone
		return nil, err
	}
	r.finaliseOrphans()
	return r, nil
}

// Attach records the session's publications, present and future, until the
// recorder is closed. Calling it again for the same session does nothing. Call it
// when a session is created or when its first publication appears (e.g. from the
// registry's publication.added event); it must not be called with sfu locks held.
func (r *Recorder) Attach(sess *sfu.Session) {
	r.watches.Add(sess, func(t *sfu.Track) { r.addTrack(sess, t) })
}

// Detach stops watching the session for new tracks. Recordings in progress go on
// until their tracks end.
func (r *Recorder) Detach(sess *sfu.Session) { r.watches.Remove(sess) }

// addTrack runs on the goroutine adding the track (a publisher's): it must not
// block.
func (r *Recorder) addTrack(sess *sfu.Session, t *sfu.Track) {
	if t.Layer() > 0 {
		return // a lower simulcast layer: the recording keeps the top one
	}
	if isG711(t.Codec()) {
		r.log.Info("G.711 track recorded through its Opus variant (when transcoding is on)", "session", sess.ID(), "track", t.Name())
		return
	}
	if err := recordable(t.Codec()); err != nil {
		r.log.Warn("track not recorded", "session", sess.ID(), "track", t.Name(), "err", err)
		return
	}
	pub, local := localName(t.Name())
	if original, ok := sfu.IsOpusVariant(t.Name()); ok {
		// The Opus variant of a track (package transcode) stands in for a G.711
		// original, which fMP4 cannot hold for browsers; an AAC original is
		// recorded as it is.
		if !variantOfG711(sess, pub, original) {
			return
		}
		_, local = localName(original)
	}
	if p, ok := sess.Publication(pub); ok && p.Relayed() {
		return // a relay of another cluster node's publication: recorded there, once
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	key := pubKey{sess, pub}
	rec := r.active[key]
	if rec == nil {
		rec = newRecording(r, sess.ID(), pub, key)
		r.active[key] = rec
		r.recWG.Add(1)
		go func() {
			defer r.recWG.Done()
			rec.run()
		}()
	}
	rt := rec.newTrack(t, local)
	r.mu.Unlock()
	rec.markTrack(local, true)

	remove := t.AddSink(rt) // may end rt at once when the track is already closed
	rt.setRemove(remove)
	r.recWG.Add(1)
	go func() {
		defer r.recWG.Done()
		newTrackReader(rt, rec.in, rec.epoch, r.metrics).run(r.hard)
	}()
}

// isG711 reports whether c is G.711 (PCMU, PCMA).
func isG711(c sfu.Codec) bool {
	return strings.EqualFold(c.MimeType, sfu.MimePCMU) || strings.EqualFold(c.MimeType, sfu.MimePCMA)
}

// variantOfG711 reports whether the publication's track named original is G.711.
func variantOfG711(sess *sfu.Session, pub, original string) bool {
	p, ok := sess.Publication(pub)
	if !ok {
		return false
	}
	for _, t := range p.Tracks() {
		if t.Name() == original {
			return isG711(t.Codec())
		}
	}
	return false
}

// trackEnded accounts a track that ended or was detached.
func (r *Recorder) trackEnded(rt *recTrack) {
	rec := rt.rec
	r.mu.Lock()
	rec.live--
	if rec.live == 0 {
		rec.ending.Store(true)
		if r.active[rec.key] == rec {
			delete(r.active, rec.key)
		}
	}
	r.mu.Unlock()
	rec.markTrack(rt.local, false)
	rt.cancel()
}

// Close stops recording: every recording in progress ends (its last segment is
// written) and the recorder waits until everything spooled is stored. When ctx
// ends first, it stops at once; what was not stored stays in the spool and is
// stored by the next [New] on the same spool. Close always waits for its
// goroutines.
func (r *Recorder) Close(ctx context.Context) error {
	tracks, ok := r.shut()
	if !ok {
		return ErrClosed
	}
	for _, rt := range tracks {
		rt.detach()
	}
	done := make(chan struct{})
	go func() {
		r.recWG.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("recorder: close: %w (unstored data stays in the spool)", ctx.Err())
		r.hardCancel()
		<-done
	}
	r.hardCancel()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ctx.Err() != nil {
		fctx = ctx // no time left: do not even try
	}
	r.ixFlush = fctx
	r.ixCancel()
	<-r.ixDone
	return err
}

// shut marks the recorder closed, so that it attaches nothing more, stops
// watching its sessions and returns the tracks of the recordings in progress,
// for the caller to detach. It returns false when the recorder was closed
// already.
func (r *Recorder) shut() ([]*recTrack, bool) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, false
	}
	r.closed = true
	var tracks []*recTrack
	for _, rec := range r.active {
		tracks = append(tracks, rec.tracks...)
	}
	r.mu.Unlock()
	r.watches.Close()
	return tracks, true
}

// crash stops every goroutine at once without writing anything more, as a killed
// process would (for tests of crash recovery).
func (r *Recorder) crash() {
	tracks, _ := r.shut()
	r.hardCancel()
	for _, rt := range tracks {
		rt.detach()
	}
	r.recWG.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.ixFlush = ctx
	r.ixCancel()
	<-r.ixDone
}
