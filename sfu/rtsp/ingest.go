package rtsp

import (
	"errors"

	"github.com/pion/rtp"

	"lectern/sfu"
)

// ingestMedia feeds one media stream of an RTSP peer (a publisher on the server, a
// camera pulled by a source) into its session track. H.264 goes through an
// h264Bridge first; other codecs go straight to the track. It is used by one
// goroutine at a time: gortsplib's read loop of the peer (TCP) or its UDP listener.
type ingestMedia struct {
	plan  mediaPlan
	track *sfu.Track
	h264  *h264Bridge
	// onEnd runs (on the writing goroutine) when the track was closed: the
	// publication was removed or taken over, so the peer should be let go.
	onEnd func()
}

func newIngestMedia(plan mediaPlan, track *sfu.Track, onEnd func()) *ingestMedia {
	m := &ingestMedia{plan: plan, track: track, onEnd: onEnd}
	if plan.codec.MimeType == sfu.MimeH264 {
		m.h264 = newH264Bridge(plan.sps, plan.pps, track.WriteRTP)
	}
	return m
}

// write takes one packet as received; p is not retained.
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
