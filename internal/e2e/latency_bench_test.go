package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/auth"
	"lectern/internal/clip"
	"lectern/internal/testpeer"
	"lectern/sfu"
)

// The latency benchmarks answer issue 4's speed question: the latency Lectern adds
// from an RTSP publisher to a WebRTC subscriber, and from a WHIP publisher to an
// RTSP reader, on 127.0.0.1 (target p50 ≤ 5 ms), with no jitter buffer on the
// receiving side (pion's ReadRTP and a raw RTSP/TCP reader hand packets over as
// they arrive).
//
// The publisher sends synthetic H.264 at 30 fps (a 25 kB keyframe a second, 5 kB
// deltas, packetized at 1200 bytes), each access unit's slice tagged with its index
// so the receiver can tell which access unit a packet belongs to whatever the
// server did to sequence numbers and timestamps. A packet's latency is its arrival
// time at the receiver minus the time the publisher started writing its access unit
// to the socket (one write for RTSP, consecutive WriteRTP calls for WHIP). b.N is
// the number of packets measured, after a one-second warm-up; p50-ms and p99-ms are
// reported.
//
//	go test -run '^$' -bench 'RTSPPublishToWebRTC|WHIPToRTSPReader' -benchtime 600x ./internal/e2e/
const (
	latFPS       = 30
	latGOP       = 30    // access units per keyframe
	latKeySize   = 25000 // bytes of IDR slice
	latDeltaSize = 5000  // bytes of non-IDR slice
	latMTU       = 1200
	latWarmup    = latFPS // access units sent before measuring
	latClockStep = 90000 / latFPS
)

// BenchmarkRTSPPublishToWebRTC: an RTSP publisher (ANNOUNCE, SETUP over TCP
// interleaved, RECORD, with a trainer token) to a pion WHEP subscriber of the
// trainer's camera, screen and audio.
func BenchmarkRTSPPublishToWebRTC(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := newStack(b)
	lat := &latencies{}

	subscribe(ctx, b, s, func(p *rtp.Packet) { lat.add(p.Timestamp, p.Payload, time.Now()) })

	pub := dialRTSP(b, s.rtsp.Addr())
	defer pub.close()
	base := "rtsp://" + s.rtsp.Addr() + "/" + testSession
	sdp := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=latency\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42c01e\r\na=control:trackID=0\r\n"
	pub.mustDo(b, "ANNOUNCE", s.rtspURL(benchToken(b, s, auth.RoleTrainer)), [][2]string{{"Content-Type", "application/sdp"}}, []byte(sdp))
	pub.mustDo(b, "SETUP", base+"/trackID=0", [][2]string{{"Transport", "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"}}, nil)
	pub.mustDo(b, "RECORD", base, [][2]string{{"Range", "npt=0.000-"}}, nil)

	lat.setFrom(latWarmup)
	var frame []byte
	b.ResetTimer()
	runPaced(ctx, b, lat, func(i int) error {
		frame = frame[:0]
		for _, p := range accessUnit(i) {
			raw, err := p.Marshal()
			if err != nil {
				return err
			}
			frame = append(frame, '$', 0, byte(len(raw)>>8), byte(len(raw)))
			frame = append(frame, raw...)
		}
		lat.sent(i, time.Now())
		_, err := pub.nc.Write(frame)
		return err
	})
	b.StopTimer()
	lat.report(b)
}

