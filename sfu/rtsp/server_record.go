package rtsp

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"

	"lectern/auth"
	"lectern/sfu"
)

// announced is a publisher's ANNOUNCE, checked: nothing is created in the session
// before RECORD, so a publisher that fails half-way leaves nothing behind.
type announced struct {
	t       target
	hub     *sfu.Session
	desc    *description.Session
	plans   []mediaPlan
	skipped []string
}

// checkAnnounce checks a publisher's ANNOUNCE (from OnRequest, before gortsplib
// looks at it): the URL, the trainer token, the session and what the SDP offers.
func (h *handler) checkAnnounce(_ *gortsplib.ServerConn, st *connState, req *base.Request) (*announced, error) {
	if req.URL == nil {
		return nil, fmt.Errorf("%w: no URL", errBadRequest)
	}
	t, err := parseTarget(req.URL.Path, req.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	if t.publication != "" {
		return nil, fmt.Errorf("%w: publish to rtsp://host/%s (the encoder becomes the session's trainer)", errNotFound, t.session)
	}
	if err := st.check(req, t, "publish", auth.RoleTrainer); err != nil {
		return nil, err
	}
	if ct := req.Header["Content-Type"]; len(ct) > 0 && !strings.HasPrefix(strings.ToLower(ct[0]), "application/sdp") {
		return nil, fmt.Errorf("%w: ANNOUNCE body is %q, want application/sdp", ErrBadSDP, truncate(ct[0], 40))
	}
	hub, err := h.s.resolve(t)
	if err != nil {
		return nil, err
	}
	desc, err := unmarshalSDP(req.Body)
	if err != nil {
		return nil, err
	}
	plans, skipped, err := planDescription(desc)
	if err != nil {
		st.log.Info("rtsp publisher refused", "session", t.session, "err", err)
		return nil, err
	}
	return &announced{t: t, hub: hub, desc: desc, plans: plans, skipped: skipped}, nil
}

// OnAnnounce implements gortsplib.ServerHandlerOnAnnounce.
func (h *handler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	st := h.state(ctx.Conn)
	a := st.announce
	if a == nil { // refused in OnRequest; OnResponse says why
		return &base.Response{StatusCode: base.StatusBadRequest}, nil
	}
	st.announce, st.announceQuery = nil, ctx.Query
	ctx.Session.SetUserData(&pubSession{a: a, log: st.log, conn: st})
	if len(a.skipped) > 0 {
		st.log.Info("rtsp publisher: media not forwarded", "session", a.t.session, "skipped", a.skipped)
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// setupRecord answers a publisher's SETUP of one announced media section; gortsplib
// matches the URL to the section. A section Lectern does not forward may be set up
// too (the encoder insists on sending it): its packets are dropped.
func (h *handler) setupRecord(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if _, ok := ctx.Session.UserData().(*pubSession); !ok {
		return errorResponse(fmt.Errorf("%w: SETUP before ANNOUNCE", errState)), nil, nil
	}
	if ctx.Transport != gortsplib.TransportTCP && h.s.udp == nil {
		return &base.Response{StatusCode: base.StatusUnsupportedTransport}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, nil, nil
}

// pubSession is the Lectern state of a publisher's gortsplib session.
type pubSession struct {
	a         *announced
	log       interface{ Info(string, ...any) }
	conn      *connState
	lease     *sfu.Lease
	media     []*ingestMedia
	teardown  atomic.Bool // TEARDOWN ended the publication (see OnRequest)
	decodeLog rateLimitedLog
}

// OnRecord implements gortsplib.ServerHandlerOnRecord: the publisher becomes the
// session's trainer: it claims the publication (replacing a previous source) and
// creates or continues its tracks.
func (h *handler) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	ps, ok := ctx.Session.UserData().(*pubSession)
	if !ok || ps.lease != nil {
		return errorResponse(fmt.Errorf("%w: RECORD before ANNOUNCE and SETUP", errState)), nil
	}
	setup := map[*description.Media]bool{}
	for _, m := range ctx.Session.SetuppedMedias() {
		setup[m] = true
	}
	desc := ctx.Session.AnnouncedDescription() // gortsplib's parse of the same SDP: same medias, in order
	var plans []mediaPlan
	for _, p := range ps.a.plans {
		if p.index < len(desc.Medias) && setup[desc.Medias[p.index]] {
			plans = append(plans, p)
		}
	}
	if len(plans) == 0 {
		return errorResponse(fmt.Errorf("%w: none of the media set up is forwarded (%s)", ErrUnsupportedCodec, strings.Join(ps.a.skipped, "; "))), nil
	}
	session := ctx.Session
	lease, err := ps.a.hub.Claim(sfu.TrainerPublication, session.Close)
	if err != nil {
		return errorResponse(err), nil
	}
	for _, plan := range plans {
		track, err := lease.Track(plan.local, plan.kind, plan.codec, nil)
		if err != nil {
			lease.Release()
			return errorResponse(err), nil
		}
		m := newIngestMedia(plan, track, session.Close)
		ps.media = append(ps.media, m)
		medi := desc.Medias[plan.index]
		for _, forma := range medi.Formats {
			if forma.PayloadType() == plan.pt {
				session.OnPacketRTP(medi, forma, func(pkt *rtp.Packet) { m.write(pkt) })
			}
		}
	}
	ps.lease = lease
	if *session.SetuppedTransport() != gortsplib.TransportTCP {
		ps.conn.nc.mode.Store(modeUDP)
	}
	ps.log.Info("rtsp publisher recording", "session", ps.a.t.session, "tracks", len(ps.media),
		"transport", session.SetuppedTransport().String())
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// stop ends the publisher's part: TEARDOWN ended the publication already; otherwise
// the connection went away (or its media stopped) and the publication pauses for
// the grace period, so the encoder may reconnect.
func (ps *pubSession) stop(err error) {
	if ps.lease == nil {
		return
	}
	var torn liberrors.ErrServerSessionTornDown
	teardown := ps.teardown.Load() || errors.As(err, &torn)
	if teardown {
		ps.lease.End()
	} else {
		ps.lease.Release()
	}
	ps.log.Info("rtsp publisher stopped", "session", ps.a.t.session, "teardown", teardown)
}

// OnDecodeError implements gortsplib.ServerHandlerOnDecodeError: packets a peer
// sends that gortsplib cannot take (an unknown payload type, a short RTCP packet)
// are counted and logged at most once a second per session, never per packet.
func (h *handler) OnDecodeError(ctx *gortsplib.ServerHandlerOnDecodeErrorCtx) {
	var lim *rateLimitedLog
	switch d := ctx.Session.UserData().(type) {
	case *pubSession:
		lim = &d.decodeLog
	case *readSession:
		lim = &d.decodeLog
	default:
		return
	}
	if n, ok := lim.tick(); ok {
		h.s.log.Debug("rtsp: undecodable packets", "err", ctx.Error, "count", n)
	}
}

// OnPacketsLost implements gortsplib.ServerHandlerOnPacketsLost (a publisher's
// sequence gaps): the tracks count losses themselves, so nothing to do but keep
// gortsplib from logging each one.
func (h *handler) OnPacketsLost(*gortsplib.ServerHandlerOnPacketsLostCtx) {}

// rateLimitedLog lets one log line through per second and counts the others.
type rateLimitedLog struct {
	at    atomic.Int64
	count atomic.Uint64
}

func (l *rateLimitedLog) tick() (uint64, bool) {
	n := l.count.Add(1)
	now := sfu.Nanotime()
	last := l.at.Load()
	if now-last < int64(time.Second) || !l.at.CompareAndSwap(last, now) {
		return n, false
	}
	return n, true
}
