package main

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/pion/rtp"

	"lectern/internal/clip"
	"lectern/internal/testpeer"
	"lectern/sfu"
)

// publisher is the trainer: one WHIP connection streaming a clip in a loop. Like an
// RTSP camera it ignores keyframe requests (it counts them): keyframes come every GOP
// whatever the server asks, so joiners depend on the server's keyframe cache.
//
// With -simulcast it is instead a studio page: three H.264 layers (testpeer's
// SimulcastPublisher, each layer its own clip), answering keyframe requests per
// layer as a browser's encoder does, so the server can switch subscribers' layers.
type publisher struct {
	peer     *testpeer.Publisher
	sim      *testpeer.SimulcastPublisher
	resource string
	token    string
	sent     *sendLog

	packets atomic.Uint64 // video and audio packets handed to pion
	bytes   atomic.Uint64 // their payload bytes

	// Playing goroutine only.
	started bool
	lastTS  uint32
	keyAU   bool
}

// startPublisher connects the publisher over WHIP.
func startPublisher(ctx context.Context, api *apiClient, session, token string, sent *sendLog) (*publisher, error) {
	p := &publisher{token: token, sent: sent}
	signal := func(offer string) (string, error) {
		answer, resource, err := api.offer(ctx, "/whip/"+session, token, offer)
		p.resource = resource
		return answer, err
	}
	peer, err := testpeer.NewPublisher(ctx, testpeer.Options{}, false, signal)
	if err != nil {
		_ = api.remove(context.WithoutCancel(ctx), p.resource, token)
		return nil, err
	}
	p.peer = peer
	return p, nil
}

// startSimulcastPublisher connects a three-layer publisher over WHIP; it sends from
// then on (play only waits).
func startSimulcastPublisher(ctx context.Context, api *apiClient, session, token string, sent *sendLog, layers []*clip.Clip) (*publisher, error) {
	p := &publisher{token: token, sent: sent}
	signal := func(offer string) (string, error) {
		answer, resource, err := api.offer(ctx, "/whip/"+session, token, offer)
		p.resource = resource
		return answer, err
	}
	sim, err := testpeer.NewSimulcastPublisher(ctx, signal, testpeer.SimulcastOptions{Layers: layers})
	if err != nil {
		_ = api.remove(context.WithoutCancel(ctx), p.resource, token)
		return nil, err
	}
	p.sim = sim
	return p, nil
}

// sentCounts returns the packets and payload bytes sent: video and audio, or
// with simulcast the top layer's video only (what a subscriber on it gets, less
// audio).
func (p *publisher) sentCounts() (packets, bytes uint64) {
	if p.sim != nil {
		return p.sim.Sent(testpeer.SimulcastRIDs[0])
	}
	return p.packets.Load(), p.bytes.Load()
}

// play streams c in a loop until ctx is done (a simulcast publisher sends by
// itself: play waits).
func (p *publisher) play(ctx context.Context, c *clip.Clip) error {
	if p.sim != nil {
		<-ctx.Done()
		return nil
	}
	err := c.Play(ctx, clip.PlayOptions{Loop: true, WriteVideo: p.writeVideo, WriteAudio: p.writeAudio})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// writeVideo notes when each access unit's first packet is handed to pion (the
// start of its forwarding latency), then sends the packet.
func (p *publisher) writeVideo(pkt *rtp.Packet) error {
	if !p.started || pkt.Timestamp != p.lastTS {
		p.started, p.lastTS = true, pkt.Timestamp
		p.keyAU = false
		p.sent.record(pkt.Timestamp, false)
	}
	if !p.keyAU && sfu.H264IsKeyframe(pkt.Payload) {
		p.keyAU = true
		p.sent.markKeyframe()
	}
	p.packets.Add(1)
	p.bytes.Add(uint64(len(pkt.Payload)))
	return p.peer.Video.WriteRTP(pkt)
}

func (p *publisher) writeAudio(pkt *rtp.Packet) error {
	p.packets.Add(1)
	p.bytes.Add(uint64(len(pkt.Payload)))
	return p.peer.Audio.WriteRTP(pkt)
}

// keyframeRequests returns how many PLI/FIR the server sent (and the publisher
// ignored; a simulcast publisher answers them).
func (p *publisher) keyframeRequests() int32 {
	if p.sim != nil {
		var n int64
		for _, rid := range testpeer.SimulcastRIDs {
			n += p.sim.PLIs(rid)
		}
		return int32(n)
	}
	return p.peer.PLIs.Load()
}

// close ends the publication (WHIP DELETE) and the connection.
func (p *publisher) close(ctx context.Context, api *apiClient) {
	_ = api.remove(ctx, p.resource, p.token)
	if p.sim != nil {
		p.sim.Close()
		return
	}
	p.peer.Close()
}
