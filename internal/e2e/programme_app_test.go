package e2e

// The whole server as a user runs it: the lectern binary, built from this tree
// and started on loopback ports with a data directory of its own, driven over
// its HTTP API (sessions, tokens, the floor), WHIP, WHEP and RTSP. The programme
// tests use it because the programme is the wiring of everything at once (the
// floor's changes reach the mixer, WHEP, RTSP and the recorder serve it).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"lectern/internal/clip"
	"lectern/internal/testenv"
	"lectern/internal/testpeer"
)

const appAdmin = "e2e-programme-admin-token-0123"

var lecternBin struct {
	once sync.Once
	path string
	err  error
}

// buildLectern builds cmd/lectern once per test binary into the system temp
// directory (under a temporary name renamed into place: concurrent test
// binaries never run a half-written file). LECTERN_E2E_BIN names a binary to
// run instead (one built from another tree).
func buildLectern(t *testing.T) string {
	t.Helper()
	lecternBin.once.Do(func() {
		if p := os.Getenv("LECTERN_E2E_BIN"); p != "" {
			lecternBin.path = p
			return
		}
		dir := filepath.Join(os.TempDir(), "lectern-e2e-bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			lecternBin.err = err
			return
		}
		tmp := filepath.Join(dir, fmt.Sprintf("lectern.%d.tmp", os.Getpid()))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", tmp, "lectern/cmd/lectern").CombinedOutput(); err != nil {
			lecternBin.err = fmt.Errorf("go build lectern/cmd/lectern: %w\n%s", err, out)
			return
		}
		lecternBin.path = filepath.Join(dir, "lectern")
		lecternBin.err = os.Rename(tmp, lecternBin.path)
	})
	if lecternBin.err != nil {
		t.Fatal(lecternBin.err)
	}
	return lecternBin.path
}

func freePort(t *testing.T, network string) int { return testenv.FreePort(t, network) }

// app is a running lectern binary.
type app struct {
	t    *testing.T
	ctx  context.Context
	base string // http://127.0.0.1:port
	rtsp string // 127.0.0.1:port
	data string // its data directory
	log  *testenv.LockedBuffer
}

