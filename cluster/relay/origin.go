package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"lectern/auth"
	"lectern/sfu"
	"lectern/sfu/peer"
)

// Limits of the origin side.
const (
	// maxOfferBytes bounds an offer: one m-line per track of a publication (at most
	// a dozen: two videos of three layers, audio and its variant) is a few KiB.
	maxOfferBytes = 64 << 10
	// maxTracks bounds the m-lines of one relay.
	maxTracks = 16
	// connectTimeout closes a relay whose connection is not up by then.
	connectTimeout = 15 * time.Second
	// queueSize is each relayed track's queue: a keyframe burst and what arrives
	// meanwhile; a relay is one consumer per edge, worth a deep queue.
	queueSize = 2048
)

// Handler is the origin side: it serves the publications of this node to other
// nodes. Close it before the edge (peer.Edge) it takes its connections from.
type Handler struct {
	cfg ServerConfig
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	outs   map[string]*outRelay
	wg     sync.WaitGroup

	bytes atomic.Uint64 // payload bytes sent over every relay
	nacks atomic.Uint64 // packets the edges asked again for
}

// NACKs returns how many packets the edges have asked to be sent again (for tests
// and metrics: an edge answers its own subscribers' NACKs from its cache).
func (h *Handler) NACKs() uint64 { return h.nacks.Load() }

// NewHandler returns the origin side's handler, to mount at /cluster/relay/ (it
// finds the session and publication after that prefix, or at the start of the path
// when mounted with the prefix stripped).
func NewHandler(cfg ServerConfig) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Handler{cfg: cfg, log: cfg.Logger.With("component", "relay"), outs: map[string]*outRelay{}}
}

// relayable reports whether a track can go over a WebRTC relay: the codecs the
// WebRTC edge negotiates, and AAC (RFC 3640, a studio encoder's over RTSP), which
// browsers do not take but both ends of a relay do: the edges' RTSP readers
// (hardware decoders, many of which play AAC and not Opus) get it as the origin's
// do, beside its Opus variant, relayed too, for the edges' WebRTC subscribers. AAC
// is negotiated only on the relay's connections (relayCodecs), with its format.
func relayable(c sfu.Codec) bool {
	if !fmtpOK(c.Fmtp) {
		return false
	}
	switch c.MimeType {
	case sfu.MimeH264:
		return c.FmtpParam("packetization-mode") == "1"
	case sfu.MimeOpus, sfu.MimePCMU, sfu.MimePCMA:
		return true
	case sfu.MimeAAC:
		return aacOK(c)
	}
	return false
}

// maxFmtp bounds a track's format parameters: an AAC config of a few bytes, H.264's
// parameter sets (an SPS of tens, at most a few hundred, bytes in base64); 16
// tracks of it still fit the track list's 64 KiB.
const maxFmtp = 2048

// fmtpOK reports whether fmtp can go into an SDP line (the relay's offer, an RTSP
// reader's DESCRIBE): bounded, printable, no line break.
func fmtpOK(fmtp string) bool {
	if len(fmtp) > maxFmtp {
		return false
	}
	for i := 0; i < len(fmtp); i++ {
		if fmtp[i] < 0x20 || fmtp[i] > 0x7e {
			return false
		}
	}
	return true
}

// aacOK reports whether an MPEG4-GENERIC codec is one the edge's RTSP readers and
// recorder can take: AAC-hbr or AAC-lbr with its size length and a config that
// parses, at a clock rate and channel count AAC has (the checks the RTSP server
// makes of a publisher's; an edge vets the origin's track list with them).
func aacOK(c sfu.Codec) bool {
	if c.ClockRate < 7350 || c.ClockRate > 96000 || c.Channels < 1 || c.Channels > 8 {
		return false
	}
	_, err := sfu.AACConfig(c.Fmtp)
	return err == nil
}