// BenchmarkWHIPToRTSPReader: a pion WHIP publisher (the trainer's camera and
// audio) to an RTSP reader of rtsp://host/{session} (DESCRIBE, SETUP over TCP
// interleaved, PLAY, with a viewer token).
func BenchmarkWHIPToRTSPReader(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := newStack(b)
	lat := &latencies{from: -1}

	sess := s.reg.Session(testSession)
	pub, err := testpeer.NewPublisher(ctx, testpeer.Options{}, false, func(offer string) (string, error) {
		_, answer, err := s.edge.Publish(sess, sfu.TrainerPublication, offer)
		return answer, err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pub.Close)

	// The publisher streams from now on; the reader needs its track to DESCRIBE.
	pubCtx, stopPub := context.WithCancel(ctx)
	pubDone := make(chan error, 1)
	go func() {
		pubDone <- runPaced(pubCtx, nil, lat, func(i int) error {
			pkts := accessUnit(i)
			lat.sent(i, time.Now())
			for j := range pkts {
				if err := pub.Video.WriteRTP(&pkts[j]); err != nil {
					return err
				}
			}
			return nil
		})
	}()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		stopPub()
		return <-pubDone
	}
	defer func() { _ = stop() }()

	rd := dialRTSP(b, s.rtsp.Addr())
	defer rd.close()
	url := s.rtspURL(benchToken(b, s, auth.RoleViewer))
	var desc []byte
	var contentBase string
	for {
		status, hdr, body, err := rd.do("DESCRIBE", url, [][2]string{{"Accept", "application/sdp"}}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if status == 200 {
			desc, contentBase = body, hdr["content-base"]
			break
		}
		select {
		case <-ctx.Done():
			b.Fatalf("DESCRIBE: status %d: %s", status, body)
		case <-time.After(20 * time.Millisecond):
		}
	}
	control := videoControl(desc)
	if control == "" {
		b.Fatalf("no video control in %s", desc)
	}
	if !strings.Contains(control, "://") { // relative to Content-Base (RFC 2326 C.1.1)
		control = contentBase + control
	}
	rd.mustDo(b, "SETUP", control, [][2]string{{"Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"}}, nil)
	rd.mustDo(b, "PLAY", strings.TrimSuffix(url, "/")+"/", [][2]string{{"Range", "npt=0.000-"}}, nil)

	readDone := make(chan error, 1)
	go func() {
		var pkt rtp.Packet
		readDone <- rd.readFrames(func(ch byte, payload []byte) {
			if ch != 0 || pkt.Unmarshal(payload) != nil {
				return
			}
			lat.add(pkt.Timestamp, pkt.Payload, time.Now())
		})
	}()

	lat.setFrom(lat.sentCount() + latWarmup)
	b.ResetTimer()
	lat.waitMeasured(ctx, b, b.N)
	b.StopTimer()
	if err := stop(); err != nil {
		b.Fatal(err)
	}
	rd.close()
	<-readDone
	lat.report(b)
}

// runPaced sends access unit i with send every 1/30 s from i = 0 until ctx ends
// or, with b set, until lat has measured b.N packets.
func runPaced(ctx context.Context, b *testing.B, lat *latencies, send func(i int) error) error {
	tick := time.NewTicker(time.Second / latFPS)
	defer tick.Stop()
	for i := 0; ; i++ {
		if err := send(i); err != nil {
			if b != nil {
				b.Fatalf("sending access unit %d: %v", i, err)
			}
			return err
		}
		if b != nil && lat.measured() >= b.N {
			return nil
		}
		select {
		case <-ctx.Done():
			if b != nil {
				b.Fatalf("%d of %d packets measured: %v", lat.measured(), b.N, ctx.Err())
			}
			return nil
		case <-tick.C:
		}
	}
}

// accessUnit returns the RTP packets of access unit i (keyframe every latGOP),
// its slice tagged with i.
func accessUnit(i int) []rtp.Packet {
	au := clip.AccessUnit{Keyframe: i%latGOP == 0}
	var slice []byte
	if au.Keyframe {
		au.NALUs = clip.SyntheticKeyframe(latKeySize)
		slice = au.NALUs[2]
	} else {
		au.NALUs = clip.SyntheticDelta(latDeltaSize)
		slice = au.NALUs[0]
	}
	for k := range 4 { // bytes 2..5 of the slice: i in 7-bit groups, high bit set
		slice[2+k] = 0x80 | byte(i>>(7*k)&0x7f)
	}
	pkts := au.Packetize(latMTU)
	for j := range pkts {
		pkts[j].PayloadType = 96
		pkts[j].SequenceNumber = uint16(i*64 + j) // fewer than 64 packets per access unit
		pkts[j].Timestamp = uint32(i * latClockStep)
		pkts[j].SSRC = 0x1a7e
	}
	return pkts
}

// tagOf returns the access unit index tagged in the slice an H.264 RTP payload
// starts (a single NAL unit packet or the first FU-A fragment of a slice).
func tagOf(p []byte) (int, bool) {
	if len(p) < 2 {
		return 0, false
	}
	var body []byte // the slice after its NAL header
	switch p[0] & 0x1f {
	case 1, 5:
		body = p[1:]
	case 28:
		if p[1]&0x80 == 0 || p[1]&0x1f != 1 && p[1]&0x1f != 5 {
			return 0, false
		}
		body = p[2:]
	default:
		return 0, false
	}
	if len(body) < 5 || body[0] != 0x88 {
		return 0, false
	}
	i := 0
	for k := range 4 {
		c := body[1+k]
		if c&0x80 == 0 {
			return 0, false
		}
		i |= int(c&0x7f) << (7 * k)
	}
	return i, true
}

// arrival is one packet at the receiver.
type arrival struct {
	ts  uint32
	tag int // -1 unless the packet carries its access unit's tag
	at  time.Time
}

// latencies pairs access units sent with packets received. Safe for concurrent use.
type latencies struct {
	mu       sync.Mutex
	sentAt   []time.Time    // by access unit
	byTS     map[uint32]int // received RTP timestamp → access unit
	arrivals []arrival
	from     int // first access unit measured; -1 until set
	count    int // packets of measured access units resolved so far
}

func (l *latencies) sent(i int, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sentAt = append(l.sentAt[:i], at)
}

func (l *latencies) sentCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sentAt)
}