// startApp starts the binary with RTSP over TCP, no reconnect grace (a
// publisher's tracks, and so the recordings, end when it goes); the test
// prints its log when it fails. It is stopped (SIGTERM) when the test
// ends.
func startApp(t *testing.T, ctx context.Context, extra ...string) *app {
	t.Helper()
	bin := buildLectern(t)
	a := &app{t: t, ctx: ctx, log: &testenv.LockedBuffer{}, data: t.TempDir()}
	httpPort, rtspPort, udpPort := freePort(t, "tcp"), freePort(t, "tcp"), freePort(t, "udp")
	a.base = "http://127.0.0.1:" + strconv.Itoa(httpPort)
	a.rtsp = "127.0.0.1:" + strconv.Itoa(rtspPort)
	args := append([]string{"-http", "127.0.0.1:" + strconv.Itoa(httpPort), "-webrtc-ip", "127.0.0.1",
		"-webrtc-udp-port", strconv.Itoa(udpPort), "-webrtc-tcp-port", "0", "-data-dir", a.data,
		"-rtsp", a.rtsp, "-rtsp-udp-rtp-port", "0", "-admin-token", appAdmin, "-reconnect-grace", "0s",
		"-segment-duration", "2s", "-log-level", "info"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = a.log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	running := make(chan bool, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		ok := false
		for sc.Scan() {
			if !ok && strings.Contains(sc.Text(), "Lectern is running") {
				ok = true
				running <- true
			}
		}
		if !ok {
			running <- false
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("lectern did not stop within 30 s of SIGTERM")
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("lectern's log (last 300 lines):\n%s", tail(a.log.String(), 300))
		}
	})
	select {
	case ok := <-running:
		if !ok {
			t.Fatalf("lectern exited before it was running:\n%s", a.log.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("lectern not running after 60 s:\n%s", a.log.String())
	}
	return a
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// do sends a request with token and returns the status and body.
func (a *app) do(method, path, token, contentType, body string) (int, string) {
	a.t.Helper()
	resp, b := testenv.Do(a.t, a.ctx, nil, method, a.base+path, token, contentType, body)
	return resp.StatusCode, b
}

// getJSON GETs path with the admin token into v, failing the test unless 200.
func (a *app) getJSON(path string, v any) {
	a.t.Helper()
	code, body := a.do("GET", path, appAdmin, "", "")
	if code != http.StatusOK {
		a.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		a.t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

// createSession creates a session from the JSON body's fields and returns
// its id and the created session as the API answered it.
func (a *app) createSession(fields string) (string, string) {
	a.t.Helper()
	code, body := a.do("POST", "/api/sessions", appAdmin, "application/json", fields)
	if code != http.StatusCreated {
		a.t.Fatalf("create session %s: %d %s", fields, code, body)
	}
	var s struct{ ID string }
	if err := json.Unmarshal([]byte(body), &s); err != nil || s.ID == "" {
		a.t.Fatalf("create session: %v %s", err, body)
	}
	return s.ID, body
}

// token mints a token of role for participant name (display the name shown).
func (a *app) token(session, role, name, display string) string {
	a.t.Helper()
	code, body := a.do("POST", "/api/sessions/"+session+"/tokens", appAdmin, "application/json",
		fmt.Sprintf(`{"role":%q,"name":%q,"display":%q,"ttl":"1h"}`, role, name, display))
	if code != http.StatusCreated {
		a.t.Fatalf("mint %s token: %d %s", role, code, body)
	}
	var m struct{ Token string }
	_ = json.Unmarshal([]byte(body), &m)
	return m.Token
}

// signal posts an SDP offer to path (WHIP or WHEP) with token.
func (a *app) signal(path, token string) testpeer.Signal {
	return testpeer.WHIPSignal(a.ctx, a.base+path, token)
}

// grant gives classroom name the floor in session, as its hand is raised
// (siteToken) and the trainer grants it, over HTTP.
func (a *app) grant(session, name, siteToken, trainerToken string) {
	a.t.Helper()
	for _, c := range []struct{ method, path, token string }{
		{"POST", "/api/sessions/" + session + "/hands", siteToken},
		{"PUT", "/api/sessions/" + session + "/speakers/" + name, trainerToken},
	} {
		if code, body := a.do(c.method, c.path, c.token, "", ""); code >= 300 {
			a.t.Fatalf("%s %s: %d %s", c.method, c.path, code, body)
		}
	}
}

// revoke takes the floor back from classroom name.
func (a *app) revoke(session, name, trainerToken string) {
	a.t.Helper()
	if code, body := a.do("DELETE", "/api/sessions/"+session+"/speakers/"+name, trainerToken, "", ""); code >= 300 {
		a.t.Fatalf("take the floor back from %s: %d %s", name, code, body)
	}
}

// rtspURL is the session's RTSP address with token in the query.
func (a *app) rtspURL(session, token string) string {
	return "rtsp://" + a.rtsp + "/" + session + "?token=" + token
}

// source is a pion publisher playing a clip (looping) until stopped; its audio
// passes through a filter the test may change while it plays.
type source struct {
	pub  *testpeer.Publisher
	stop func()
	mu   sync.Mutex
	// audio, when set, returns the packet to send instead of p (nil: send
	// nothing).
	audio func(p *rtp.Packet) *rtp.Packet
	// firstAudio is when its first audio packet was sent.
	firstAudio time.Time
}

// publish connects a publisher over WHIP with token and plays c on it. It is
// closed when the test ends, or by stop.
func (a *app) publish(session, token string, c *clip.Clip) *source {
	a.t.Helper()
	return a.publishWith(session, token, c, nil)
}

// publishWith is publish with an audio filter (source.audio) from the first
// packet.
func (a *app) publishWith(session, token string, c *clip.Clip, audio func(p *rtp.Packet) *rtp.Packet) *source {
	a.t.Helper()
	pub, err := testpeer.NewPublisher(a.ctx, testpeer.Options{}, false, a.signal("/whip/"+session, token))
	if err != nil {
		a.t.Fatal(err)
	}
	s := &source{pub: pub, audio: audio}
	ctx, cancel := context.WithCancel(a.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Play(ctx, clip.PlayOptions{Loop: true,
			WriteVideo: func(p *rtp.Packet) error { return pub.Video.WriteRTP(p) },
			WriteAudio: func(p *rtp.Packet) error {
				s.mu.Lock()
				f := s.audio
				if s.firstAudio.IsZero() {
					s.firstAudio = time.Now()
				}
				s.mu.Unlock()
				if f != nil {
					if p = f(p); p == nil {
						return nil
					}
				}
				return pub.Audio.WriteRTP(p)
			}})
	}()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			pub.Close()
		})
	}
	a.t.Cleanup(s.stop)
	return s
}

// setAudio changes what the source sends for each audio packet.
func (s *source) setAudio(f func(p *rtp.Packet) *rtp.Packet) {
	s.mu.Lock()
	s.audio = f
	s.mu.Unlock()
}

// firstAudioAt is when the source sent its first audio packet (zero if none yet).
func (s *source) firstAudioAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstAudio
}

// captured is a packet as a subscriber received it.
type captured struct {
	at  time.Time
	pkt *rtp.Packet
}

// viewer is a pion WHEP subscriber (one video, one audio section) that keeps
// every packet it receives with its arrival time.
type viewer struct {
	sub   *testpeer.Subscriber
	mu    sync.Mutex
	audio []captured
	video []captured
}

// watch connects a viewer to path (e.g. /whep/{session}) with token.
func (a *app) watch(path, token string) *viewer {
	a.t.Helper()
	v := &viewer{}
	sub, err := testpeer.NewSubscriber(a.ctx, testpeer.Options{}, 1, 1, a.signal(path, token), func(kind webrtc.RTPCodecType, p *rtp.Packet) {
		c := captured{at: time.Now(), pkt: p.Clone()}
		v.mu.Lock()
		if kind == webrtc.RTPCodecTypeAudio {
			v.audio = append(v.audio, c)
		} else {
			v.video = append(v.video, c)
		}
		v.mu.Unlock()
	})
	if err != nil {
		a.t.Fatal(err)
	}
	v.sub = sub
	a.t.Cleanup(sub.Close)
	return v
}

// packets returns copies of what arrived so far.
func (v *viewer) packets() (audio, video []captured) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]captured(nil), v.audio...), append([]captured(nil), v.video...)
}