// relayCodecs returns the codecs of tracks that the nodes' WebRTC media engines do
// not have and a relay's connection must negotiate (peer.Edge.NewRelaySenderPC):
// AAC, with each track's own format.
func relayCodecs(codecs []sfu.Codec) []sfu.Codec {
	var extra []sfu.Codec
	for _, c := range codecs {
		if c.MimeType == sfu.MimeAAC { // relayMedia registers each format once
			extra = append(extra, c)
		}
	}
	return extra
}

// trackList returns the relayable tracks of p, in a stable order (by name).
func trackList(p *sfu.Publication) ([]TrackInfo, map[string]*sfu.Track) {
	tracks := p.Tracks()
	slices.SortFunc(tracks, func(a, b *sfu.Track) int { return strings.Compare(a.Name(), b.Name()) })
	var list []TrackInfo
	byName := map[string]*sfu.Track{}
	prefix := p.Name() + "/"
	for _, t := range tracks {
		if t.Closed() || !relayable(t.Codec()) {
			continue
		}
		c := t.Codec()
		local := strings.TrimPrefix(t.Name(), prefix)
		list = append(list, TrackInfo{Name: local, Kind: t.Kind().String(), Mime: c.MimeType,
			ClockRate: c.ClockRate, Channels: c.Channels, Fmtp: c.Fmtp})
		byName[local] = t
	}
	return list, byName
}

