package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mch264 "github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	pionnack "github.com/pion/interceptor/pkg/nack"
	"github.com/pion/webrtc/v4"

	"lectern/internal/udprelay"
	"lectern/sfu"
)

// subscriberVideoPT is the one H.264 payload type subscribers offer, so the server
// answers with it.
const subscriberVideoPT = 102

// subscriberReadBuffer is each subscriber socket's receive buffer: the tool shares
// two cores with the server, and a reader descheduled for a moment must not turn
// into loss that is not the server's.
const subscriberReadBuffer = 1 << 20

// seqCounter follows one stream's sequence numbers as the subscriber receives them
// (the server keeps them continuous per subscriber, so a gap is loss). Written by
// the stream's reading goroutine; the counters are read by anyone.
type seqCounter struct {
	packets atomic.Uint64
	lost    atomic.Int64 // numbers skipped, minus those that arrived late
	dups    atomic.Int64

	started bool
	highest uint16
}

func (c *seqCounter) add(seq uint16) {
	c.packets.Add(1)
	if !c.started {
		c.started, c.highest = true, seq
		return
	}
	switch d := seq - c.highest; {
	case d == 0:
		c.dups.Add(1)
	case d < 0x8000:
		c.lost.Add(int64(d) - 1)
		c.highest = seq
	default: // older than the highest: a late (reordered) packet we counted as lost
		c.lost.Add(-1)
	}
}

// shared is what every subscriber reports to.
type shared struct {
	sent *sendLog
	// Forwarding latency to the kernel's receive timestamp (netLatency, the
	// server's share) and to the subscriber's read after pion (latency, which adds
	// the tool's receive path), for every access unit and for keyframes (the
	// largest bursts).
	netLatency    histogram
	netKeyLatency histogram
	latency       histogram
	keyLatency    histogram
	measuring     atomic.Bool // latency samples are taken only in measurement windows
	unmatched     atomic.Uint64
	offsets       atomic.Uint64 // subscribers whose timestamps differ from the sent ones
}

// subscriber is a lean WHEP classroom: one video and one audio recvonly section, no
// interceptors (no reports, no PLIs: it relies on the server's fast start; NACKs
// only with -nack), reading raw packets into a reused buffer and parsing only the
// header.
type subscriber struct {
	pc       *webrtc.PeerConnection
	mux      ice.UDPMux
	relay    *udprelay.Relay // the subscriber's shaped link, nil without -cap
	resource string
	token    string
	node     int        // index of the node it plays from (bench.nodes)
	stamp    *stampConn // its socket, told the timestamp offset once known

	postAt   int64        // on the send log's clock
	firstAt  atomic.Int64 // first video packet
	firstKey atomic.Bool  // ... was a keyframe's
	joinedAt atomic.Int64 // first keyframe packet
	video    seqCounter
	audio    seqCounter
	// The audio's Opus frames as a listener hears them: with RED, a lost packet's
	// frame recovered from a later packet is not lost (red.go).
	frames frameTracker
	red    atomic.Bool // the server answered audio/red
	// Arrival of the latest video frame's first packet, and the longest wait between
	// two frames since the last resetGap (the adaptation run's frame gap).
	lastFrameAt atomic.Int64
	maxFrameGap atomic.Int64
	frameTS     uint32 // video reader only
	// The picture widths received (from the SPS of each keyframe), as they change:
	// which simulcast layer arrives, as the classroom sees it.
	widthMu  sync.Mutex
	widths   []widthChange
	lastSPS  []byte // video reader only
	curWidth int    // video reader only

	// Video reader goroutine only.
	cursor     sendCursor
	haveOffset bool
	tsOffset   uint32
	lastTS     uint32

	mu     sync.Mutex // guards closed against readers starting
	closed bool
	wg     sync.WaitGroup
}

// subOptions are how subscribers behave.
type subOptions struct {
	nack    bool // send NACKs, as browsers do
	reports bool // send RTCP receiver reports, as browsers do (the server's estimate needs them)
	// link, if set, puts each subscriber behind its own udprelay with this shape
	// (the server -> subscriber direction).
	link *udprelay.Shape
	// nodeLatency, if set, also takes the subscriber's forwarding latency samples
	// (kernel stamps): the figures of the node it plays from.
	nodeLatency *histogram
	// whepQuery is appended to the WHEP URL: "?placed=1" with several nodes, so
	// that a cluster node keeps the subscriber it was given rather than
	// redirecting it (placement), and the per-node figures stay true.
	whepQuery string
	// red offers audio as browsers do: red/48000/2 (blocks of Opus 111) before
	// Opus, so that the server sends RED (its frames then count as received
	// when a later packet repeats them).
	red bool
}