// waitAudio waits until the viewer has n audio packets.
func (v *viewer) waitAudio(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	testenv.WaitFor(ctx, t, fmt.Sprintf("%d audio packets", n), func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		return len(v.audio) >= n
	})
}

// rtspReader is an RTSP client (gortsplib over TCP) reading a session as a
// hall's decoder does, keeping every packet of its first audio and first video
// stream with its arrival time.
type rtspReader struct {
	mu           sync.Mutex
	audio, video []captured
	audioM       *description.Media
	videoM       *description.Media
}

// readRTSP starts reading url; it is closed when the test ends.
func (a *app) readRTSP(url string) *rtspReader {
	a.t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		a.t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Transport: &tcp, ReadTimeout: 30 * time.Second}
	if err := c.Start(u.Scheme, u.Host); err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(c.Close)
	desc, _, err := c.Describe(u)
	if err != nil {
		a.t.Fatalf("RTSP DESCRIBE %s: %v", url, err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		a.t.Fatalf("RTSP SETUP %s: %v", url, err)
	}
	r := &rtspReader{}
	for _, m := range desc.Medias {
		switch {
		case m.Type == description.MediaTypeAudio && r.audioM == nil:
			r.audioM = m
		case m.Type == description.MediaTypeVideo && r.videoM == nil:
			r.videoM = m
		}
	}
	c.OnPacketRTPAny(func(m *description.Media, _ format.Format, p *rtp.Packet) {
		cp := captured{at: time.Now(), pkt: p.Clone()}
		r.mu.Lock()
		switch m {
		case r.audioM:
			r.audio = append(r.audio, cp)
		case r.videoM:
			r.video = append(r.video, cp)
		}
		r.mu.Unlock()
	})
	if _, err := c.Play(nil); err != nil {
		a.t.Fatalf("RTSP PLAY %s: %v", url, err)
	}
	return r
}

// packets returns copies of the audio packets read so far.
func (r *rtspReader) packets() []captured {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]captured(nil), r.audio...)
}

// videoPackets returns copies of the video packets read so far.
func (r *rtspReader) videoPackets() []captured {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]captured(nil), r.video...)
}

// metric returns the value of the sample of /metrics whose name and labels
// are series (e.g. `lectern_programme_switches_total{kind="audio"}`), failing
// the test when there is none.
func (a *app) metric(series string) float64 {
	a.t.Helper()
	code, body := a.do("GET", "/metrics", appAdmin, "", "")
	if code != http.StatusOK {
		a.t.Fatalf("GET /metrics: %d %s", code, body)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				a.t.Fatalf("/metrics: %q: %v", line, err)
			}
			return f
		}
	}
	a.t.Fatalf("/metrics has no %s", series)
	return 0
}
