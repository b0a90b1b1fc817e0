package peer

import (
	"errors"
	"io"
	"testing"

	"github.com/pion/transport/v5/packetio"
)

// TestRTCPRoutesBuffers: RTCP about an SSRC that is no downtrack's is accepted and
// dropped, and its stream's Read waits until the stream closes, then reports EOF;
// a subscriber's RTP stream (which WHEP subscribers do not send) gets a buffer that
// passes packets through as pion's own does.
func TestRTCPRoutesBuffers(t *testing.T) {
	rt := &rtcpRoutes{}
	stray := rt.buffer(packetio.RTCPBufferPacket, 1234)
	if n, err := stray.Write([]byte{0x81, 0xc9, 0, 1, 0, 0, 0, 1}); n != 8 || err != nil {
		t.Fatalf("stray RTCP write: %d, %v; want 8, nil", n, err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := stray.Read(make([]byte, 64))
		read <- err
	}()
	select {
	case err := <-read:
		t.Fatalf("Read returned %v before the stream closed", err)
	default:
	}
	if err := stray.Close(); err != nil {
		t.Fatal(err)
	}
	if err := stray.Close(); err != nil { // pion may close twice
		t.Fatal(err)
	}
	if err := <-read; !errors.Is(err, io.EOF) {
		t.Fatalf("Read after Close: %v, want EOF", err)
	}

	rtp := rt.buffer(packetio.RTPBufferPacket, 1234)
	defer rtp.Close()
	if _, err := rtp.Write([]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := rtp.Read(buf)
	if err != nil || string(buf[:n]) != "\x01\x02\x03" {
		t.Fatalf("RTP buffer read %x, %v", buf[:n], err)
	}
}