// httpError answers with a reason and logs it.
func (h *Handler) httpError(w http.ResponseWriter, r *http.Request, code int, reason string) {
	h.log.Info("relay request refused", "method", r.Method, "path", r.URL.Path, "status", code, "reason", reason)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, reason+"\n")
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, err := auth.BearerToken(r)
	if err != nil {
		h.httpError(w, r, http.StatusUnauthorized, "a node credential is required: "+err.Error())
		return
	}
	node, err := h.cfg.Issuer.VerifyNode(tok)
	if err != nil {
		h.httpError(w, r, http.StatusUnauthorized, "bad node credential: "+err.Error())
		return
	}
	path := r.URL.Path
	if i := strings.Index(path, "/cluster/relay/"); i >= 0 {
		path = path[i+len("/cluster/relay/"):]
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 {
		h.httpError(w, r, http.StatusNotFound, "want /cluster/relay/{session}/{publication}[/{relay}]")
		return
	}
	session, publication := parts[0], parts[1]
	if !auth.ValidName(session) || !auth.ValidName(publication) {
		h.httpError(w, r, http.StatusBadRequest, "session and publication must be valid names")
		return
	}
	if len(parts) == 3 {
		if r.Method != http.MethodDelete {
			w.Header().Set("Allow", http.MethodDelete)
			h.httpError(w, r, http.StatusMethodNotAllowed, "a relay resource only takes DELETE")
			return
		}
		h.delete(w, r, session, publication, parts[2])
		return
	}
	var pub *sfu.Publication
	if sess, ok := h.cfg.Registry.Lookup(session); ok {
		pub, _ = sess.Publication(publication)
	}
	if pub == nil {
		h.httpError(w, r, http.StatusNotFound, fmt.Sprintf("publication %q of session %q is not live on this node", publication, session))
		return
	}
	if pub.Relayed() {
		// A relay of a relay would hide the origin's failure from the edge; edges
		// pull from the origin.
		h.httpError(w, r, http.StatusNotFound, fmt.Sprintf("publication %q of session %q is relayed here, not its origin", publication, session))
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		list, _ := trackList(pub)
		if list == nil {
			list = []TrackInfo{}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(list)
	case http.MethodPost:
		h.post(w, r, node, session, pub)
	default:
		w.Header().Set("Allow", "GET, POST")
		h.httpError(w, r, http.StatusMethodNotAllowed, "GET the track list or POST an offer")
	}
}

// post answers an edge's offer: one recvonly m-line per track named in the
// "tracks" query parameter (comma-separated local names, in m-line order; all the
// relayable tracks, by name, when absent).
func (h *Handler) post(w http.ResponseWriter, r *http.Request, node, session string, pub *sfu.Publication) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/sdp") {
		h.httpError(w, r, http.StatusUnsupportedMediaType, "the offer must be application/sdp")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxOfferBytes+1))
	if err != nil {
		h.httpError(w, r, http.StatusBadRequest, "read offer: "+err.Error())
		return
	}
	if len(body) > maxOfferBytes {
		h.httpError(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("offer larger than %d bytes", maxOfferBytes))
		return
	}
	list, byName := trackList(pub)
	names := make([]string, 0, len(list))
	if q := r.URL.Query().Get("tracks"); q != "" {
		names = strings.Split(q, ",")
	} else {
		for _, t := range list {
			names = append(names, t.Name)
		}
	}
	if len(names) == 0 || len(names) > maxTracks {
		h.httpError(w, r, http.StatusConflict, fmt.Sprintf("%d tracks asked for, want 1..%d", len(names), maxTracks))
		return
	}
	tracks := make([]*sfu.Track, len(names))
	for i, n := range names {
		t, ok := byName[n]
		if !ok {
			h.httpError(w, r, http.StatusConflict, fmt.Sprintf("track %q is not (or no longer) a relayable track of the publication", n))
			return
		}
		tracks[i] = t
	}
	var desc sdp.SessionDescription
	if err := desc.Unmarshal(body); err != nil {
		h.httpError(w, r, http.StatusBadRequest, "offer is not SDP: "+err.Error())
		return
	}
	if len(desc.MediaDescriptions) != len(tracks) {
		h.httpError(w, r, http.StatusBadRequest, fmt.Sprintf("offer has %d media sections for %d tracks", len(desc.MediaDescriptions), len(tracks)))
		return
	}
	for i, md := range desc.MediaDescriptions {
		if md.MediaName.Media != tracks[i].Kind().String() {
			h.httpError(w, r, http.StatusBadRequest, fmt.Sprintf("media section %d is %s, track %q is %s", i, md.MediaName.Media, names[i], tracks[i].Kind()))
			return
		}
	}
	sess, _ := h.cfg.Registry.Lookup(session)
	if sess == nil {
		h.httpError(w, r, http.StatusNotFound, "session ended")
		return
	}
	o, answer, err := h.open(sess, pub.Name(), node, names, tracks, string(body))
	if err != nil {
		h.httpError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	loc := strings.TrimSuffix(r.URL.Path, "/") + "/" + o.id
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request, session, publication, id string) {
	h.mu.Lock()
	o := h.outs[id]
	h.mu.Unlock()
	if o == nil || o.session != session || o.publication != publication {
		h.httpError(w, r, http.StatusNotFound, "no such relay")
		return
	}
	o.close()
	w.WriteHeader(http.StatusNoContent)
}

// outRelay is one relay served to an edge.
type outRelay struct {
	h           *Handler
	id          string
	session     string
	publication string
	node        string
	names       []string
	started     time.Time
	pc          *webrtc.PeerConnection
	log         *slog.Logger
	senders     []*sender
	bytes       atomic.Uint64

	ctx       context.Context
	cancel    context.CancelFunc
	connected chan struct{}
	wg        sync.WaitGroup
	done      chan struct{}
}

