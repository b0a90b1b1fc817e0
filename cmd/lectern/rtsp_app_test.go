package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAuthFailuresSharedByHTTPAndRTSP: wrong admin tokens sent over HTTP count
// for RTSP too, so a guesser cannot switch protocol to get fresh tries (issue 9,
// 10o and 10e's RTSP side).
func TestAuthFailuresSharedByHTTPAndRTSP(t *testing.T) {
	const admin = "configured-admin-token-0123456789"
	a := testApp(t, "-admin-token", admin, "-rtsp", "127.0.0.1:0", "-rtsp-udp-rtp-port", "0")
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + a.listener.Addr().String()
	limited := false
	for i := range 30 {
		req, _ := http.NewRequest("POST", base+"/api/sessions", strings.NewReader(`{"title":"x"}`))
		req.Header.Set("Authorization", fmt.Sprintf("Bearer wrong-admin-token-%04d-xxxxxxxx", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("HTTP never limited the guesses")
	}
	nc, err := net.DialTimeout("tcp", a.rtsp.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(nc, "DESCRIBE rtsp://%s/lecture?token=%s RTSP/1.0\r\nCSeq: 1\r\n\r\n", a.rtsp.Addr(), admin)
	status, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(status, "RTSP/1.0 503 ") {
		t.Fatalf("RTSP after HTTP guesses: %q, want 503", status)
	}
}
