package rtsp

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/pion/rtp"

	"lectern/auth"
	"lectern/sfu"
)

// rawClient speaks RTSP by hand, to send what real clients would not.
type rawClient struct {
	t    *testing.T
	nc   net.Conn
	br   *bufio.Reader
	cseq int
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// rawResponse is a response as the raw client read it (with gortsplib's parser).
type rawResponse struct {
	status int
	reason string
	header rawHeader
	body   []byte
}

// rawHeader holds response header fields; get ignores the case of names.
type rawHeader base.Header

func (h rawHeader) get(name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func (c *rawClient) do(method, url string, fields [][2]string, body string) *rawResponse {
	c.t.Helper()
	c.cseq++
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s RTSP/1.0\r\nCSeq: %d\r\n", method, url, c.cseq)
	for _, f := range fields {
		fmt.Fprintf(&b, "%s: %s\r\n", f[0], f[1])
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n" + body)
	if _, err := c.nc.Write([]byte(b.String())); err != nil {
		c.t.Fatal(err)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var res base.Response
	if err := res.Unmarshal(c.br); err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	return &rawResponse{status: int(res.StatusCode), reason: res.StatusMessage, header: rawHeader(res.Header), body: res.Body}
}

// setup sends a SETUP of url with the Transport header transport (and Session
// id, unless ""), fails the test unless it is answered 200, and returns the
// session id.
func (c *rawClient) setup(url, transport, id string) string {
	c.t.Helper()
	id, _, _ = strings.Cut(c.setupAnswer(url, transport, id).header.get("Session"), ";")
	return id
}

// setupAnswer is setup's SETUP, returning the whole answer.
func (c *rawClient) setupAnswer(url, transport, id string) *rawResponse {
	c.t.Helper()
	fields := [][2]string{{"Transport", transport}}
	if id != "" {
		fields = append(fields, [2]string{"Session", id})
	}
	res := c.do("SETUP", url, fields, "")
	if res.status != 200 {
		c.t.Fatalf("SETUP %s: %d %s", url, res.status, res.reason)
	}
	return res
}

// start sends method (PLAY or RECORD) for url in session id and fails the test
// unless it is answered 200.
func (c *rawClient) start(method, url, id string) {
	c.t.Helper()
	if res := c.do(method, url, [][2]string{{"Session", id}}, ""); res.status != 200 {
		c.t.Fatalf("%s: %d %s", method, res.status, res.reason)
	}
}

// closedWithin reports whether the server closes the connection within d (reading
// and discarding whatever it sends first).
func (c *rawClient) closedWithin(d time.Duration) bool {
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c.br)
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

const h264SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=enc\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
	"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:streamid=0\r\n" +
	"m=audio 0 RTP/AVP 14\r\na=control:streamid=1\r\n"

func TestRequestRefusals(t *testing.T) {
	f := newFixture(t, nil)
	base := "rtsp://" + f.srv.Addr() + "/"
	trainer := f.token(t, testSession, auth.RoleTrainer)
	viewer := f.token(t, testSession, auth.RoleViewer)
	other := f.token(t, "other", auth.RoleTrainer)
	sdp := [][2]string{{"Content-Type", "application/sdp"}}
	for _, tc := range []struct {
		name, method, url string
		fields            [][2]string
		body              string
		want              int
		reason            string
	}{
		{"describe without token", "DESCRIBE", base + testSession, nil, "", 401, "missing"},
		{"describe with garbage token", "DESCRIBE", base + testSession + "?token=abc", nil, "", 401, "invalid token"},
		{"describe unknown session", "DESCRIBE", base + "nope?token=" + testAdmin, nil, "", 404, "session not found"},
		{"describe token of another session", "DESCRIBE", base + testSession + "?token=" + other, nil, "", 403, "another session"},
		{"describe nothing published", "DESCRIBE", base + testSession + "?token=" + viewer, nil, "", 404, "not live"},
		{"describe bad path", "DESCRIBE", base + "a/b/c?token=" + viewer, nil, "", 404, "path"},
		{"announce as viewer", "ANNOUNCE", base + testSession + "?token=" + viewer, sdp, h264SDP, 403, "role"},
		{"announce without token", "ANNOUNCE", base + testSession, sdp, h264SDP, 401, "missing"},
		{"announce unknown session", "ANNOUNCE", base + "nope?token=" + testAdmin, sdp, h264SDP, 404, "session not found"},
		{"announce malformed sdp", "ANNOUNCE", base + testSession + "?token=" + trainer, sdp, "hello world", 400, "malformed SDP"},
		{"announce sdp without media", "ANNOUNCE", base + testSession + "?token=" + trainer, sdp, "v=0\r\ns=x\r\n", 400, "no media"},
		{"announce h265", "ANNOUNCE", base + testSession + "?token=" + trainer, sdp,
			"v=0\r\ns=x\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n", 415, "H.265 is not supported"},
		{"announce vp8 and mp3", "ANNOUNCE", base + testSession + "?token=" + trainer, sdp,
			"v=0\r\ns=x\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\nm=audio 0 RTP/AVP 14\r\n", 415, "VP8"},
		{"announce only unsupported audio", "ANNOUNCE", base + testSession + "?token=" + trainer, sdp,
			"v=0\r\ns=x\r\nm=audio 0 RTP/AVP 14\r\n", 415, "nothing usable"},
		{"announce to a publication path", "ANNOUNCE", base + testSession + "/site-a?token=" + trainer, sdp, h264SDP, 404, "publish to"},
		{"play before setup", "PLAY", base + testSession + "?token=" + viewer, nil, "", 455, ""},
		{"record before announce", "RECORD", base + testSession + "?token=" + trainer, nil, "", 455, ""},
		{"unknown method", "FROBNICATE", base + testSession, nil, "", 501, ""},
		{"unknown session id", "PLAY", base + testSession, [][2]string{{"Session", "12345"}}, "", 454, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, f.srv.Addr())
			res := c.do(tc.method, tc.url, tc.fields, tc.body)
			if res.status != tc.want || !strings.Contains(res.reason+string(res.body), tc.reason) {
				t.Fatalf("got %d %q, want %d containing %q", res.status, res.reason, tc.want, tc.reason)
			}
			if tc.want == 401 && !strings.Contains(res.header.get("WWW-Authenticate"), "Basic") {
				t.Fatal("401 without a Basic challenge")
			}
		})
	}
	if pubs := f.sess.Publications(); len(pubs) != 0 {
		t.Fatalf("refused requests left publications behind: %+v", pubs)
	}
}

// TestFFmpegRefusedH265: a real encoder publishing H.265 is told why.
func TestFFmpegRefusedH265(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	_, stderr, err := ffmpeg(ctx, t, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10", "-t", "2",
		"-c:v", "libx265", "-f", "rtsp", "-rtsp_transport", "tcp", f.url(testSession, f.token(t, testSession, auth.RoleTrainer)))
	if err == nil || !strings.Contains(stderr, "H.265 is not supported") {
		t.Fatalf("ffmpeg H.265 publish: err %v, stderr:\n%s", err, stderr)
	}
	if pubs := f.sess.Publications(); len(pubs) != 0 {
		t.Fatalf("a refused publisher left publications behind: %+v", pubs)
	}
}

// TestBadConnections: garbage, oversized input and stalled requests are closed, and
// no connection (nor goroutine, checked by TestMain) is left behind.
func TestBadConnections(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	for _, tc := range []struct {
		name string
		send string
	}{
		{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n"},
		{"http", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"stall mid request line", "DESCRIBE rtsp://x/lecture RT"},
		{"stall mid headers", "DESCRIBE rtsp://x/lecture RTSP/1.0\r\nCSeq: 1\r\n"},
		{"stall mid body", "ANNOUNCE rtsp://x/lecture RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 100\r\n\r\nv=0"},
		{"idle", ""},
		{"long line", "DESCRIBE rtsp://x/" + strings.Repeat("a", 5000) + " RTSP/1.0\r\n"},
		{"many headers", "OPTIONS * RTSP/1.0\r\n" + strings.Repeat("X-A: b\r\n", 100) + "\r\n"},
		{"huge body", "ANNOUNCE rtsp://x/lecture RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 10000000\r\n\r\n"},
		{"no cseq", "OPTIONS * RTSP/1.0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, f.srv.Addr())
			if _, err := c.nc.Write([]byte(tc.send)); err != nil {
				t.Fatal(err)
			}
			if !c.closedWithin(3 * time.Second) {
				t.Fatal("the server kept the connection open")
			}
		})
	}
	waitFor(f.ctx, t, "every connection to be gone", func() bool { return f.srv.Conns() == 0 })
}

// TestUntrackedMediaIgnored: a publisher that sends packets on channels it did not
// set up (and on the RTCP channel) keeps publishing; only its video reaches the
// track.
func TestUntrackedMediaIgnored(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.token(t, testSession, auth.RoleTrainer)
	url := "rtsp://" + f.srv.Addr() + "/" + testSession + "?token=" + tok
	c := dialRaw(t, f.srv.Addr())
	if res := c.do("ANNOUNCE", url, [][2]string{{"Content-Type", "application/sdp"}}, h264SDP); res.status != 200 {
		t.Fatalf("ANNOUNCE: %d %s", res.status, res.reason)
	}
	if pubs := f.sess.Publications(); len(pubs) != 0 {
		t.Fatal("ANNOUNCE alone created a publication")
	}
	// gortsplib wants every announced section set up; the audio one (MPEG audio,
	// not forwarded) is dropped.
	sessionID := c.setup(url+"/streamid=0", "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record", "")
	c.setup(url+"/streamid=1", "RTP/AVP/TCP;unicast;interleaved=2-3;mode=record", sessionID)
	c.start("RECORD", url, sessionID)
	frame := func(ch byte, seq uint16) []byte {
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, SSRC: 7, Marker: true},
			Payload: []byte{0x65, 0x88, 0x84, 0x00}}
		b, _ := pkt.Marshal()
		out := []byte{'$', ch, 0, 0}
		binary.BigEndian.PutUint16(out[2:], uint16(len(b)))
		return append(out, b...)
	}
	for i := range 20 {
		for _, ch := range []byte{0, 1, 2, 3, 9} {
			if _, err := c.nc.Write(frame(ch, uint16(100+i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(f.ctx, t, "the video track to get 20 packets", func() bool {
		p, ok := f.sess.Publication(sfu.TrainerPublication)
		return ok && len(p.Tracks()) == 1 && p.Tracks()[0].Packets() == 20
	})
	time.Sleep(100 * time.Millisecond)
	p, _ := f.sess.Publication(sfu.TrainerPublication)
	if n := p.Tracks()[0].Packets(); n != 20 {
		t.Fatalf("video track got %d packets, want 20", n)
	}
	// Still alive: a keep-alive is answered.
	if res := c.do("GET_PARAMETER", url, [][2]string{{"Session", sessionID}}, ""); res.status != 200 {
		t.Fatalf("GET_PARAMETER after untracked packets: %d", res.status)
	}
	// TEARDOWN ends the publication at once.
	if res := c.do("TEARDOWN", url, [][2]string{{"Session", sessionID}}, ""); res.status != 200 {
		t.Fatalf("TEARDOWN: %d", res.status)
	}
	if _, ok := f.sess.Publication(sfu.TrainerPublication); ok {
		t.Fatal("publication left after TEARDOWN")
	}
}
