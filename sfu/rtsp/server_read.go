package rtsp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

	"lectern/auth"
	"lectern/sfu"
)

// readTrack is one session track offered to an RTSP reader.
type readTrack struct {
	name  string
	kind  sfu.Kind
	codec sfu.Codec // as declared to the reader (H.264 with its parameter sets)
}

// ProgrammePublication is the publication the server makes of a session's
// programme (programme.Publication): what everyone should see and hear, the
// trainer mixed with the classrooms that hold the floor.
const ProgrammePublication = "programme"

// readPlan lists the tracks a reader of t gets: the programme's picture and sound
// for /{session} (the trainer's camera and audio where the session has no
// programme with either: a server without one, or one that did not start; a
// DESCRIBE waits for one being made, awaitProgramme), every track of the
// publication (camera, screen, audio) for /{session}/{publication}, so
// /{session}/trainer is the trainer's own.
func readPlan(hub *sfu.Session, t target) ([]readTrack, error) {
	pub, locals := t.publication, []string{"video", "screen", "audio"}
	if pub == "" {
		pub, locals = sfu.TrainerPublication, []string{"video", "audio"}
		if p, ok := hub.Publication(ProgrammePublication); ok && (hasTrack(p, "video") || hasTrack(p, "audio")) {
			pub = ProgrammePublication
		}
	}
	p, ok := hub.Publication(pub)
	if !ok {
		return nil, fmt.Errorf("%w: publication %q is not live in session %q", errNotFound, pub, t.session)
	}
	tracks := p.Tracks()
	var out []readTrack
	for _, local := range locals {
		for _, tr := range tracks {
			if tr.Name() == pub+"/"+local && !tr.Closed() {
				out = append(out, readTrack{name: tr.Name(), kind: tr.Kind(), codec: readerCodec(tr)})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: publication %q of session %q has no tracks yet", errNotFound, pub, t.session)
	}
	return out, nil
}

// readerCodec is the codec a reader is told: for H.264, with the parameter sets
// (sprop-parameter-sets) from the publisher's SDP or, failing that, from the track's
// last keyframe, so decoders can start before the first in-band SPS.
func readerCodec(t *sfu.Track) sfu.Codec {
	c := t.Codec()
	if c.MimeType != sfu.MimeH264 {
		return c
	}
	sps, pps := parseSprop(sfu.FmtpParam(c.Fmtp, "sprop-parameter-sets"))
	if sps == nil || pps == nil {
		sps, pps = probeParams(t)
	}
	c.Fmtp = h264Fmtp(sfu.FmtpParam(c.Fmtp, "profile-level-id"), sps, pps)
	return c
}

// paramProbe is a sink attached for a moment to read the SPS and PPS out of a
// track's keyframe cache (the fast start replays it synchronously in AddSink).
type paramProbe struct{ sps, pps []byte }

// errProbeDone stops the cache replay once both parameter sets were seen.
var errProbeDone = errors.New("parameter sets found")

func (p *paramProbe) WriteRTP(pkt *sfu.Packet) error {
	sps, pps := sfu.H264ParameterSets(pkt.Payload)
	if sps != nil && p.sps == nil {
		p.sps = append([]byte(nil), sps...)
	}
	if pps != nil && p.pps == nil {
		p.pps = append([]byte(nil), pps...)
	}
	if p.sps != nil && p.pps != nil {
		return errProbeDone
	}
	return nil
}

func probeParams(t *sfu.Track) (sps, pps []byte) {
	p := &paramProbe{}
	remove := t.AddSink(p)
	remove()
	if p.sps == nil || p.pps == nil {
		return nil, nil
	}
	return p.sps, p.pps
}

// readerStream resolves, authenticates and finds (or makes) the publication stream
// a DESCRIBE or a reader's SETUP names. A DESCRIBE of /{session} first waits for a
// programme being made (awaitProgramme); a SETUP does not wait.
func (h *handler) readerStream(st *connState, req *base.Request, path, query string, describe bool) (*pubStream, error) {
	t, err := parseTarget(path, query)
	if err != nil {
		return nil, err
	}
	if err := st.check(req, t, "read", auth.LiveWatchRoles()...); err != nil {
		return nil, err
	}
	hub, err := h.s.resolve(t)
	if err != nil {
		return nil, err
	}
	if err := h.s.prepare(hub, t); err != nil {
		return nil, err
	}
	if describe && t.publication == "" {
		h.s.awaitProgramme(hub)
	}
	return h.s.streamFor(hub, t)
}

// prepareTimeout bounds Config.Prepare: readers such as ffmpeg give up on an
// unanswered request after about 10 s.
const prepareTimeout = 8 * time.Second

// prepare runs Config.Prepare when the publication t names is not live here.
func (s *Server) prepare(hub *sfu.Session, t target) error {
	if s.cfg.Prepare == nil {
		return nil
	}
	names := []string{t.publication}
	if t.publication == "" { // the session's default: the programme, else the trainer's
		names = []string{ProgrammePublication, sfu.TrainerPublication}
	}
	for _, name := range names {
		if _, ok := hub.Publication(name); ok {
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, prepareTimeout)
	defer cancel()
	if err := s.cfg.Prepare(ctx, t.session, t.publication); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe: the SDP of the tracks
// the URL names.
func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	st := h.state(ctx.Conn)
	ps, err := h.readerStream(st, ctx.Request, ctx.Path, ctx.Query, true)
	if err != nil {
		return errorResponse(err), nil, nil
	}
	if ctx.Query == "" {
		return &base.Response{StatusCode: base.StatusOK}, ps.stream, nil
	}
	// A token in the query: gortsplib's relative controls ("trackID=0"), resolved
	// against its Content-Base (rtsp://host/lecture?token=T/) as RFC 3986 says,
	// lose both the session's path and the query (GStreamer's rtspsrc then SETUPs
	// rtsp://host/trackID=0). Absolute controls keep them, in the form gortsplib's
	// SETUP parses (rtsp://host/lecture?token=T/trackID=0), as ffmpeg builds too.
	desc := &description.Session{Title: ps.stream.Desc.Title}
	for i, m := range ps.stream.Desc.Medias {
		desc.Medias = append(desc.Medias, &description.Media{Type: m.Type, ID: m.ID, Formats: m.Formats,
			Control: ctx.Request.URL.String() + "/trackID=" + strconv.Itoa(i)})
	}
	body, err := desc.Marshal(false)
	if err != nil {
		return &base.Response{StatusCode: base.StatusInternalServerError}, nil, fmt.Errorf("rtsp: SDP of %s: %w", ctx.Path, err)
	}
	return &base.Response{StatusCode: base.StatusOK, Body: body}, nil, nil
}

// readSession is the Lectern state of a reader's gortsplib session.
type readSession struct {
	ps         *pubStream
	releaseSub func()
	t          target
	kfAt       atomic.Int64            // sfu.Nanotime of the last keyframe request for a slow reader
	setupOn    *gortsplib.ServerStream // the stream set up on (directStream: direct)
	channels   []int                   // TCP: interleaved RTP channel per media (-1: none)
	udpDst     []*net.UDPAddr          // UDP: the reader's RTP address per media (nil: none)
	direct     *directReader
	decodeLog  rateLimitedLog
}

// OnSetup implements gortsplib.ServerHandlerOnSetup, for readers and publishers.
func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	st := h.state(ctx.Conn)
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return h.setupRecord(ctx)
	}
	if ctx.Transport != gortsplib.TransportTCP && h.s.udp == nil {
		return &base.Response{StatusCode: base.StatusUnsupportedTransport}, nil, nil
	}
	ps, err := h.readerStream(st, ctx.Request, ctx.Path, ctx.Query, false)
	if err != nil {
		return errorResponse(err), nil, nil
	}
	rs, _ := ctx.Session.UserData().(*readSession)
	switch {
	case rs == nil:
		t, _ := parseTarget(ctx.Path, ctx.Query)
		rs = &readSession{ps: ps, t: t}
		if !ps.addReader() {
			return errorResponse(fmt.Errorf("%w: the stream changed; DESCRIBE again", errNotFound)), nil, nil
		}
		ctx.Session.SetUserData(rs)
	case rs.ps != ps:
		return errorResponse(fmt.Errorf("%w: SETUP of another stream in this session", errState)), nil, nil
	}
	// Direct (directStream: the feeds send this reader's RTP themselves) unless
	// the first SETUP names no media Lectern can tell: then gortsplib writes it.
	st.setupMedia = mediaOfSetup(ctx.Request, len(ps.feeds))
	if rs.setupOn == nil {
		rs.setupOn = ps.directStream
		if st.setupMedia < 0 {
			rs.setupOn = ps.stream
			ps.streamReaders.Add(1)
		}
	}
	return &base.Response{StatusCode: base.StatusOK}, rs.setupOn, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	st := h.state(ctx.Conn)
	rs, ok := ctx.Session.UserData().(*readSession)
	if !ok {
		return errorResponse(fmt.Errorf("%w: PLAY before SETUP", errState)), nil
	}
	if rs.releaseSub == nil {
		release, err := rs.ps.hub.AddSubscriber()
		if err != nil {
			return errorResponse(err), nil
		}
		rs.releaseSub = release
		rs.ps.playing.Add(1)
		h.watchReports(ctx.Session, rs, st.log) // once: the first PLAY (reader_reports.go)
	}
	if *ctx.Session.SetuppedTransport() == gortsplib.TransportTCP {
		st.nc.mode.Store(modePlayTCP)
		if rs.direct == nil && rs.channels != nil {
			rs.direct = &directReader{c: st.nc, rs: rs, ch: rs.channels, needKey: make([]bool, len(rs.channels))}
			rs.ps.addDirect(rs.direct)
		}
	} else {
		st.nc.mode.Store(modeUDP)
		if rs.direct == nil && rs.udpDst != nil && h.s.udpBatch != nil {
			rs.direct = &directReader{rs: rs, udp: rs.udpDst, needKey: make([]bool, len(rs.udpDst))}
			rs.ps.addDirect(rs.direct)
		}
	}
	rs.ps.requestKeyframes() // a reader joining mid-GOP starts at the next keyframe: make it soon
	st.log.Info("rtsp reader playing", "session", rs.t.session, "publication", rs.t.publication,
		"transport", ctx.Session.SetuppedTransport().String())
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnPause implements gortsplib.ServerHandlerOnPause.
func (h *handler) OnPause(*gortsplib.ServerHandlerOnPauseCtx) (*base.Response, error) {
	return errorResponse(fmt.Errorf("%w: PAUSE (live sessions cannot be paused)", errNotImplemented)), nil
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose: a reader leaves
// its stream; a publisher's lease ends (TEARDOWN) or is released (the connection
// went away: the encoder may come back within the grace period).
func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	switch d := ctx.Session.UserData().(type) {
	case *readSession:
		if d.direct != nil {
			d.ps.removeDirect(d.direct)
		}
		if d.setupOn == d.ps.stream {
			d.ps.streamReaders.Add(-1)
		}
		if d.releaseSub != nil {
			d.releaseSub()
			d.ps.playing.Add(-1)
		}
		d.ps.removeReader()
	case *pubSession:
		d.stop(ctx.Error)
	}
}

// OnStreamWriteError implements gortsplib.ServerHandlerOnStreamWriteError: a
// reader's write queue overflowed (it is slower than the stream), so it lost
// packets; ask the publisher for a keyframe, at most once a second per reader, so
// its picture recovers soon.
func (h *handler) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	rs, ok := ctx.Session.UserData().(*readSession)
	if !ok {
		return
	}
	var full liberrors.ErrServerWriteQueueFull
	if !errors.As(ctx.Error, &full) {
		return
	}
	if rs.requestKeyframe() {
		rs.ps.hub.Stats().QueueDrops.Add(1)
	}
}
