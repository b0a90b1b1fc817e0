package rtsp

import (
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtp"
)

// TestSetupWithoutTrackID: a reader whose first SETUP names no track (the
// stream's URL with a trailing slash, as ffmpeg sends for MPEG-TS: gortsplib
// takes it for the first media) and whose second
// names trackID=1 gets each packet of each media once, with the SSRC its SETUP
// answers gave. Such a reader was written by gortsplib for the first media and,
// once its second SETUP had taught the feeds gortsplib's SSRC, by the feeds too
// for the second: every audio packet twice, and direct readers' audio under an
// SSRC their own SETUP had not given.
func TestSetupWithoutTrackID(t *testing.T) {
	f := newFixture(t, nil)
	_, video, audio := f.trainerVideoAudio(t)
	vw := newH264Writer(t, video, 300) // every packet a keyframe
	ap := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 2}, Payload: make([]byte, 80)}
	write := func(i uint16) {
		t.Helper()
		vw.write(uint32(i))
		ap.SequenceNumber, ap.Timestamp = i, uint32(i)*960
		binary.BigEndian.PutUint32(ap.Payload[1:5], uint32(i))
		if err := audio.WriteRTP(&ap); err != nil {
			t.Fatal(err)
		}
	}
	write(0) // the keyframe cache, for DESCRIBE

	url := f.url(testSession, testAdmin)
	// play plays both media, the first set up with firstURL, and returns the
	// reader and the SSRCs its SETUP answers gave.
	play := func(firstURL string) (c *rawClient, video, audio uint32) {
		t.Helper()
		c = dialRaw(t, f.srv.Addr())
		c.describe(url)
		id, video := setupSSRC(t, c, firstURL, "RTP/AVP/TCP;unicast;interleaved=0-1", "")
		_, audio = setupSSRC(t, c, url+"/trackID=1", "RTP/AVP/TCP;unicast;interleaved=2-3", id)
		c.start("PLAY", url, id)
		return c, video, audio
	}
	// A direct reader first (trackID=0 and 1), then the one under test.
	direct, dSSRC, dAudioSSRC := play(url + "/trackID=0")
	c, videoSSRC, audioSSRC := play(url + "/")
	waitFor(f.ctx, t, "both readers to play", func() bool { return f.sess.Subscribers() == 2 })

	const packets = 50
	for i := uint16(1); i <= packets; i++ {
		write(i)
		time.Sleep(2 * time.Millisecond)
	}
	write(packets + 1) // the end mark
	for _, r := range []struct {
		name       string
		c          *rawClient
		video, aud uint32
	}{{"direct reader", direct, dSSRC, dAudioSSRC}, {"reader without trackID", c, videoSSRC, audioSSRC}} {
		seen := map[[2]uint16]int{}
		for done := 0; done < 2; {
			ch, p := readFrame(t, r.c)
			if ch%2 == 1 {
				continue // RTCP
			}
			want := map[byte]uint32{0: r.video, 2: r.aud}[ch]
			if p.SSRC != want {
				t.Fatalf("%s: channel %d packet SSRC %08x, its SETUP answer said %08x", r.name, ch, p.SSRC, want)
			}
			n := uint16(packetTag(p))
			seen[[2]uint16{uint16(ch), n}]++
			if seen[[2]uint16{uint16(ch), n}] > 1 {
				t.Fatalf("%s: packet %d of channel %d arrived twice", r.name, n, ch)
			}
			if n == packets+1 {
				done++
			}
		}
		for _, ch := range []uint16{0, 2} {
			for n := uint16(1); n <= packets; n++ {
				if seen[[2]uint16{ch, n}] != 1 {
					t.Fatalf("%s: packet %d of channel %d arrived %d times", r.name, n, ch, seen[[2]uint16{ch, n}])
				}
			}
		}
	}
}

// setupSSRC sends a SETUP like rawClient.setup and returns the session id and
// the SSRC the answer's Transport gives.
func setupSSRC(t *testing.T, c *rawClient, url, transport, id string) (string, uint32) {
	t.Helper()
	res := c.setupAnswer(url, transport, id)
	var th headers.Transport
	if err := th.Unmarshal(base.HeaderValue{res.header.get("Transport")}); err != nil || th.SSRC == nil {
		t.Fatalf("SETUP %s: Transport %q has no SSRC (%v)", url, res.header.get("Transport"), err)
	}
	if id == "" {
		id, _, _ = strings.Cut(res.header.get("Session"), ";")
	}
	return id, *th.SSRC
}

// readFrame reads one interleaved frame: its channel and, for an even channel,
// its RTP packet.
func readFrame(t *testing.T, c *rawClient) (byte, rtp.Packet) {
	t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		t.Fatalf("reading frame header: %v", err)
	}
	if hdr[0] != '$' {
		t.Fatalf("not an interleaved frame: % x", hdr)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[2:4]))
	if _, err := io.ReadFull(c.br, body); err != nil {
		t.Fatalf("reading frame: %v", err)
	}
	var p rtp.Packet
	if hdr[1]%2 == 0 {
		if err := p.Unmarshal(body); err != nil {
			t.Fatalf("RTP packet on channel %d: %v", hdr[1], err)
		}
	}
	return hdr[1], p
}