func (l *latencies) setFrom(i int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.from = i
}

func (l *latencies) measured() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
}

// add records a received packet.
func (l *latencies) add(ts uint32, payload []byte, at time.Time) {
	tag, ok := tagOf(payload)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byTS == nil {
		l.byTS = map[uint32]int{}
	}
	if ok {
		l.byTS[ts] = tag
	} else {
		tag = -1
	}
	l.arrivals = append(l.arrivals, arrival{ts: ts, tag: tag, at: at})
	if i, known := l.byTS[ts]; known && l.from >= 0 && i >= l.from {
		l.count++
	}
}

// waitMeasured waits until n packets were measured.
func (l *latencies) waitMeasured(ctx context.Context, b *testing.B, n int) {
	for l.measured() < n {
		select {
		case <-ctx.Done():
			b.Fatalf("%d of %d packets measured: %v", l.measured(), n, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// report computes the latencies of the first b.N packets of measured access
// units, in arrival order, and reports their percentiles.
func (l *latencies) report(b *testing.B) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ms []float64
	for _, a := range l.arrivals {
		i := a.tag
		if i < 0 {
			var ok bool
			if i, ok = l.byTS[a.ts]; !ok {
				continue
			}
		}
		if i < l.from || i >= len(l.sentAt) {
			continue
		}
		ms = append(ms, float64(a.at.Sub(l.sentAt[i]))/float64(time.Millisecond))
		if len(ms) == b.N {
			break
		}
	}
	if len(ms) < b.N {
		b.Fatalf("%d packets measured, want %d", len(ms), b.N)
	}
	slices.Sort(ms)
	pct := func(p float64) float64 { return ms[min(len(ms)-1, int(p*float64(len(ms))))] }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(ms[len(ms)-1], "max-ms")
}

func benchToken(b *testing.B, s *stack, role auth.Role) string {
	b.Helper()
	tok, _, err := s.issuer.Mint(auth.MintRequest{Session: testSession, Role: role, Name: "bench", TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// videoControl returns the control URL of the first video section of an SDP.
func videoControl(sdp []byte) string {
	inVideo := false
	for _, line := range strings.Split(string(sdp), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "m="):
			inVideo = strings.HasPrefix(line, "m=video")
		case inVideo && strings.HasPrefix(line, "a=control:"):
			return strings.TrimPrefix(line, "a=control:")
		}
	}
	return ""
}

// rtspConn is a minimal RTSP/TCP client: requests with CSeq and Session, and
// interleaved frames. Requests are made from one goroutine, before readFrames.
type rtspConn struct {
	nc      net.Conn
	br      *bufio.Reader
	cseq    int
	session string
	once    sync.Once
}

func dialRTSP(b *testing.B, addr string) *rtspConn {
	b.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return &rtspConn{nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
}

func (c *rtspConn) close() { c.once.Do(func() { _ = c.nc.Close() }) }

// mustDo makes a request that must succeed.
func (c *rtspConn) mustDo(b *testing.B, method, url string, fields [][2]string, body []byte) []byte {
	b.Helper()
	status, _, res, err := c.do(method, url, fields, body)
	if err != nil || status != 200 {
		b.Fatalf("%s: status %d, %v: %s", method, status, err, res)
	}
	return res
}

// do sends a request and reads its response, remembering the Session it names.
func (c *rtspConn) do(method, url string, fields [][2]string, body []byte) (int, map[string]string, []byte, error) {
	c.cseq++
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s RTSP/1.0\r\nCSeq: %d\r\nUser-Agent: lectern-bench\r\n", method, url, c.cseq)
	if c.session != "" {
		fmt.Fprintf(&req, "Session: %s\r\n", c.session)
	}
	for _, f := range fields {
		fmt.Fprintf(&req, "%s: %s\r\n", f[0], f[1])
	}
	if len(body) > 0 {
		fmt.Fprintf(&req, "Content-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n")
	req.Write(body)
	_ = c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = c.nc.SetDeadline(time.Time{}) }()
	if _, err := c.nc.Write(req.Bytes()); err != nil {
		return 0, nil, nil, err
	}
	for {
		first, err := c.br.Peek(1)
		if err != nil {
			return 0, nil, nil, err
		}
		if first[0] != '$' {
			break
		}
		if _, err := c.frame(); err != nil {
			return 0, nil, nil, err
		}
	}
	line, err := c.br.ReadString('\n')
	if err != nil {
		return 0, nil, nil, err
	}
	parts := strings.SplitN(strings.TrimSpace(line), " ", 3)
	if len(parts) < 2 {
		return 0, nil, nil, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(parts[1])
	if err != nil {
		return 0, nil, nil, fmt.Errorf("bad status line %q", line)
	}
	header := map[string]string{}
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return 0, nil, nil, err
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		k, v, _ := strings.Cut(line, ":")
		header[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	var res []byte
	if n, _ := strconv.Atoi(header["content-length"]); n > 0 {
		res = make([]byte, n)
		if _, err := io.ReadFull(c.br, res); err != nil {
			return 0, nil, nil, err
		}
	}
	if s := header["session"]; s != "" {
		c.session, _, _ = strings.Cut(s, ";")
	}
	return status, header, res, nil
}

// frame reads one interleaved frame.
func (c *rtspConn) frame() ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return nil, err
	}
	p := make([]byte, int(hdr[2])<<8|int(hdr[3]))
	if _, err := io.ReadFull(c.br, p); err != nil {
		return nil, err
	}
	return append([]byte{hdr[1]}, p...), nil
}

// readFrames hands interleaved frames to fn until the connection ends; other
// messages (responses) are skipped.
func (c *rtspConn) readFrames(fn func(ch byte, payload []byte)) error {
	for {
		first, err := c.br.Peek(1)
		if err != nil {
			return err
		}
		if first[0] == '$' {
			f, err := c.frame()
			if err != nil {
				return err
			}
			fn(f[0], f[1:])
			continue
		}
		if _, err := c.br.ReadString('\n'); err != nil {
			return err
		}
	}
}
