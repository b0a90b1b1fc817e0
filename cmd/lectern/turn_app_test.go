package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"lectern/internal/testpeer"
)

// TestTURNWiring: with -turn on, the binary serves TURN on -turn-port, persists a
// generated secret, hands each WHEP answer TURN URLs with that participant's
// credentials beside -ice-server, and exports the TURN metrics.
func TestTURNWiring(t *testing.T) { testTURNWiring(t, "127.0.0.1") }

// TestTURNWiringAllInterfaces: the same with the edge on every interface, where
// the relays bind the first ordinary local address and reach the edge there.
func TestTURNWiringAllInterfaces(t *testing.T) { testTURNWiring(t, "") }

func testTURNWiring(t *testing.T, webrtcIP string) {
	const admin = "turn-admin-token-0123456789"
	port := freePort(t, "udp")
	a := testApp(t, "-admin-token", admin, "-turn", "on", "-turn-port", strconv.Itoa(port),
		"-ice-server", "stun:stun.example.org:3478", "-webrtc-ip", webrtcIP)
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + a.listener.Addr().String()
	sess := createSession(t, base, admin, "Bài giảng")
	site := mintToken(t, base, admin, sess, "site")
	pc, offer := testpeer.NewOffer(t, testpeer.Options{}, webrtc.RTPTransceiverDirectionRecvonly)
	_ = pc
	code, body, hdr := post(t, base+"/whep/"+sess, site, "application/sdp", offer.SDP)
	if code != http.StatusCreated {
		t.Fatalf("WHEP: %d %s", code, body)
	}
	links := strings.Join(hdr.Values("Link"), "\n")
	for _, want := range []string{
		`<stun:stun.example.org:3478>; rel="ice-server"`,
		"<turn:127.0.0.1:" + strconv.Itoa(port) + `?transport=udp>; rel="ice-server"; username="`,
		"<turn:127.0.0.1:" + strconv.Itoa(port) + `?transport=tcp>; rel="ice-server"; username="`,
		":" + sess + `/site"; credential="`,
	} {
		if !strings.Contains(links, want) {
			t.Errorf("Link headers lack %q:\n%s", want, links)
		}
	}
	// A classroom that reaches the server only through the embedded TURN (UDP)
	// receives the trainer's video: the relay reaches the edge's media port.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, pub := publishToSession(ctx, t, base, admin, sess)
	defer pub.Close()
	defer playSynthetic(ctx, pub)()
	sub, _, err := testpeer.NewRelaySubscriber(ctx, base+"/whep/"+sess, site, func(u string) bool { return strings.HasSuffix(u, "transport=udp") })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	select {
	case <-sub.Video:
	case <-ctx.Done():
		t.Fatalf("no video through the binary's TURN server (ICE %s)", sub.PC.ICEConnectionState())
	}
	if b, err := os.ReadFile(filepath.Join(a.cfg.DataDir, "turn-secret")); err != nil || len(b) < 32 {
		t.Errorf("turn secret not persisted: %v", err)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"lectern_turn_allocations 1", "lectern_turn_refusals_total 0"} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("/metrics lacks %q", m)
		}
	}
}

// publishToSession publishes as the trainer of an existing session.
func publishToSession(ctx context.Context, t *testing.T, base, admin, sess string) (string, *testpeer.Publisher) {
	t.Helper()
	pub, err := testpeer.NewPublisher(ctx, testpeer.Options{}, false, sdpSignal(t, base+"/whip/"+sess, mintToken(t, base, admin, sess, "trainer")))
	if err != nil {
		t.Fatal(err)
	}
	return sess, pub
}