// newSubscriberAPI returns a pion API for one subscriber: H.264 and Opus, loopback
// UDP only through a socket of its own with a large receive buffer, and no
// interceptors unless asked (NACK generation and receiver reports, as a browser
// does).
func newSubscriberAPI(o subOptions, sh *shared) (*webrtc.API, ice.UDPMux, *stampConn, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		PayloadType: subscriberVideoPT,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, nil, nil, err
	}
	if o.red {
		// What Chromium offers for audio: red at 63 with Opus blocks. Registered
		// first, so the offer prefers it.
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mimeRED, ClockRate: 48000, Channels: 2,
				SDPFmtpLine: fmt.Sprintf("%d/%d", subscriberOpusPT, subscriberOpusPT)},
			PayloadType: subscriberREDPT,
		}, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: subscriberOpusPT,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, nil, nil, err
	}
	ir := &interceptor.Registry{} // empty: pion adds its defaults when given none
	if o.reports {
		if err := webrtc.ConfigureRTCPReports(ir); err != nil {
			return nil, nil, nil, err
		}
	}
	if o.nack {
		gen, err := pionnack.NewGeneratorInterceptor()
		if err != nil {
			return nil, nil, nil, err
		}
		m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
		ir.Add(gen)
	}
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, nil, nil, err
	}
	_ = udp.SetReadBuffer(subscriberReadBuffer)
	conn, err := newStampConn(udp, subscriberVideoPT, sh)
	if err == nil {
		conn.nodeLatency = o.nodeLatency
	}
	if err != nil {
		_ = udp.Close()
		return nil, nil, nil, err
	}
	mux := webrtc.NewICEUDPMux(nil, conn)
	se := webrtc.SettingEngine{}
	se.SetICEUDPMux(mux)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(ir)), mux, conn, nil
}

// joinSubscriber connects one subscriber: offer, WHEP POST, answer. It returns once
// the answer is applied; media (and the join time) follow.
func joinSubscriber(ctx context.Context, api *apiClient, session, token string, o subOptions, sh *shared) (*subscriber, error) {
	wapi, mux, stamp, err := newSubscriberAPI(o, sh)
	if err != nil {
		return nil, err
	}
	s := &subscriber{mux: mux, token: token, stamp: stamp}
	signal := func(offer string) (string, error) {
		answer, resource, err := api.offer(ctx, "/whep/"+session+o.whepQuery, token, offer)
		s.resource = resource
		return answer, err
	}
	if o.link != nil {
		if s.relay, err = udprelay.New(udprelay.Config{Down: *o.link}); err != nil {
			_ = mux.Close()
			return nil, err
		}
		signal = s.relay.WrapSignal(signal)
	}
	if s.pc, err = wapi.NewPeerConnection(webrtc.Configuration{}); err != nil {
		s.close(ctx, api)
		return nil, err
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := s.pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			s.close(ctx, api)
			return nil, err
		}
	}
	s.pc.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		s.wg.Add(2)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			drainRTCP(recv)
		}()
		defer s.wg.Done()
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			s.readVideo(tr, sh)
		} else {
			s.readAudio(tr, negotiatedRED(recv))
		}
	})
	offer, err := s.pc.CreateOffer(nil)
	if err != nil {
		s.close(ctx, api)
		return nil, err
	}
	gathered := webrtc.GatheringCompletePromise(s.pc)
	if err := s.pc.SetLocalDescription(offer); err != nil {
		s.close(ctx, api)
		return nil, err
	}
	<-gathered
	s.postAt = sh.sent.now()
	answer, err := signal(s.pc.LocalDescription().SDP)
	if err != nil {
		s.close(ctx, api)
		return nil, err
	}
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		s.close(ctx, api)
		return nil, fmt.Errorf("apply WHEP answer: %w", err)
	}
	return s, nil
}

// joinTime returns POST → first keyframe packet, or false before it arrived.
func (s *subscriber) joinTime() (time.Duration, bool) {
	at := s.joinedAt.Load()
	if at == 0 {
		return 0, false
	}
	return time.Duration(at - s.postAt), true
}

// firstMedia returns POST → first video packet of any kind (a diagnosis for slow
// joins: media flowed, but not from a keyframe).
func (s *subscriber) firstMedia() time.Duration {
	return time.Duration(s.firstAt.Load() - s.postAt)
}

func (s *subscriber) readVideo(tr *webrtc.TrackRemote, sh *shared) {
	buf := make([]byte, 1500)
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		now := sh.sent.now()
		h, ok := parseRTP(buf[:n])
		if !ok {
			continue
		}
		s.video.add(h.seq)
		if h.ts != s.frameTS || s.lastFrameAt.Load() == 0 {
			s.frameTS = h.ts
			if last := s.lastFrameAt.Swap(now); last != 0 && now-last > s.maxFrameGap.Load() {
				s.maxFrameGap.Store(now - last)
			}
		}
		isKey := sfu.H264IsKeyframe(h.payload)
		if isKey {
			s.noteSPS(h.payload, now)
		}
		if s.firstAt.Load() == 0 {
			s.firstKey.Store(isKey)
			s.firstAt.Store(now)
		}
		if s.joinedAt.Load() == 0 {
			if !isKey {
				continue
			}
			s.joinedAt.Store(now)
			s.findOffset(h.ts, sh)
		}
		if h.ts == s.lastTS || !s.haveOffset {
			continue
		}
		s.lastTS = h.ts
		at, key, ok := sh.sent.lookup(&s.cursor, h.ts-s.tsOffset)
		if !ok {
			sh.unmatched.Add(1)
			continue
		}
		if sh.measuring.Load() {
			d := time.Duration(now - at)
			sh.latency.add(d)
			if key {
				sh.keyLatency.add(d)
			}
		}
	}
}

