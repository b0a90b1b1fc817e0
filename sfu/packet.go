package sfu

import (
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
)

// MaxPayloadSize is the largest RTP payload a track accepts. WebRTC and RTSP edges
// packetize below the path MTU, so anything larger is malformed input.
const MaxPayloadSize = 1500

// Packet is one RTP packet as a track forwards it: the header already rewritten to
// the track's continuous sequence and timestamp space, header extensions stripped
// (their ids are negotiated per connection), the payload copied into storage owned by
// the packet. Packets are shared read-only by every sink and the track's caches and
// are recycled when the last reference is released.
type Packet struct {
	Header  rtp.Header
	Payload []byte
	// KeyframeStart is true on the first packet of a video access unit that starts a
	// keyframe (SPS or IDR for H.264): a decoder can start here.
	KeyframeStart bool
	// ArrivalNanos is the monotonic clock (see [Nanotime]) when the track received it.
	ArrivalNanos int64

	refs atomic.Int32
	buf  [MaxPayloadSize]byte
}

var packetPool = sync.Pool{New: func() any { return new(Packet) }}

// newPacket returns a packet holding one reference.
func newPacket() *Packet {
	p := packetPool.Get().(*Packet)
	p.refs.Store(1)
	return p
}

// Retain adds a reference. A sink that keeps a packet beyond its WriteRTP call must
// retain it and release it when done.
func (p *Packet) Retain() { p.refs.Add(1) }

// Release drops a reference; the last one returns the packet to the pool.
func (p *Packet) Release() {
	switch n := p.refs.Add(-1); {
	case n == 0:
		p.Payload = nil
		p.KeyframeStart = false
		packetPool.Put(p)
	case n < 0:
		panic("sfu: Packet released more often than retained")
	}
}
