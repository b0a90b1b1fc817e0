package peer

import (
	"io"
	"sync"

	"github.com/pion/transport/v5/packetio"
	"github.com/pion/webrtc/v4"
)

// A subscriber's RTCP is handled where pion's SRTCP session delivers it, on that
// session's read goroutine, instead of being buffered per sender and read back by
// a goroutine per downtrack. pion hands each decrypted packet to a buffer per
// destination SSRC made by the SettingEngine's BufferFactory; the connection's
// factory (rtcpRoutes.buffer) makes, for a downtrack's SSRC, a sink that handles
// the packet at once. At a hundred subscribers that is two goroutine stacks, two
// 1500-byte read buffers and two packet buffers per subscriber less (~15 KB), and
// a packet no longer waits for another goroutine to be scheduled. The handling
// never blocks (it queues retransmissions and coalesces keyframe requests), so the
// session's reads are not held up; the packets of one downtrack are still handled
// by one goroutine at a time, as the retransmission state (rtxRing) requires.

// rtpBufferLimit bounds what a subscriber's RTP read stream buffers: pion's own
// default. A WHEP subscriber sends no media; this is only for one that does.
const rtpBufferLimit = 1000 * 1000

// rtcpRoutes maps a subscriber connection's sender SSRCs to their downtracks. Its
// buffer method is the BufferFactory of that connection's API (subscriberAPI):
// factories are per API, and an SSRC is only unique within one connection.
type rtcpRoutes struct {
	mu    sync.Mutex
	ssrcs []uint32
	downs []*downTrack
}

// add routes the RTCP about ssrc to d. Called for each downtrack before the
// connection is up, so before pion can ask for its buffer.
func (rt *rtcpRoutes) add(ssrc uint32, d *downTrack) {
	rt.mu.Lock()
	rt.ssrcs = append(rt.ssrcs, ssrc)
	rt.downs = append(rt.downs, d)
	rt.mu.Unlock()
}

func (rt *rtcpRoutes) lookup(ssrc uint32) *downTrack {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for i, s := range rt.ssrcs {
		if s == ssrc {
			return rt.downs[i]
		}
	}
	return nil
}

// buffer is the connection's BufferFactory: pion calls it once per SSRC and kind
// of stream, when a sender opens its RTCP stream or a packet for a new SSRC
// arrives. RTCP about a downtrack goes to its sink; RTCP about another SSRC (an
// RTX stream, a stray report) is dropped, as it was when nobody read it. RTP
// streams, which a subscriber does not send, get pion's default buffer.
func (rt *rtcpRoutes) buffer(kind packetio.BufferPacketType, ssrc uint32) io.ReadWriteCloser {
	if kind == packetio.RTCPBufferPacket {
		return &rtcpSink{d: rt.lookup(ssrc), done: make(chan struct{})}
	}
	b := packetio.NewBuffer()
	b.SetLimitSize(rtpBufferLimit)
	return rtpBuffer{b}
}

// rtcpSink is the "buffer" of one SSRC's RTCP stream: Write handles the packet.
// Nothing reads it (no RTPSender.Read); Read waits until the stream closes.
type rtcpSink struct {
	d    *downTrack // nil: the packets are dropped
	once sync.Once
	done chan struct{}
}

// Write handles one decrypted RTCP packet, on the SRTCP session's goroutine; p is
// reused by pion once it returns.
func (s *rtcpSink) Write(p []byte) (int, error) {
	if s.d != nil {
		s.d.handleRTCP(p)
	}
	return len(p), nil
}

func (s *rtcpSink) Read([]byte) (int, error) {
	<-s.done
	return 0, io.EOF
}

func (s *rtcpSink) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

// rtpBuffer is a packetio.Buffer as the io.ReadWriteCloser pion's factory returns,
// carrying the packets' attributes as pion's own buffer does.
type rtpBuffer struct{ *packetio.Buffer }

func (b rtpBuffer) Read(p []byte) (int, error) {
	n, _, err := b.Buffer.Read(p, nil)
	return n, err
}

func (b rtpBuffer) Write(p []byte) (int, error) { return b.Buffer.Write(p, nil) }

func (b rtpBuffer) ReadWithAttributes(p []byte, attrs packetio.Attributes) (int, packetio.Attributes, error) {
	return b.Buffer.Read(p, attrs)
}

func (b rtpBuffer) WriteWithAttributes(p []byte, attrs packetio.Attributes) (int, error) {
	return b.Buffer.Write(p, attrs)
}

// subscriberAPI returns the API of one WHEP connection: the subscribers' settings,
// codecs and (no) interceptors, with RTCP routed by routes. It costs a settings
// copy (~0.7 KB) per subscriber; the media engine and registry are shared (pion
// copies the media engine per connection anyway).
func (e *Edge) subscriberAPI(routes *rtcpRoutes) *webrtc.API {
	se := e.subSettings
	se.BufferFactory = routes.buffer
	return webrtc.NewAPI(webrtc.WithMediaEngine(e.subMedia), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(e.subInterceptors))
}