// open builds the connection for one edge and returns its answer.
func (h *Handler) open(sess *sfu.Session, publication, node string, names []string, tracks []*sfu.Track, offer string) (*outRelay, string, error) {
	codecs := make([]sfu.Codec, len(tracks))
	for i, t := range tracks {
		codecs[i] = t.Codec()
	}
	pc, err := h.cfg.Edge.NewRelaySenderPC(relayCodecs(codecs)...)
	if err != nil {
		return nil, "", err
	}
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	ctx, cancel := context.WithCancel(context.Background())
	o := &outRelay{h: h, id: hex.EncodeToString(idb[:]), session: sess.ID(), publication: publication, node: node,
		names: names, started: time.Now(), pc: pc, ctx: ctx, cancel: cancel,
		connected: make(chan struct{}), done: make(chan struct{})}
	o.log = h.log.With("relay", o.id, "direction", "out", "session", o.session, "publication", publication, "node", node)
	fail := func(err error) (*outRelay, string, error) {
		cancel()
		_ = pc.Close()
		return nil, "", err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fail(fmt.Errorf("bad offer: %w", err))
	}
	for i, t := range tracks {
		var beside *peer.EgressSender
		if len(o.senders) > 0 {
			beside = o.senders[0].egress
		}
		s := newSender(o, t, beside)
		rs, err := pc.AddTrack(s)
		if err != nil {
			return fail(fmt.Errorf("add track %s: %w", names[i], err))
		}
		s.rtpSender = rs
		o.senders = append(o.senders, s)
	}
	// AddTrack takes the offer's sections of a kind in order; check it paired each
	// track with its own section.
	trs := pc.GetTransceivers()
	if len(trs) != len(o.senders) {
		return fail(fmt.Errorf("offer made %d transceivers for %d tracks", len(trs), len(o.senders)))
	}
	for i, tr := range trs {
		if tr.Sender() != o.senders[i].rtpSender {
			return fail(fmt.Errorf("media section %d was not paired with track %s", i, names[i]))
		}
	}
	var connOnce sync.Once
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			connOnce.Do(func() { close(o.connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			if o.ctx.Err() == nil {
				o.log.Info("relay connection ended", "state", st.String())
			}
			o.cancel()
		}
	})
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(fmt.Errorf("cannot answer the offer: %w", err))
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail(fmt.Errorf("cannot answer the offer: %w", err))
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		return fail(errors.New("ICE gathering did not complete"))
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return fail(errors.New("shutting down"))
	}
	h.outs[o.id] = o
	h.wg.Add(1)
	h.mu.Unlock()
	go o.run(sess)
	o.log.Info("relay out", "tracks", names)
	return o, pc.LocalDescription().SDP, nil
}

// run serves the relay until it ends, then cleans up.
func (o *outRelay) run(sess *sfu.Session) {
	defer o.h.wg.Done()
	defer close(o.done)
	timer := time.NewTimer(connectTimeout)
	select {
	case <-o.connected:
		timer.Stop()
	case <-timer.C:
		o.log.Warn("relay did not connect in time; closing", "timeout", connectTimeout)
		o.cancel()
	case <-o.ctx.Done():
		timer.Stop()
	}
	var stop func()
	if o.ctx.Err() == nil {
		followers := make([]*sfu.Follower, len(o.senders))
		for i, s := range o.senders {
			followers[i] = s.follow
			select {
			case <-s.bound: // pion binds an answerer's tracks in SetLocalDescription
				s.egress.Start()
			default:
				o.log.Warn("relay track not bound by the connection; not sent", "track", s.track.Name())
			}
			o.wg.Add(1)
			go func() { defer o.wg.Done(); s.rtcpLoop() }()
		}
		stop = sfu.Follow(sess, followers...)
	}
	<-o.ctx.Done()
	if stop != nil {
		stop()
	}
	_ = o.pc.Close() // ends the RTCP loops
	o.wg.Wait()
	// A turn on an egress worker now writes nothing (it checks ctx) and drains its
	// queue too; this drain covers a sender whose worker is not woken again.
	for _, s := range o.senders {
		s.queue.Drain()
	}
	o.h.mu.Lock()
	delete(o.h.outs, o.id)
	o.h.mu.Unlock()
	o.log.Info("relay out ended", "bytes", o.bytes.Load())
}

// close ends the relay and waits for it.
func (o *outRelay) close() {
	o.cancel()
	<-o.done
}

// Relays returns the relays served to other nodes.
func (h *Handler) Relays() []Info { return infoList(snapshot(&h.mu, h.outs, nil), (*outRelay).info) }

