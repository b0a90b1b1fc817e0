package rtsp

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// TestSlowReaderRequestsKeyframe: a TCP reader that stops reading lets its write
// queue in gortsplib overflow; the server asks the publisher for a keyframe (after
// the one any new reader gets at PLAY), so the reader's picture recovers once it
// catches up, and the publisher and other readers are not held up.
func TestSlowReaderRequestsKeyframe(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.WriteTimeout = 20 * time.Second })
	var requests atomic.Int32
	video := f.trainerVideo(t, func() { requests.Add(1) })
	url := f.url(testSession, testAdmin)
	c := dialRaw(t, f.srv.Addr())
	if tc, ok := c.nc.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10) // a reader that takes little and then nothing
	}
	c.play(url)
	atPlay := requests.Load()

	// The publisher sends IDR pictures (each one a point where the reader's queue
	// may start) much faster than the reader takes them.
	ctx, cancel := context.WithTimeout(f.ctx, 15*time.Second)
	defer cancel()
	w := newH264Writer(t, video, 1100)
	for requests.Load() <= atPlay {
		if ctx.Err() != nil {
			t.Fatalf("no keyframe request after the reader fell behind (%d requests, %d at PLAY)", requests.Load(), atPlay)
		}
		if w.next()%200 == 199 {
			time.Sleep(5 * time.Millisecond) // let the feed run
		}
	}
}
