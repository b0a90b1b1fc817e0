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
type publisher struct {
	peer     *testpeer.Publisher
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

// play streams c in a loop until ctx is done.
func (p *publisher) play(ctx context.Context, c *clip.Clip) error {
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
// ignored).
func (p *publisher) keyframeRequests() int32 { return p.peer.PLIs.Load() }

// close ends the publication (WHIP DELETE) and the connection.
func (p *publisher) close(ctx context.Context, api *apiClient) {
	_ = api.remove(ctx, p.resource, p.token)
	p.peer.Close()
}
