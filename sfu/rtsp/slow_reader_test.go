package rtsp

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/sfu"
)

// TestSlowReaderRequestsKeyframe: a TCP reader that stops reading lets its write
// queue in gortsplib overflow; the server asks the publisher for a keyframe (after
// the one any new reader gets at PLAY), so the reader's picture recovers once it
// catches up, and the publisher and other readers are not held up.
func TestSlowReaderRequestsKeyframe(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.WriteTimeout = 20 * time.Second })
	lease, err := f.sess.Claim(sfu.TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int32
	video, err := lease.Track("video", sfu.KindVideo, sfu.Codec{MimeType: sfu.MimeH264, ClockRate: 90000,
		Fmtp: "packetization-mode=1;profile-level-id=42e01f"}, func() { requests.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	url := f.url(testSession, testAdmin)
	c := dialRaw(t, f.srv.Addr())
	if tc, ok := c.nc.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10) // a reader that takes little and then nothing
	}
	if res := c.do("DESCRIBE", url, nil, ""); res.status != 200 {
		t.Fatalf("DESCRIBE: %d %s", res.status, res.reason)
	}
	c.start("PLAY", url, c.setup(url+"/trackID=0", "RTP/AVP/TCP;unicast;interleaved=0-1", ""))
	atPlay := requests.Load()

	// The publisher sends IDR pictures (each one a point where the reader's queue
	// may start) much faster than the reader takes them.
	ctx, cancel := context.WithTimeout(f.ctx, 15*time.Second)
	defer cancel()
	payload := make([]byte, 1100)
	payload[0] = 0x65
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 1, Marker: true}, Payload: payload}
	for i := 0; requests.Load() <= atPlay; i++ {
		if ctx.Err() != nil {
			t.Fatalf("no keyframe request after the reader fell behind (%d requests, %d at PLAY)", requests.Load(), atPlay)
		}
		pkt.SequenceNumber, pkt.Timestamp = uint16(i), uint32(i)*3000
		if err := video.WriteRTP(&pkt); err != nil {
			t.Fatal(err)
		}
		if i%200 == 199 {
			time.Sleep(5 * time.Millisecond) // let the feed run
		}
	}
}
