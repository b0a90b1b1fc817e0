package testpeer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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

	"lectern/internal/clip"
)

// SimulcastRIDs are the rids a SimulcastPublisher sends its layers with, best first
// (the h/m/l convention the edge ranks by name).
var SimulcastRIDs = []string{"h", "m", "l"}

// SimulcastClipOptions returns the clips of a studio's three simulcast layers, best
// first: 1280x720 at 2.5 Mbit/s, 640x360 at 0.8 Mbit/s and 320x180 at 0.25 Mbit/s,
// 30 fps, a keyframe every second, each d long (so they loop together). Make them
// with clip.Generate or testenv.Clip.
func SimulcastClipOptions(d time.Duration) []clip.Options {
	return []clip.Options{
		{Width: 1280, Height: 720, FPS: 30, Bitrate: 2_500_000, Duration: d, GOP: 30},
		{Width: 640, Height: 360, FPS: 30, Bitrate: 800_000, Duration: d, GOP: 30},
		{Width: 320, Height: 180, FPS: 30, Bitrate: 250_000, Duration: d, GOP: 30},
	}
}

// SimulcastOptions configure a SimulcastPublisher.
type SimulcastOptions struct {
	// Options configure the pion API (interceptors, replay protection).
	Options
	// Layers are the video clips of the layers, best first, one to three; layer i
	// is sent with rid RIDs[i]. Each is looped at its own frame rate.
	Layers []*clip.Clip
	// RIDs name the layers; default SimulcastRIDs.
	RIDs []string
	// Audio is the clip whose Opus frames are sent (looped); default Layers[0]. A
	// clip without audio sends none (the audio section is still negotiated).
	Audio *clip.Clip
	// Silent lists rids negotiated but not sent from the start (a layer that never
	// sends, or a publisher whose uplink dropped it); see SetLayerActive.
	Silent []string
	// IgnorePLI leaves keyframe requests unanswered: layers send keyframes only
	// where their clip has them. By default, like a browser's encoder, a layer
	// answers a PLI or FIR on its SSRC with a keyframe at its next frame.
	IgnorePLI bool
	// EditOffer, if set, rewrites the offer before it is signalled (tests of
	// offers the edge refuses or trims).
	EditOffer func(offer string) string
	// OnAccessUnit, if set, is called on the layer's sending goroutine after the
	// packets of each access unit were handed to pion, with the layer's rid, the
	// unit's RTP timestamp, whether it is a keyframe, and the time just before its
	// first packet was written (for latency measurement). It must not block.
	OnAccessUnit func(rid string, ts uint32, keyframe bool, sentAt time.Time)
}

