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

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

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
	// tcpOnly: the camera's answer to a SETUP over UDP was unusable, so every
	// connection plays it over TCP (owned by run).
	tcpOnly bool

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
		if !src.tcpOnly && errors.Is(err, errUDPSetup) && src.ctx.Err() == nil {
			src.tcpOnly = true
			src.log.Info("rtsp source: the camera's answer to SETUP over UDP is unusable; playing it over TCP", "err", err)
			continue // at once: nothing says the camera is away
		}
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
	var transport *gortsplib.Transport // UDP first, then TCP
	if src.tcpOnly {
		tcp := gortsplib.TransportTCP
		transport = &tcp
	}
	c, link := newCameraClient(src.ctx, src.u, src.m.cfg, transport, src.log)
	if err := c.Start2(); err != nil {
		return false, fmt.Errorf("client: %w", err)
	}
	// Stopping the source interrupts a blocked request or the stream: Close says
	// goodbye (TEARDOWN: cameras have few session slots) and waits for the client's
	// goroutines.
	stopAbort := context.AfterFunc(src.ctx, c.Close)
	defer func() {
		stopAbort()
		c.Close()
		if lost, bad := link.lost.Load(), link.decodeErrors.Load(); lost > 0 || bad > 0 {
			src.log.Info("rtsp source: stream quality", "packets_lost", lost, "undecodable_packets", bad)
		}
	}()
	u, err := base.ParseURL(src.u.String())
	if err != nil {
		return false, fmt.Errorf("%w: the URL does not parse", ErrInvalidSource)
	}
	desc, _, err := c.Describe(u)
	if err != nil {
		return false, requestError("DESCRIBE", err)
	}
	plans, skipped, err := planDescription(desc)
	if err != nil {
		return false, err
	}
	if len(skipped) > 0 {
		src.log.Info("rtsp source: media not forwarded", "skipped", skipped)
	}
	medias := make([]*description.Media, len(plans))
	formats := make([]format.Format, len(plans))
	for i, plan := range plans {
		if medias[i], formats[i] = mediaOf(desc, plan); formats[i] == nil {
			return false, fmt.Errorf("%w: media section %d has no payload type %d", ErrBadSDP, plan.index, plan.pt)
		}
	}
	ingest, err := src.tracks(plans)
	if err != nil {
		return false, err
	}
	for i := range plans {
		if _, err := c.Setup(desc.BaseURL, medias[i], 0, 0); err != nil {
			if transport == nil && udpSetupFailed(err) {
				return false, fmt.Errorf("%w: %w", errUDPSetup, requestError("SETUP", err))
			}
			return false, requestError("SETUP", err)
		}
		c.OnPacketRTP(medias[i], formats[i], ingest[i].write)
	}
	if _, err := c.Play(nil); err != nil {
		return false, requestError("PLAY", err)
	}
	src.setState(StateLive, nil)
	src.log.Info("rtsp source live", "tracks", len(plans))
	return true, fmt.Errorf("stream: %w", c.Wait())
}

// errUDPSetup: the camera's answer to a SETUP over UDP was unusable.
var errUDPSetup = errors.New("unusable answer to SETUP over UDP")

// udpSetupFailed reports whether err, from a SETUP the client sent over UDP (it
// switches to TCP by itself when the camera answers 461 or asks for TCP), is about
// the camera's UDP answer: no server ports, a multicast or malformed Transport, or
// an error status other than the ones that would refuse TCP too.
func udpSetupFailed(err error) bool {
	var (
		noPorts  liberrors.ErrClientServerPortsNotProvided
		delivery liberrors.ErrClientTransportHeaderInvalidDelivery
		badTH    liberrors.ErrClientTransportHeaderInvalid
		status   liberrors.ErrClientBadStatusCode
	)
	switch {
	case errors.As(err, &noPorts), errors.As(err, &delivery), errors.As(err, &badTH):
		return true
	case errors.As(err, &status):
		return status.Code != base.StatusUnauthorized && status.Code != base.StatusForbidden && status.Code != base.StatusNotFound
	}
	return false
}

// mediaOf finds the media section and format a plan is about.
func mediaOf(desc *description.Session, plan mediaPlan) (*description.Media, format.Format) {
	if plan.index >= len(desc.Medias) {
		return nil, nil
	}
	m := desc.Medias[plan.index]
	for _, f := range m.Formats {
		if f.PayloadType() == plan.pt {
			return m, f
		}
	}
	return m, nil
}

// tracks claims the publication on the first connection and creates or continues its
// tracks, one per plan.
func (src *source) tracks(plans []mediaPlan) ([]*ingestMedia, error) {
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
		// Cancelling the source closes its client (connect's AfterFunc); the
		// client cannot be closed from its own callback.
		media[i] = newIngestMedia(plan, track, func() { src.cancel(errReplaced) })
	}
	return media, nil
}