// info describes the relay (its fields are set before it is listed; bytes is
// atomic).
func (o *outRelay) info() (Info, bool) {
	return Info{Direction: "out", Session: o.session, Publication: o.publication, Peer: o.node,
		Tracks: slices.Clone(o.names), Started: o.started, Bytes: o.bytes.Load()}, true
}

// Close ends every relay served to other nodes and waits for them. Call it before
// the edge closes.
func (h *Handler) Close() error {
	for _, o := range snapshot(&h.mu, h.outs, &h.closed) {
		o.cancel()
	}
	h.wg.Wait()
	return nil
}

// sender sends one origin track to the edge: a pion TrackLocal fed by a queue that
// follows the track (exactly that track: no layer choice), written by the peer
// edge's egress workers like a subscriber's downtrack (peer.EgressSender): its
// packets leave in the workers' batched sendmmsg rounds, a video frame's packets
// as one GSO train after one wake-up, where a goroutine of its own cost a wake-up
// and a system call per packet (half the origin's CPU with two relays).
type sender struct {
	o         *outRelay
	track     *sfu.Track // the track when the relay was made: name, kind, codec
	follow    *sfu.Follower
	queue     *sfu.Queue
	egress    *peer.EgressSender
	rtpSender *webrtc.RTPSender

	bindOnce sync.Once
	bound    chan struct{}
	ssrc     uint32
	pt       uint8
	writer   webrtc.TrackLocalWriter

	mu sync.Mutex // guards rw: the egress worker and the RTCP goroutine (Invert)
	rw sfu.Rewriter

	hdr rtp.Header // the egress worker's
}

// newSender makes the sender of t; beside is the relay's first sender, whose
// egress worker the others share (nil for the first).
func newSender(o *outRelay, t *sfu.Track, beside *peer.EgressSender) *sender {
	s := &sender{o: o, track: t, bound: make(chan struct{})}
	size := queueSize
	if t.Kind() == sfu.KindAudio {
		size = queueSize / 4
	}
	s.queue = sfu.NewQueue(sfu.QueueOptions{Size: size, Kind: t.Kind(), Stats: t.Stats(), Notify: s.queued})
	s.egress = o.h.cfg.Edge.NewEgressSender(t.Kind(), s.queue, s.turn, beside)
	codec := t.Codec()
	s.follow = sfu.NewFollower(t.Name(), s.queue, func(c *sfu.Track) bool {
		// A new track of the same name with another codec (or AAC format) cannot
		// go on this m-line; the edge re-pulls when it sees the list change.
		return codec.SameFormat(c.Codec())
	})
	return s
}

// ID implements webrtc.TrackLocal.
func (s *sender) ID() string { return strings.ReplaceAll(s.track.Name(), "/", "-") }

// RID implements webrtc.TrackLocal.
func (s *sender) RID() string { return "" }

// StreamID implements webrtc.TrackLocal.
func (s *sender) StreamID() string { return "lectern-relay" }

// Kind implements webrtc.TrackLocal.
func (s *sender) Kind() webrtc.RTPCodecType {
	if s.track.Kind() == sfu.KindAudio {
		return webrtc.RTPCodecTypeAudio
	}
	return webrtc.RTPCodecTypeVideo
}