// SimulcastPublisher is a pion WHIP publisher sending one H.264 video in up to
// three simulcast layers (RFC 8853: rids in a=rid/a=simulcast, the mid and
// rtp-stream-id header extensions on every packet) and Opus audio, as a browser
// studio page does. Each layer plays its own clip, with its own keyframes,
// sequence numbers and timestamps, from NewSimulcastPublisher until Close.
//
//	layers := testpeer.SimulcastClipOptions(4 * time.Second) // testenv.Clip each
//	pub, err := testpeer.NewSimulcastPublisher(ctx, testpeer.WHIPSignal(ctx, url, token),
//		testpeer.SimulcastOptions{Layers: clips})
//	defer pub.Close()
type SimulcastPublisher struct {
	PC     *webrtc.PeerConnection
	layers []*simLayer
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// simLayer is one simulcast encoding and its sending state.
type simLayer struct {
	rid     string
	track   *webrtc.TrackLocalStaticRTP
	onAU    func(rid string, ts uint32, keyframe bool, sentAt time.Time)
	fps     int
	frames  [][]rtp.Packet // packets of each access unit, without seq/ts
	keys    []bool
	active  atomic.Bool
	resume  atomic.Bool // restart at a keyframe (PLI, or after SetLayerActive)
	plis    atomic.Int64
	packets atomic.Uint64
	bytes   atomic.Uint64
}

// NewSimulcastPublisher connects a simulcast publisher through signal (e.g.
// WHIPSignal, or an in-process edge's Publish) and starts sending. It returns once
// the connection is up.
func NewSimulcastPublisher(ctx context.Context, signal Signal, o SimulcastOptions) (*SimulcastPublisher, error) {
	rids := o.RIDs
	if rids == nil {
		rids = SimulcastRIDs
	}
	if len(o.Layers) == 0 || len(o.Layers) > len(rids) {
		return nil, fmt.Errorf("testpeer: %d simulcast layers for %d rids (want 1..%d)", len(o.Layers), len(rids), len(rids))
	}
	audioClip := o.Audio
	if audioClip == nil {
		audioClip = o.Layers[0]
	}
	apiOptions := o.Options
	apiOptions.simulcast = true
	api, err := NewAPI(apiOptions)
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	p := &SimulcastPublisher{PC: pc}
	var sender *webrtc.RTPSender
	h264 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}
	for i, c := range o.Layers {
		if len(c.Video) == 0 || c.FPS <= 0 {
			_ = pc.Close()
			return nil, fmt.Errorf("testpeer: simulcast layer %d has no video", i)
		}
		track, err := webrtc.NewTrackLocalStaticRTP(h264, "video", "lectern-simulcast", webrtc.WithRTPStreamID(rids[i]))
		if err != nil {
			_ = pc.Close()
			return nil, err
		}
		l := &simLayer{rid: rids[i], track: track, fps: c.FPS, onAU: o.OnAccessUnit}
		for _, au := range c.Video {
			l.frames = append(l.frames, au.Packetize(1200))
			l.keys = append(l.keys, au.Keyframe)
		}
		l.active.Store(!slices.Contains(o.Silent, rids[i]))
		p.layers = append(p.layers, l)
		if i == 0 {
			tr, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
			if err != nil {
				_ = pc.Close()
				return nil, fmt.Errorf("testpeer: add simulcast transceiver: %w", err)
			}
			sender = tr.Sender()
		} else if err := sender.AddEncoding(track); err != nil {
			_ = pc.Close()
			return nil, fmt.Errorf("testpeer: add simulcast encoding %q: %w", rids[i], err)
		}
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "lectern-simulcast")
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	audioTr, err := pc.AddTransceiverFromTrack(audio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	edit := signal
	if o.EditOffer != nil {
		edit = func(offer string) (string, error) { return signal(o.EditOffer(offer)) }
	}
	if err := negotiate(pc, edit); err != nil {
		_ = pc.Close()
		return nil, err
	}
	if err := WaitConnected(ctx, pc); err != nil {
		_ = pc.Close()
		return nil, err
	}
	// pion does not tag a simulcast sender's packets: each carries the section's mid
	// and its rid (RFC 8852), set once on the frames' packet templates.
	var midID, ridID uint8
	for _, ext := range sender.GetParameters().HeaderExtensions {
		switch ext.URI {
		case sdp.SDESMidURI:
			midID = uint8(ext.ID)
		case sdp.SDESRTPStreamIDURI:
			ridID = uint8(ext.ID)
		}
	}
	if midID == 0 || ridID == 0 {
		_ = pc.Close()
		return nil, errors.New("testpeer: the answer negotiates no mid or rtp-stream-id header extension: the server does not take simulcast")
	}
	mid := ""
	for _, tr := range pc.GetTransceivers() {
		if tr.Sender() == sender {
			mid = tr.Mid()
		}
	}
	for _, l := range p.layers {
		for _, frame := range l.frames {
			for k := range frame {
				if err := frame[k].Header.SetExtension(midID, []byte(mid)); err != nil {
					_ = pc.Close()
					return nil, fmt.Errorf("testpeer: mid extension: %w", err)
				}
				if err := frame[k].Header.SetExtension(ridID, []byte(l.rid)); err != nil {
					_ = pc.Close()
					return nil, fmt.Errorf("testpeer: rid extension: %w", err)
				}
			}
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	for _, l := range p.layers {
		p.wg.Add(2)
		go func() { defer p.wg.Done(); l.readRTCP(sender, !o.IgnorePLI) }()
		go func() { defer p.wg.Done(); l.run(runCtx) }()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := audioTr.Sender().Read(buf); err != nil {
				return
			}
		}
	}()
	if len(audioClip.Audio) > 0 {
		player, err := clip.NewPlayer(audioClip, clip.PlayOptions{Loop: true, WriteAudio: audio.WriteRTP})
		if err != nil {
			p.Close()
			return nil, err
		}
		p.wg.Add(1)
		go func() { defer p.wg.Done(); _ = player.Run(runCtx) }()
	}
	return p, nil
}

// readRTCP reads the RTCP of one encoding: PLIs and FIRs ask for a keyframe.
func (l *simLayer) readRTCP(sender *webrtc.RTPSender, answer bool) {
	for {
		pkts, _, err := sender.ReadSimulcastRTCP(l.rid)
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				l.plis.Add(1)
				if answer {
					l.resume.Store(true)
				}
			}
		}
	}
}

