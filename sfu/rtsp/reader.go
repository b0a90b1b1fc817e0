package rtsp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"net"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"lectern/sfu"
)

// srInterval is how often a reader stream sends an RTCP sender report (RFC 3550
// §6.4.1): decoders need one per stream to synchronise audio with video.
const srInterval = 5 * time.Second

// readerStream sends one session track to one RTSP reader. It is an sfu.Queue (the
// track's sink: never blocks the publisher, drops video until the next keyframe when
// the reader falls behind) drained by its own goroutine, which rewrites the header
// (the reader's payload type and SSRC, sequence numbers continuous across drops and
// across a change of source track) and writes the packet interleaved on the RTSP
// connection or to the reader's UDP port.
type readerStream struct {
	c     *serverConn
	want  string // session track name, e.g. "trainer/video"
	mime  string
	clock uint32
	pt    uint8
	ssrc  uint32
	queue *sfu.Queue
	stats *sfu.Stats

	tcp             bool
	channel         byte         // interleaved RTP channel; RTCP is channel+1
	rtpDst, rtcpDst *net.UDPAddr // UDP destinations
	udpRTP, udpRTCP *net.UDPConn
	writeTCP        func([]byte) error
	mu              sync.Mutex // guards track, remove and rw
	track           *sfu.Track
	remove          func()
	rw              sfu.Rewriter
	buf             []byte
	pending         []byte // TCP: interleaved frames gathered for one write
	packets, octets uint32
	lastTS          uint32
	lastNanos, srAt int64
	stopped         bool
}

func newReaderStream(c *serverConn, rt readTrack, pt uint8, tr transport, stats *sfu.Stats) *readerStream {
	rs := &readerStream{
		c: c, want: rt.name, mime: rt.codec.MimeType, clock: rt.codec.ClockRate, pt: pt, ssrc: randomSSRC(),
		queue: sfu.NewQueue(sfu.QueueOptions{Size: c.s.cfg.QueueSize, Kind: rt.kind, Stats: stats}),
		stats: stats, tcp: tr.tcp, buf: make([]byte, 4+12+sfu.MaxPayloadSize),
		writeTCP: c.write,
	}
	if tr.tcp {
		rs.channel = byte(tr.interleaved[0])
		rs.pending = make([]byte, 0, maxBatch+4+12+sfu.MaxPayloadSize)
	} else {
		rs.rtpDst, rs.rtcpDst = c.udpDest(tr.clientPorts[0]), c.udpDest(tr.clientPorts[1])
		rs.udpRTP, rs.udpRTCP = c.s.udp.rtp, c.s.udp.rtcp
	}
	return rs
}

func randomSSRC() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:]) | 1
}

// attach makes t the stream's source (the first track, or the same name's track of a
// new publication). A track whose codec differs from what the reader was told is
// ignored: the reader cannot change codec mid-session.
func (rs *readerStream) attach(t *sfu.Track) {
	if t.Codec().MimeType != rs.mime || t.Codec().ClockRate != rs.clock {
		rs.c.log.Info("rtsp reader: track changed codec; not forwarded", "track", t.Name(), "codec", t.Codec().MimeType)
		return
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.track == t || rs.stopped {
		return
	}
	if rs.remove != nil {
		rs.remove()
	}
	rs.queue.MarkSwitch()
	rs.queue.SetKeyframeRequester(t.RequestKeyframe)
	rs.track = t
	rs.remove = t.AddSink(rs.queue)
}

// detach removes the stream from its track; no track will attach it again.
func (rs *readerStream) detach() {
	rs.mu.Lock()
	rs.stopped = true
	if rs.remove != nil {
		rs.remove()
		rs.remove = nil
	}
	rs.track = nil
	rs.mu.Unlock()
}

// maxBatch bounds the interleaved frames written to a TCP reader at once.
const maxBatch = 32 << 10

// run writes queued packets until ctx is done. Over TCP, the packets that are
// ready when the stream wakes up (typically a whole access unit) go out in one
// write: the system call, not the copy, is most of a reader's cost.
func (rs *readerStream) run(ctx context.Context) {
	defer rs.queue.Drain()
	for {
		item, ok := rs.queue.Next(ctx)
		if !ok {
			return
		}
		for ok {
			err := rs.send(item)
			item.Packet.Release()
			if err != nil {
				return // the connection is closing
			}
			if !rs.tcp || len(rs.pending) >= maxBatch {
				break
			}
			item, ok = rs.queue.TryNext()
		}
		if err := rs.flush(); err != nil {
			return
		}
	}
}

// flush writes the gathered TCP frames.
func (rs *readerStream) flush() error {
	if len(rs.pending) == 0 {
		return nil
	}
	err := rs.writeTCP(rs.pending)
	rs.pending = rs.pending[:0]
	return err
}

func (rs *readerStream) send(item sfu.QueueItem) error {
	p := item.Packet
	rs.mu.Lock()
	switch item.Resync {
	case sfu.ResyncDrop:
		rs.rw.ResyncSeq()
	case sfu.ResyncSwitch:
		rs.rw.Resync()
	}
	seq, ts := rs.rw.Rewrite(p.Header.SequenceNumber, p.Header.Timestamp, rs.clock, p.ArrivalNanos)
	rs.mu.Unlock()

	hdr := rtp.Header{Version: 2, Marker: p.Header.Marker, PayloadType: rs.pt, SequenceNumber: seq, Timestamp: ts, SSRC: rs.ssrc}
	frame := rs.buf[:4+12+len(p.Payload)]
	if _, err := hdr.MarshalTo(frame[4:16]); err != nil {
		return nil
	}
	copy(frame[16:], p.Payload)
	var err error
	if rs.tcp {
		frame[0], frame[1] = interleavedID, rs.channel
		binary.BigEndian.PutUint16(frame[2:4], uint16(12+len(p.Payload)))
		rs.pending = append(rs.pending, frame...)
	} else {
		_, err = rs.udpRTP.WriteToUDP(frame[4:], rs.rtpDst)
		if err != nil && !isClosedErr(err) {
			err = nil // e.g. ICMP unreachable reported late: UDP readers come and go
		}
	}
	if err != nil {
		return err
	}
	rs.packets++
	rs.octets += uint32(len(p.Payload))
	rs.lastTS, rs.lastNanos = ts, p.ArrivalNanos
	rs.stats.PacketsOut.Add(1)
	rs.stats.BytesOut.Add(uint64(len(p.Payload)))
	if now := sfu.Nanotime(); rs.srAt == 0 || now-rs.srAt >= int64(srInterval) {
		rs.srAt = now
		return rs.sendSR(now)
	}
	return nil
}

// sendSR sends a sender report mapping the stream's RTP clock to wall-clock time.
func (rs *readerStream) sendSR(now int64) error {
	rtpNow := rs.lastTS + uint32(uint64(now-rs.lastNanos)*uint64(rs.clock)/uint64(time.Second))
	sr := rtcp.SenderReport{SSRC: rs.ssrc, NTPTime: sfu.NTPTime(time.Now()), RTPTime: rtpNow, PacketCount: rs.packets, OctetCount: rs.octets}
	b, err := sr.Marshal()
	if err != nil {
		return nil
	}
	if rs.tcp {
		rs.pending = append(rs.pending, interleavedID, rs.channel+1, byte(len(b)>>8), byte(len(b)))
		rs.pending = append(rs.pending, b...)
		return nil
	}
	_, _ = rs.udpRTCP.WriteToUDP(b, rs.rtcpDst)
	return nil
}
