package rtsp

import (
	"errors"
	"sync/atomic"

	"github.com/pion/rtp"

	"lectern/sfu"
)

// ingestMedia feeds one media stream of an RTSP peer (a publisher on the server, a
// camera pulled by a source) into its session track. H.264 goes through an
// h264Bridge first; other codecs go straight to the track. It is used by one
// goroutine at a time: the connection's read loop, or the server's UDP read loop.
type ingestMedia struct {
	plan  mediaPlan
	track *sfu.Track
	h264  *h264Bridge
	pkt   rtp.Packet
	// onEnd runs (on the writing goroutine) when the track was closed: the
	// publication was removed or taken over, so the peer should be let go.
	onEnd func()
	last  atomic.Int64 // sfu.Nanotime of the last packet, for liveness checks
}

func newIngestMedia(plan mediaPlan, track *sfu.Track, onEnd func()) *ingestMedia {
	m := &ingestMedia{plan: plan, track: track, onEnd: onEnd}
	m.last.Store(sfu.Nanotime())
	if plan.codec.MimeType == sfu.MimeH264 {
		m.h264 = newH264Bridge(plan.sps, plan.pps, track.WriteRTP)
	}
	return m
}

// writeRaw takes one RTP packet as received; b is not retained.
func (m *ingestMedia) writeRaw(b []byte) {
	m.last.Store(sfu.Nanotime())
	if err := m.pkt.Unmarshal(b); err != nil {
		m.track.Stats().PacketsRejected.Add(1)
		return
	}
	m.write(&m.pkt)
}

// writeUDP implements udpMedia.
func (m *ingestMedia) writeUDP(b []byte) { m.writeRaw(b) }

func (m *ingestMedia) write(p *rtp.Packet) {
	var err error
	if m.h264 != nil {
		err = m.h264.write(p)
	} else {
		err = m.track.WriteRTP(p)
	}
	if errors.Is(err, sfu.ErrTrackClosed) && m.onEnd != nil {
		m.onEnd()
	}
}