// findOffset maps the subscriber's timestamps to the publisher's, from its first
// keyframe. The server rewrites timestamps only when the source changes, so the
// offset should be zero; if the keyframe's timestamp was never sent, the offset is
// taken against the last keyframe the publisher sent and counted.
func (s *subscriber) findOffset(ts uint32, sh *shared) {
	var probe sendCursor
	if _, _, ok := sh.sent.lookup(&probe, ts); ok {
		s.haveOffset = true
		return
	}
	if key, ok := sh.sent.lastKeyframe(); ok {
		s.tsOffset, s.haveOffset = ts-key, true
		sh.offsets.Add(1)
		// The kernel-stamped latency then maps this subscriber's timestamps too
		// (a relay between cluster nodes, or a new source, shifts them).
		s.stamp.setOffset(s.tsOffset)
	}
}

// readAudio counts the audio's packets and its frames; redPT is the payload type
// of audio/red if the server answered it (0 if not).
func (s *subscriber) readAudio(tr *webrtc.TrackRemote, redPT uint8) {
	s.red.Store(redPT != 0)
	buf := make([]byte, 1500)
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if h, ok := parseRTP(buf[:n]); ok {
			s.audio.add(h.seq)
			s.frames.add(h.pt, redPT, h.ts, h.payload)
		}
	}
}

// audioFramesLost returns the Opus frames lost so far after RED (the packets
// lost, without RED).
func (s *subscriber) audioFramesLost() int64 { return s.frames.framesLost(s.audio.lost.Load()) }

// mimeRED is RFC 2198's media type for audio.
const mimeRED = "audio/red"

// negotiatedRED returns the payload type of audio/red among recv's negotiated
// codecs, 0 if the answer has none.
func negotiatedRED(recv *webrtc.RTPReceiver) uint8 {
	for _, c := range recv.GetParameters().Codecs {
		if strings.EqualFold(c.MimeType, mimeRED) {
			return uint8(c.PayloadType)
		}
	}
	return 0
}

// widthChange is the picture width received from at on (UnixNano).
type widthChange struct {
	at    int64
	width int
}

// noteSPS records the picture width of a keyframe's SPS when it changes.
func (s *subscriber) noteSPS(payload []byte, now int64) {
	sps, _ := sfu.H264ParameterSets(payload)
	if sps == nil || bytes.Equal(sps, s.lastSPS) {
		return
	}
	s.lastSPS = append(s.lastSPS[:0], sps...)
	var p mch264.SPS
	if err := p.Unmarshal(sps); err != nil || p.Width() == s.curWidth {
		return
	}
	s.curWidth = p.Width()
	s.widthMu.Lock()
	s.widths = append(s.widths, widthChange{at: now, width: p.Width()})
	s.widthMu.Unlock()
}

// widthAt returns the width received at t (0 before any) and the first change
// after t for which ok returns true (at 0 if none).
func (s *subscriber) widthAt(t int64, ok func(width int) bool) (width int, first widthChange) {
	s.widthMu.Lock()
	defer s.widthMu.Unlock()
	for _, c := range s.widths {
		if c.at <= t {
			width = c.width
		} else if first.at == 0 && ok(c.width) {
			first = c
		}
	}
	return width, first
}

// resetFrameGap starts a new frame gap window at now.
func (s *subscriber) resetFrameGap(now int64) {
	s.maxFrameGap.Store(0)
	if s.lastFrameAt.Load() != 0 {
		s.lastFrameAt.Store(now)
	}
}

// frameGap returns the longest wait between video frames since resetFrameGap,
// counting the one still open at now.
func (s *subscriber) frameGap(now int64) time.Duration {
	return time.Duration(max(s.maxFrameGap.Load(), now-s.lastFrameAt.Load()))
}

// drainRTCP reads (and drops) the server's sender reports until the connection
// closes, so pion's buffers never fill.
func drainRTCP(recv *webrtc.RTPReceiver) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := recv.Read(buf); err != nil {
			return
		}
	}
}

// close says goodbye (WHEP DELETE), closes the connection and waits for the readers.
func (s *subscriber) close(ctx context.Context, api *apiClient) {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if s.resource != "" {
		_ = api.remove(ctx, s.resource, s.token)
	}
	if s.pc != nil {
		_ = s.pc.Close()
	}
	s.wg.Wait()
	_ = s.mux.Close()
	if s.relay != nil {
		_ = s.relay.Close()
	}
}
