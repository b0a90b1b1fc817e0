package rtsp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	"lectern/sfu"
)

// errReplaced ends a source whose publication another publisher claimed, or that was
// removed from the session: retrying would take it back and forth.
var errReplaced = errors.New("the publication was taken over by another publisher or removed from the session")

// source is one pull source. Its run goroutine owns the connection and the lease.
//
// Reconnection keeps the lease: when the camera drops, the publication stays with its
// tracks (the source is still configured; only Remove ends it), and the next
// connection continues the same tracks through Lease.Track, which calls
// Track.SetSource, so consumers see continuous sequence numbers and timestamps
// however long the camera was away. Releasing the lease instead would hand the
// publication to the registry's grace timer (30 s by default), shorter than a camera
// reboot or a backoff step: the trainer's publication would be removed mid-lecture,
// the session reported ended and the recording cut, for what is a known, configured
// source that will be back.
type source struct {
	m        *Sources
	id       string
	session  string
	name, as string
	pub      string
	u        *url.URL // holds credentials: never logged or returned
	redacted string
	hub      *sfu.Session
	log      *slog.Logger

	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}

	lease *sfu.Lease // owned by run; read by stop after done

	mu      sync.Mutex
	state   string
	lastErr string
	since   time.Time
}

func newSource(m *Sources, session string, spec SourceSpec, u *url.URL, pub string, hub *sfu.Session) *source {
	ctx, cancel := context.WithCancelCause(m.ctx)
	src := &source{
		m: m, id: randomHex(6), session: session, name: spec.Name, as: spec.As, pub: pub, u: u,
		redacted: redactURL(u), hub: hub, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		state: StateConnecting, since: time.Now(),
	}
	src.log = m.log.With("session", session, "source", spec.Name, "url", src.redacted)
	return src
}

func (src *source) info() SourceInfo {
	src.mu.Lock()
	defer src.mu.Unlock()
	return SourceInfo{ID: src.id, Name: src.name, As: src.as, URL: src.redacted, Publication: src.pub,
		State: src.state, LastError: src.lastErr, Since: src.since}
}

func (src *source) setState(state string, err error) {
	src.mu.Lock()
	if state != src.state {
		src.state, src.since = state, time.Now()
	}
	if err != nil {
		src.lastErr = sourceErrorText(err)
	}
	src.mu.Unlock()
}

// stop ends the source and waits for its goroutine. end: the operator removed it
// (the publication ends now); otherwise shutdown (it is released).
func (src *source) stop(end bool) {
	src.cancel(nil)
	<-src.done
	if src.lease != nil {
		if end {
			src.lease.End()
		} else {
			src.lease.Release()
		}
	}
	src.setState(StateStopped, nil)
}

// run connects, forwards and reconnects until the source is stopped or replaced.
func (src *source) run() {
	defer close(src.done)
	backoff := src.m.cfg.BackoffMin
	for {
		wasLive, err := src.connect()
		if src.ctx.Err() != nil {
			if cause := context.Cause(src.ctx); errors.Is(cause, errReplaced) {
				src.log.Info("rtsp source stopped", "reason", cause)
				src.setState(StateStopped, cause)
			}
			return
		}
		if errors.Is(err, errReplaced) || errors.Is(err, sfu.ErrSessionClosed) {
			src.log.Info("rtsp source stopped", "reason", err)
			src.setState(StateStopped, err)
			return
		}
		if wasLive {
			backoff = src.m.cfg.BackoffMin
		}
		state := StateConnecting
		if src.lease != nil {
			state = StatePaused
		}
		src.setState(state, err)
		wait := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
		src.log.Info("rtsp source down; retrying", "reason", sourceErrorText(err), "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-src.ctx.Done():
			continue // reports the cause above
		case <-time.After(wait):
		}
		backoff = min(2*backoff, src.m.cfg.BackoffMax)
	}
}

// connect plays the camera once, until it drops. wasLive says whether media flowed.
func (src *source) connect() (wasLive bool, err error) {
	cfg := src.m.cfg
	c, err := dialClient(src.ctx, src.u, cfg.Allow, cfg.TLSConfig, cfg.Timeout)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	// Stopping the source interrupts a blocked read: say goodbye (cameras have few
	// session slots), then close. Wait for that before returning.
	aborted := make(chan struct{})
	stopAbort := context.AfterFunc(src.ctx, func() {
		defer close(aborted)
		c.teardown()
		c.close()
	})
	defer func() {
		if !stopAbort() {
			<-aborted
		}
		c.close()
	}()
	desc, base, err := c.describe()
	if err != nil {
		return false, err
	}
	plans, skipped, err := planMedias(desc)
	if err != nil {
		return false, err
	}
	if len(skipped) > 0 {
		src.log.Info("rtsp source: media not forwarded", "skipped", skipped)
	}
	ingest, err := src.tracks(plans, c)
	if err != nil {
		return false, err
	}
	media := map[byte]*ingestMedia{} // by interleaved RTP channel
	for i, plan := range plans {
		ch, err := c.setup(controlURL(base, plan.control), 2*i)
		if err != nil {
			return false, err
		}
		media[byte(ch)] = ingest[i]
	}
	aggregate := controlURL(base, desc.control)
	if err := c.play(aggregate); err != nil {
		return false, err
	}
	src.setState(StateLive, nil)
	src.log.Info("rtsp source live", "tracks", len(plans))
	err = c.readFrames(func(ch byte, payload []byte) {
		if m := media[ch]; m != nil {
			m.writeRaw(payload)
		}
	})
	return true, fmt.Errorf("stream: %w", err)
}

// tracks claims the publication on the first connection and creates or continues its
// tracks, one per plan.
func (src *source) tracks(plans []mediaPlan, c *rtspClient) ([]*ingestMedia, error) {
	if src.lease == nil {
		lease, err := src.hub.Claim(src.pub, func() { src.cancel(errReplaced) })
		if err != nil {
			return nil, err
		}
		src.lease = lease
	}
	media := make([]*ingestMedia, len(plans))
	for i, plan := range plans {
		track, err := src.lease.Track(plan.local, plan.kind, plan.codec, nil)
		if errors.Is(err, sfu.ErrNotPublishing) {
			return nil, errReplaced
		}
		if err != nil {
			return nil, err
		}
		media[i] = newIngestMedia(plan, track, func() {
			src.cancel(errReplaced)
			c.close()
		})
	}
	return media, nil
}