// Bind implements webrtc.TrackLocal: it takes the negotiated codec of the track's
// kind and mime type (for H.264, packetization-mode 1, the same profile preferred;
// for AAC, the track's config: one relay may carry AAC tracks of several formats).
func (s *sender) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	want := s.track.Codec()
	var chosen *webrtc.RTPCodecParameters
	for _, c := range ctx.CodecParameters() {
		if !strings.EqualFold(c.MimeType, want.MimeType) || c.ClockRate != want.ClockRate {
			continue
		}
		if want.MimeType == sfu.MimeH264 && sfu.FmtpParam(c.SDPFmtpLine, "packetization-mode") != "1" {
			continue
		}
		if want.MimeType == sfu.MimeAAC && !strings.EqualFold(sfu.FmtpParam(c.SDPFmtpLine, "config"), want.FmtpParam("config")) {
			continue
		}
		if chosen == nil || strings.EqualFold(sfu.FmtpParam(c.SDPFmtpLine, "profile-level-id"), want.FmtpParam("profile-level-id")) {
			c := c
			chosen = &c
		}
	}
	if chosen == nil {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	s.bindOnce.Do(func() {
		s.ssrc = uint32(ctx.SSRC())
		s.pt = uint8(chosen.PayloadType)
		s.writer = ctx.WriteStream()
		close(s.bound)
	})
	return *chosen, nil
}

// Unbind implements webrtc.TrackLocal.
func (s *sender) Unbind(webrtc.TrackLocalContext) error { return nil }

// queued is the queue's Notify (the egress sender is set before anything is queued).
func (s *sender) queued(item sfu.QueueItem, queued int) { s.egress.Queued(item, queued) }

// turn is the sender's turn on its egress worker: it writes up to max queued
// packets and reports whether it wrote them all (there may be more). Once the relay
// has ended it writes nothing and drains the queue. No allocation per packet: the
// header is reused and the payload written from the shared packet.
func (s *sender) turn(max int) bool {
	ctx := s.o.ctx
	stats := s.track.Stats()
	clockRate := s.track.Codec().ClockRate
	var bytes uint64
	more := true
	for range max {
		item, ok := s.queue.TryNext()
		if !ok {
			more = false
			break
		}
		p := item.Packet
		if ctx.Err() != nil {
			p.Release()
			s.queue.Drain()
			more = false
			break
		}
		s.mu.Lock()
		switch item.Resync {
		case sfu.ResyncDrop:
			s.rw.ResyncSeq()
		case sfu.ResyncSwitch:
			s.rw.Resync()
		}
		seq, ts := s.rw.Rewrite(p.Header.SequenceNumber, p.Header.Timestamp, clockRate, sfu.Nanotime())
		s.mu.Unlock()
		s.hdr = rtp.Header{Version: 2, Marker: p.Header.Marker, PayloadType: s.pt,
			SequenceNumber: seq, Timestamp: ts, SSRC: s.ssrc}
		n, err := s.writer.WriteRTP(&s.hdr, p.Payload)
		size := len(p.Payload)
		p.Release()
		if err != nil || n == 0 {
			continue // the transport is closing; ctx ends the relay
		}
		stats.PacketsOut.Add(1)
		stats.BytesOut.Add(uint64(size))
		bytes += uint64(size)
	}
	if bytes > 0 { // once per turn: the counters are shared by every relay
		s.o.bytes.Add(bytes)
		s.o.h.bytes.Add(bytes)
	}
	return more
}

// rtcpLoop answers the edge's NACKs from the track's cache and turns its PLIs and
// FIRs into (coalesced) keyframe requests of the track.
func (s *sender) rtcpLoop() {
	buf := make([]byte, 1500)
	stats := s.track.Stats()
	for {
		n, _, err := s.rtpSender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, pkt := range pkts {
			switch pkt := pkt.(type) {
			case *rtcp.TransportLayerNack:
				t := s.follow.Track()
				for _, pair := range pkt.Nacks {
					pair.Range(func(seq uint16) bool {
						s.o.h.nacks.Add(1)
						s.mu.Lock()
						in, ok := s.rw.Invert(seq)
						s.mu.Unlock()
						var p *sfu.Packet
						if ok && t != nil {
							p = t.Retransmit(in)
						}
						if p == nil {
							stats.NACKsMissed.Add(1)
							return true
						}
						if s.queue.Retransmit(p, t.Layer()) {
							stats.NACKsAnswered.Add(1)
						}
						return true
					})
				}
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if t := s.follow.Track(); t != nil {
					t.RequestKeyframe()
				}
			}
		}
	}
}
