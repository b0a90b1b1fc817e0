package rtsp

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"go.uber.org/goleak"

	"lectern/auth"
	"lectern/internal/clip"
	"lectern/internal/testenv"
	"lectern/sfu"
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(benchReadersEnv); spec != "" {
		os.Exit(runBenchReaders(spec)) // the benchmark's reader process
	}
	goleak.VerifyTestMain(m)
}

const (
	testSession = "lecture"
	testAdmin   = "admin-token-for-tests-0123456789"
)

// testLogger, waitFor and lastProgress are the media tests' shared helpers.
var (
	testLogger   = testenv.Logger
	waitFor      = testenv.WaitFor
	lastProgress = testenv.LastProgress
)

// fixture is a registry with one session ("lecture") served by an RTSP server on
// loopback with kernel-chosen TCP and UDP ports.
type fixture struct {
	reg    *sfu.Registry
	sess   *sfu.Session
	issuer *auth.Issuer
	srv    *Server
	ctx    context.Context
}

func newFixture(t testing.TB, mod func(*Config)) *fixture {
	t.Helper()
	reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: 3 * time.Second, Logger: testLogger()})
	issuer, err := auth.NewIssuer(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Address:        "127.0.0.1:0",
		UDPRTPAddress:  "127.0.0.1:0",
		UDPRTCPAddress: "127.0.0.1:0",
		Sessions:       sessionsOf(reg, testSession),
		Tokens:         issuer,
		AdminToken:     testAdmin,
		Logger:         testLogger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(func() {
		cancel()
		_ = srv.Close()
		reg.CloseAll()
	})
	return &fixture{reg: reg, sess: reg.Session(testSession), issuer: issuer, srv: srv, ctx: ctx}
}

// sessionsOf resolves the given ids in reg, and no others.
func sessionsOf(reg *sfu.Registry, ids ...string) func(string) (*sfu.Session, error) {
	return func(id string) (*sfu.Session, error) {
		for _, x := range ids {
			if x == id {
				return reg.Session(id), nil
			}
		}
		return nil, fmt.Errorf("lookup %q: %w", id, ErrSessionNotFound)
	}
}

func (f *fixture) token(t testing.TB, session string, role auth.Role) string {
	t.Helper()
	tok, _, err := f.issuer.Mint(auth.MintRequest{Session: session, Role: role, Name: "tester", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// url returns rtsp://addr/path?token=token (no query when token is ""). ffmpeg
// keeps at most 127 bytes of a URL's user:password, too few for a signed token, so
// tests that run ffmpeg give tokens in the query.
func (f *fixture) url(path, token string) string {
	if token == "" {
		return "rtsp://" + f.srv.Addr() + "/" + path
	}
	return "rtsp://" + f.srv.Addr() + "/" + path + "?token=" + token
}

// basicURL returns rtsp://user:password@addr/path.
func (f *fixture) basicURL(path, password string) string {
	return "rtsp://user:" + password + "@" + f.srv.Addr() + "/" + path
}

// loadClip returns a 4 s 640x360 30 fps H.264 + Opus clip made by ffmpeg (cached
// across runs in the system temp directory).
func loadClip(t testing.TB) *clip.Clip {
	t.Helper()
	return testenv.Clip(t, clip.Options{Width: 640, Height: 360, FPS: 30, Bitrate: 1_000_000, Duration: 4 * time.Second, GOP: 30})
}

// playIntoSession publishes c into sess as the trainer (a looped clip written
// straight into the tracks, as a WHIP publisher's read loop would) until the test
// ends. videoFmtp is the H.264 codec's fmtp.
func playIntoSession(t *testing.T, ctx context.Context, sess *sfu.Session, c *clip.Clip, videoFmtp string) (video, audio *sfu.Track) {
	t.Helper()
	return playClip(t, ctx, sess, c, sfu.Codec{MimeType: sfu.MimeH264, ClockRate: 90000, Fmtp: videoFmtp},
		clip.PlayOptions{Loop: true, VideoSSRC: 1111, AudioSSRC: 2222})
}

// playClip publishes c into sess as the trainer, with videoCodec and Opus, played
// with play (whose writers it sets) until the test ends.
func playClip(t *testing.T, ctx context.Context, sess *sfu.Session, c *clip.Clip, videoCodec sfu.Codec, play clip.PlayOptions) (video, audio *sfu.Track) {
	t.Helper()
	lease, err := sess.Claim(sfu.TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	video = mustTrack(t, lease, "video", sfu.KindVideo, videoCodec, nil)
	audio = mustTrack(t, lease, "audio", sfu.KindAudio, testOpus, nil)
	play.WriteVideo, play.WriteAudio = video.WriteRTP, audio.WriteRTP
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Play(ctx, play)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return video, audio
}

// ffmpeg runs ffmpeg with args until it exits or ctx ends, and returns its stdout
// and stderr.
func ffmpeg(ctx context.Context, t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin := testenv.RequireTool(t, "ffmpeg", "apt-get install ffmpeg")
	cmd := exec.CommandContext(ctx, bin, append([]string{"-hide_banner", "-nostdin"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// startFFmpeg starts ffmpeg in the background; the returned func stops it (SIGINT
// then kill) and returns its stderr.
func startFFmpeg(t *testing.T, args ...string) (stop func() string) {
	t.Helper()
	bin := testenv.RequireTool(t, "ffmpeg", "apt-get install ffmpeg")
	return testenv.StartBackground(t, exec.Command(bin, append([]string{"-hide_banner", "-nostdin"}, args...)...))
}

// lockedBuffer collects logs that handlers and the test share.
type lockedBuffer = testenv.LockedBuffer

// execOutput runs bin and returns its combined output.
func execOutput(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}
