// Package testpeer provides real pion peers for tests: a WHIP-style publisher and a
// WHEP-style subscriber that talk to Lectern over 127.0.0.1, signalled through a
// function so the same peers work against the edge in-process or over HTTP.
package testpeer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"lectern/sfu"
)

// Signal sends an SDP offer and returns the answer (e.g. a WHIP/WHEP POST).
type Signal func(offer string) (answer string, err error)

// Options tune a test peer.
type Options struct {
	// Interceptors are added to the peer's chain (e.g. one that drops packets).
	Interceptors []interceptor.Factory
	// NoReplayProtection disables SRTP replay protection, for tests whose
	// interceptors drop packets after decryption and expect retransmissions of them.
	NoReplayProtection bool
	// VP8Only makes the peer offer VP8 instead of H.264 (to test refusal).
	VP8Only bool
	// simulcast registers the header extensions a simulcast sender tags its
	// packets with (NewSimulcastPublisher).
	simulcast bool
}

// NewAPI returns a pion API restricted to loopback UDP, with H.264 and Opus.
func NewAPI(o Options) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	video := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: fb}
	if o.VP8Only {
		video = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb}
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: video, PayloadType: 102}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	// Browsers accept G.711 too; a camera's PCMU audio reaches them without transcoding.
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1}, PayloadType: 0}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	if o.simulcast {
		if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
			return nil, err
		}
	}
	ir := &interceptor.Registry{}
	for _, f := range o.Interceptors {
		ir.Add(f)
	}
	if err := webrtc.ConfigureNack(m, ir); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.DisableSRTPReplayProtection(o.NoReplayProtection)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// negotiate creates the offer, waits for complete gathering, signals it and applies
// the answer.
func negotiate(pc *webrtc.PeerConnection, signal Signal) error {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("set local description: %w", err)
	}
	<-gathered
	answer, err := signal(pc.LocalDescription().SDP)
	if err != nil {
		return err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("set answer: %w", err)
	}
	return nil
}

// WaitConnected waits until pc is connected.
func WaitConnected(ctx context.Context, pc *webrtc.PeerConnection) error {
	ch := make(chan struct{})
	var once sync.Once
	check := func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(ch) })
		}
	}
	pc.OnConnectionStateChange(check)
	check(pc.ConnectionState())
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("peer did not connect: %w (state %s)", ctx.Err(), pc.ConnectionState())
	}
}

// Publisher is a pion peer sending H.264 video (optionally a second "screen" video)
// and Opus audio.
type Publisher struct {
	PC     *webrtc.PeerConnection
	Video  *webrtc.TrackLocalStaticRTP
	Screen *webrtc.TrackLocalStaticRTP
	Audio  *webrtc.TrackLocalStaticRTP
	// PLIs counts keyframe requests received from the server.
	PLIs atomic.Int32
	wg   sync.WaitGroup
}

// newPeerConnection makes a peer connection on NewAPI(o).
func newPeerConnection(o Options) (*webrtc.PeerConnection, error) {
	api, err := NewAPI(o)
	if err != nil {
		return nil, err
	}
	return api.NewPeerConnection(webrtc.Configuration{})
}

// NewPublisher connects a publisher. With screen, it sends a second video track.
func NewPublisher(ctx context.Context, o Options, screen bool, signal Signal) (*Publisher, error) {
	pc, err := newPeerConnection(o)
	if err != nil {
		return nil, err
	}
	p := &Publisher{PC: pc}
	mime := webrtc.MimeTypeH264
	if o.VP8Only {
		mime = webrtc.MimeTypeVP8
	}
	add := func(c webrtc.RTPCodecCapability, id string) (*webrtc.TrackLocalStaticRTP, error) {
		t, err := webrtc.NewTrackLocalStaticRTP(c, id, "lectern-test")
		if err != nil {
			return nil, err
		}
		tr, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, err
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			buf := make([]byte, 1500)
			for {
				n, _, err := tr.Sender().Read(buf)
				if err != nil {
					return
				}
				pkts, err := rtcp.Unmarshal(buf[:n])
				if err != nil {
					continue
				}
				for _, pkt := range pkts {
					switch pkt.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						if id == "video" {
							p.PLIs.Add(1)
						}
					}
				}
			}
		}()
		return t, nil
	}
	if p.Video, err = add(webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000}, "video"); err != nil {
		_ = pc.Close()
		return nil, err
	}
	if screen {
		if p.Screen, err = add(webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000}, "screen"); err != nil {
			_ = pc.Close()
			return nil, err
		}
	}
	if p.Audio, err = add(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio"); err != nil {
		_ = pc.Close()
		return nil, err
	}
	if err := negotiate(pc, signal); err != nil {
		p.Close()
		return nil, err
	}
	if err := WaitConnected(ctx, pc); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Close closes the connection and waits for the peer's goroutines.
func (p *Publisher) Close() {
	_ = p.PC.Close()
	p.wg.Wait()
}

