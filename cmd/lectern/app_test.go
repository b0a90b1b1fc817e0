package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"lectern/internal/testenv"
	"lectern/internal/testpeer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func freePort(t *testing.T, network string) int { return testenv.FreePort(t, network) }

func post(t *testing.T, url, token, ct, body string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", ct)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// createSession makes a session titled title with the admin token and returns
// its id.
func createSession(t *testing.T, base, admin, title string) string {
	t.Helper()
	code, body, _ := post(t, base+"/api/sessions", admin, "application/json", `{"title":"`+title+`"}`)
	if code != 201 {
		t.Fatalf("create session: %d %s", code, body)
	}
	var sess struct{ ID string }
	_ = json.Unmarshal([]byte(body), &sess)
	return sess.ID
}

// mintToken mints a token for role (named after it) in session.
func mintToken(t *testing.T, base, admin, session, role string) string {
	t.Helper()
	code, body, _ := post(t, base+"/api/sessions/"+session+"/tokens", admin, "application/json", `{"role":"`+role+`","name":"`+role+`"}`)
	if code != 201 {
		t.Fatalf("mint: %d %s", code, body)
	}
	var m struct{ Token string }
	_ = json.Unmarshal([]byte(body), &m)
	return m.Token
}

// publishTo creates a session titled title and connects a trainer's pion
// publisher to it over WHIP; the caller closes the publisher.
func publishTo(ctx context.Context, t *testing.T, base, admin, title string) (sessID string, pub *testpeer.Publisher) {
	t.Helper()
	sessID = createSession(t, base, admin, title)
	pub, err := testpeer.NewPublisher(ctx, testpeer.Options{}, false, sdpSignal(t, base+"/whip/"+sessID, mintToken(t, base, admin, sessID, "trainer")))
	if err != nil {
		t.Fatal(err)
	}
	return sessID, pub
}

// sdpSignal is how the tests' pion peers reach the binary's WHIP and WHEP
// endpoints: the offer is posted to url with tok, the answer is the body.
func sdpSignal(t *testing.T, url, tok string) testpeer.Signal {
	return func(offer string) (string, error) {
		code, body, _ := post(t, url, tok, "application/sdp", offer)
		if code != 201 {
			return "", fmt.Errorf("%s: %d %s", url, code, body)
		}
		return body, nil
	}
}

// playSynthetic plays a synthetic clip on pub until the returned stop is
// called; stop waits for the player to end.
func playSynthetic(ctx context.Context, pub *testpeer.Publisher) (stop func()) {
	playCtx, stopPlay := context.WithCancel(ctx)
	played := make(chan struct{})
	go func() {
		defer close(played)
		_ = pub.Play(playCtx, testpeer.SyntheticClip(time.Second, 30, 30, 2000), nil)
	}()
	return func() { stopPlay(); <-played }
}

// TestRunServesAndShutsDownOnSIGTERM starts the server as `lectern` would, with a
// live publisher and subscriber, then sends SIGTERM: it must close the peers and
// return within a few seconds.
func TestRunServesAndShutsDownOnSIGTERM(t *testing.T) {
	httpPort := freePort(t, "tcp")
	udpPort := freePort(t, "udp")
	dataDir := t.TempDir()
	env := map[string]string{"LECTERN_DATA_DIR": dataDir, "LECTERN_LOG_LEVEL": "warn"}
	args := []string{"-http", "127.0.0.1:" + strconv.Itoa(httpPort), "-webrtc-ip", "127.0.0.1",
		"-webrtc-udp-port", strconv.Itoa(udpPort), "-webrtc-tcp-port", "0", "-reconnect-grace", "2s",
		"-rtsp", "127.0.0.1:0", "-rtsp-udp-rtp-port", "0"}
	stdoutR, stdoutW := io.Pipe()
	exit := make(chan int, 1)
	go func() {
		code := run(args, func(k string) string { return env[k] }, stdoutW, io.Discard)
		stdoutW.Close()
		exit <- code
	}()

	// The banner prints the generated admin token and a curl that creates a session.
	var admin string
	banner := bufio.NewScanner(stdoutR)
	for banner.Scan() {
		line := banner.Text()
		if strings.Contains(line, "Admin token (generated") {
			admin = line[strings.LastIndex(line, " ")+1:]
		}
		if strings.Contains(line, "curl -s -X POST") && strings.Contains(line, "/api/sessions ") {
			break
		}
	}
	go io.Copy(io.Discard, stdoutR)
	if admin == "" {
		t.Fatal("banner did not show the admin token")
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sessID, pub := publishTo(ctx, t, base, admin, "Bài giảng")
	defer pub.Close()
	defer playSynthetic(ctx, pub)()
	sub, err := testpeer.NewSubscriber(ctx, testpeer.Options{}, 1, 1, sdpSignal(t, base+"/whep/"+sessID, mintToken(t, base, admin, sessID, "viewer")), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.WaitPackets(ctx, 0, 30); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit code %d", code)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("server did not stop within 8 s of SIGTERM")
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	for _, pc := range []*webrtc.PeerConnection{pub.PC, sub.PC} {
		deadline := time.Now().Add(15 * time.Second)
		for pc.ConnectionState() == webrtc.PeerConnectionStateConnected && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
			t.Fatal("a peer is still connected after shutdown")
		}
	}
	// The session definition survives the restart.
	if b, err := os.ReadFile(dataDir + "/sessions.json"); err != nil || !strings.Contains(string(b), sessID) {
		t.Fatalf("session not persisted: %v", err)
	}
}

func TestRunReportsEveryConfigProblem(t *testing.T) {
	var stderr strings.Builder
	code := run([]string{"-webrtc-udp-port", "70000", "-log-level", "loud"}, func(string) string { return "" }, io.Discard, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "LECTERN_WEBRTC_UDP_PORT") || !strings.Contains(stderr.String(), "LECTERN_LOG_LEVEL") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// TestImportRules keeps the architecture's dependency rules true: the hub and the
// store import no project package, edges never import the HTTP layer, and only
// cmd/lectern wires everything.
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "lectern/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	rules := map[string][]string{ // package -> project packages it must not import (prefix match)
		"lectern/sfu":      {"lectern/"},
		"lectern/storage":  {"lectern/"},
		"lectern/auth":     {"lectern/"},
		"lectern/catalog":  {"lectern/"},
		"lectern/events":   {"lectern/"},
		"lectern/floor":    {"lectern/"},
		"lectern/sfu/peer": {"lectern/web", "lectern/recorder", "lectern/storage", "lectern/catalog"},
		"lectern/sfu/rtsp": {"lectern/web", "lectern/recorder", "lectern/storage", "lectern/catalog"},
		"lectern/recorder": {"lectern/web", "lectern/sfu/peer", "lectern/sfu/rtsp"},
	}
	allowed := map[string][]string{"lectern/sfu": {}, "lectern/sfu/peer": {"lectern/sfu"}, "lectern/sfu/rtsp": {"lectern/sfu", "lectern/auth"}}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		for _, imp := range imports {
			for _, banned := range rules[pkg] {
				if strings.HasPrefix(imp, banned) && !contains(allowed[pkg], imp) {
					t.Errorf("%s imports %s", pkg, imp)
				}
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