// run sends the layer's frames at its frame rate until ctx is done, looping the
// clip with continuous sequence numbers and timestamps. An inactive layer sends
// nothing, but its clock goes on; it resumes at a keyframe.
func (l *simLayer) run(ctx context.Context) {
	period := time.Second / time.Duration(l.fps)
	timer := time.NewTimer(0)
	defer timer.Stop()
	seq, tsBase := uint16(rand.Uint32()), rand.Uint32()
	next := time.Now()
	var pkt rtp.Packet
	wasActive := true
	for frame, i := 0, 0; ; frame, i = frame+1, (i+1)%len(l.frames) {
		if d := time.Until(next); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return
		} else if d < -time.Second {
			next = time.Now() // far behind (a stalled machine): do not burst to catch up
		}
		next = next.Add(period)
		active := l.active.Load()
		if !active {
			wasActive = false
			continue
		}
		if !wasActive {
			l.resume.Store(true)
			wasActive = true
		}
		if l.resume.Swap(false) && !l.keys[i] {
			i = l.nextKeyframe(i)
		}
		ts := tsBase + uint32(int64(frame)*90000/int64(l.fps))
		sentAt := time.Now()
		for k := range l.frames[i] {
			pkt = l.frames[i][k]
			pkt.SequenceNumber = seq
			pkt.Timestamp = ts
			seq++
			if err := l.track.WriteRTP(&pkt); err != nil {
				if errors.Is(err, io.ErrClosedPipe) {
					return
				}
				continue
			}
			l.packets.Add(1)
			l.bytes.Add(uint64(len(pkt.Payload)))
		}
		if l.onAU != nil {
			l.onAU(l.rid, ts, l.keys[i], sentAt)
		}
	}
}

// nextKeyframe returns the index of the first keyframe at or after i (wrapping).
func (l *simLayer) nextKeyframe(i int) int {
	for k := range l.frames {
		if j := (i + k) % len(l.frames); l.keys[j] {
			return j
		}
	}
	return i
}

func (p *SimulcastPublisher) layer(rid string) *simLayer {
	for _, l := range p.layers {
		if l.rid == rid {
			return l
		}
	}
	return nil
}

// SetLayerActive starts or stops sending the layer rid (as a browser drops its
// upper layers when its uplink cannot carry them); a restarted layer begins with a
// keyframe. Unknown rids are ignored.
func (p *SimulcastPublisher) SetLayerActive(rid string, on bool) {
	if l := p.layer(rid); l != nil {
		l.active.Store(on)
	}
}

// PLIs returns the keyframe requests (PLI and FIR) received for layer rid.
func (p *SimulcastPublisher) PLIs(rid string) int64 {
	if l := p.layer(rid); l != nil {
		return l.plis.Load()
	}
	return 0
}

// Sent returns the RTP packets and payload bytes layer rid has sent.
func (p *SimulcastPublisher) Sent(rid string) (packets, bytes uint64) {
	if l := p.layer(rid); l != nil {
		return l.packets.Load(), l.bytes.Load()
	}
	return 0, 0
}

// Close stops sending, closes the connection and waits for the publisher's
// goroutines.
func (p *SimulcastPublisher) Close() {
	if p.cancel != nil {
		p.cancel()
	}
	_ = p.PC.Close()
	p.wg.Wait()
}

// WHIPSignal returns a Signal that POSTs the offer to a WHIP (or WHEP) endpoint url
// with a bearer token and returns the answer; any status but 201 is an error
// carrying the response body (the server's reason).
func WHIPSignal(ctx context.Context, url, token string) Signal {
	return func(offer string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(offer))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/sdp")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", fmt.Errorf("POST %s: %w", url, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return "", fmt.Errorf("POST %s: read answer: %w", url, err)
		}
		if resp.StatusCode != http.StatusCreated {
			return "", fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return string(body), nil
	}
}