// Received is what a subscriber got on one track.
type Received struct {
	mu         sync.Mutex
	Kind       webrtc.RTPCodecType
	Codec      string
	Packets    int
	Seqs       []uint16
	Keyframes  int
	FirstKey   time.Time
	LastPacket time.Time
	SSRC       uint32
	gotFirst   chan struct{}
	firstKeyCh chan struct{}
}

// Snapshot returns a copy of the counters.
func (r *Received) Snapshot() (packets, keyframes int, seqs []uint16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Packets, r.Keyframes, append([]uint16(nil), r.Seqs...)
}

// Subscriber is a pion peer receiving what the server sends.
type Subscriber struct {
	PC     *webrtc.PeerConnection
	Start  time.Time
	mu     sync.Mutex
	tracks []*Received
	byTr   map[*webrtc.RTPTransceiver]*Received
	wg     sync.WaitGroup
	trs    []*webrtc.RTPTransceiver
	onPkt  func(kind webrtc.RTPCodecType, p *rtp.Packet)
}

// NewSubscriber connects a subscriber with the given number of video and audio
// recvonly sections. onPacket (may be nil) sees every packet, on the track's
// reading goroutine.
func NewSubscriber(ctx context.Context, o Options, videos, audios int, signal Signal, onPacket func(webrtc.RTPCodecType, *rtp.Packet)) (*Subscriber, error) {
	pc, err := newPeerConnection(o)
	if err != nil {
		return nil, err
	}
	s := &Subscriber{PC: pc, byTr: map[*webrtc.RTPTransceiver]*Received{}, onPkt: onPacket}
	add := func(kind webrtc.RTPCodecType) error {
		tr, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		if err != nil {
			return err
		}
		rc := &Received{Kind: kind, gotFirst: make(chan struct{}), firstKeyCh: make(chan struct{})}
		s.trs = append(s.trs, tr)
		s.tracks = append(s.tracks, rc)
		s.byTr[tr] = rc
		return nil
	}
	for i := 0; i < videos; i++ {
		if err := add(webrtc.RTPCodecTypeVideo); err != nil {
			_ = pc.Close()
			return nil, err
		}
	}
	for i := 0; i < audios; i++ {
		if err := add(webrtc.RTPCodecTypeAudio); err != nil {
			_ = pc.Close()
			return nil, err
		}
	}
	pc.OnTrack(func(t *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		s.mu.Lock()
		var rc *Received
		for tr, r := range s.byTr {
			if tr.Receiver() == recv {
				rc = r
			}
		}
		s.mu.Unlock()
		if rc == nil {
			return
		}
		s.wg.Add(1)
		defer s.wg.Done()
		s.read(t, rc)
	})
	s.Start = time.Now()
	if err := negotiate(pc, signal); err != nil {
		_ = pc.Close()
		return nil, err
	}
	if err := WaitConnected(ctx, pc); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Subscriber) read(t *webrtc.TrackRemote, rc *Received) {
	rc.mu.Lock()
	rc.Codec = t.Codec().MimeType
	rc.SSRC = uint32(t.SSRC())
	rc.mu.Unlock()
	var once, keyOnce sync.Once
	for {
		pkt, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		now := time.Now()
		key := rc.Kind == webrtc.RTPCodecTypeVideo && sfu.H264IsKeyframe(pkt.Payload)
		rc.mu.Lock()
		rc.Packets++
		rc.Seqs = append(rc.Seqs, pkt.SequenceNumber)
		rc.LastPacket = now
		if key {
			rc.Keyframes++
			if rc.FirstKey.IsZero() {
				rc.FirstKey = now
			}
		}
		rc.mu.Unlock()
		once.Do(func() { close(rc.gotFirst) })
		if key {
			keyOnce.Do(func() { close(rc.firstKeyCh) })
		}
		if s.onPkt != nil {
			s.onPkt(rc.Kind, pkt)
		}
	}
}

// Track returns what arrived on the i-th recvonly section (videos first, then audios).
func (s *Subscriber) Track(i int) *Received { return s.tracks[i] }

// WaitPackets waits until section i has received at least n packets.
func (s *Subscriber) WaitPackets(ctx context.Context, i, n int) error {
	for {
		if p, _, _ := s.tracks[i].Snapshot(); p >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			p, _, _ := s.tracks[i].Snapshot()
			return fmt.Errorf("section %d: %d packets, want %d: %w", i, p, n, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// WaitKeyframe waits for the first keyframe packet on section i.
func (s *Subscriber) WaitKeyframe(ctx context.Context, i int) error {
	select {
	case <-s.tracks[i].firstKeyCh:
		return nil
	case <-ctx.Done():
		return errors.New("no keyframe received")
	}
}

// SendPLI asks the server for a keyframe on section i.
func (s *Subscriber) SendPLI(i int) error {
	s.tracks[i].mu.Lock()
	ssrc := s.tracks[i].SSRC
	s.tracks[i].mu.Unlock()
	return s.PC.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
}

// Close closes the connection and waits for its reading goroutines.
func (s *Subscriber) Close() {
	_ = s.PC.Close()
	s.wg.Wait()
}
