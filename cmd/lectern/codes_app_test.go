package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"lectern/auth"
	"lectern/internal/testenv"
)

// deviceCode is the answer to POST /api/sessions/{id}/codes.
type deviceCode struct {
	ID      string `json:"id"`
	Code    string `json:"code"`
	RTSPURL string `json:"rtsp_url"`
}

func mintDeviceCode(t *testing.T, base, token, session, body string) deviceCode {
	t.Helper()
	status, b, _ := post(t, base+"/api/sessions/"+session+"/codes", token, "application/json", body)
	if status != http.StatusCreated {
		t.Fatalf("mint code %s: %d %s", body, status, b)
	}
	var c deviceCode
	if err := json.Unmarshal([]byte(b), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// publishRTSP has ffmpeg publish a test pattern (H.264) to url over TCP until stop.
func publishRTSP(t *testing.T, bin, url string) (stop func() string) {
	t.Helper()
	cmd := exec.Command(bin, "-hide_banner", "-nostdin", "-v", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15", "-t", "60",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline", "-pix_fmt", "yuv420p",
		"-g", "15", "-f", "rtsp", "-rtsp_transport", "tcp", url)
	return testenv.StartBackground(t, cmd)
}

// readRTSP has ffmpeg read 15 video frames from url over TCP, trying again while
// the stream is not there yet (the publisher starting); it returns ffmpeg's error
// output and whether it read them.
func readRTSP(t *testing.T, bin, url string, retry bool) (string, bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, bin, "-hide_banner", "-nostdin", "-v", "error", "-rtsp_transport", "tcp",
			"-i", url, "-frames:v", "15", "-f", "null", "-")
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil {
			return string(out), true
		}
		if !retry || time.Now().After(deadline) || strings.Contains(string(out), "401") {
			return string(out), false
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// rtspDescribe sends one DESCRIBE with password as the Basic password and returns
// the status line.
func rtspDescribe(t *testing.T, addr, session, password string) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	basic := base64.StdEncoding.EncodeToString([]byte("decoder:" + password))
	fmt.Fprintf(nc, "DESCRIBE rtsp://%s/%s RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Basic %s\r\n\r\n", addr, session, basic)
	status, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(status)
}

// TestDeviceCodesOverRTSP: short device codes, minted over the API, work as the
// RTSP password of ffmpeg (publishing with a trainer code, reading with a site
// code, each from the rtsp_url the API hands out) and as ?token=; a revoked code
// gets 401; the codes survive a restart (the catalogue keeps their hashes); wrong
// codes over RTSP count in the limiter HTTP shares.
func TestDeviceCodesOverRTSP(t *testing.T) {
	bin := testenv.RequireTool(t, "ffmpeg", "apt-get install ffmpeg")
	const admin = "configured-admin-token-0123456789"
	rtspAddr := "127.0.0.1:" + strconv.Itoa(freePort(t, "tcp"))
	cfg := testConfig(t, "-admin-token", admin, "-rtsp", rtspAddr, "-rtsp-udp-rtp-port", "0", "-record", "off")
	run := func() (*app, func()) {
		a, err := newApp(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.start(); err != nil {
			t.Fatal(err)
		}
		return a, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a.shutdown(ctx)
		}
	}
	a, stopApp := run()
	base := "http://" + a.listener.Addr().String()
	status, body, _ := post(t, base+"/api/sessions", admin, "application/json", `{"title":"Bài 1"}`)
	if status != http.StatusCreated {
		t.Fatalf("create session: %d %s", status, body)
	}
	var sess struct{ ID string }
	_ = json.Unmarshal([]byte(body), &sess)

	studio := mintDeviceCode(t, base, admin, sess.ID, `{"role":"trainer","name":"studio","ttl":"48h"}`)
	hall := mintDeviceCode(t, base, admin, sess.ID, `{"role":"site","name":"hall-a","display":"Hội trường A"}`)
	screen := mintDeviceCode(t, base, admin, sess.ID, `{"role":"viewer","name":"screen-2"}`)
	if want := "@" + rtspAddr + "/" + sess.ID; !strings.HasSuffix(hall.RTSPURL, want) || !strings.Contains(hall.RTSPURL, ":"+hall.Code+"@") {
		t.Fatalf("rtsp_url %q: want rtsp://hall-a:<code>%s", hall.RTSPURL, want)
	}
	if len(hall.RTSPURL) > 127 {
		t.Fatalf("rtsp_url %q is %d bytes: ffmpeg cuts userinfo at 127", hall.RTSPURL, len(hall.RTSPURL))
	}

	stopPub := publishRTSP(t, bin, studio.RTSPURL)
	if out, ok := readRTSP(t, bin, hall.RTSPURL, true); !ok {
		t.Fatalf("ffmpeg reading with the site code as the RTSP password: %s\npublisher: %s", out, stopPub())
	}
	if out, ok := readRTSP(t, bin, "rtsp://"+rtspAddr+"/"+sess.ID+"?token="+screen.Code, false); !ok {
		t.Fatalf("ffmpeg reading with the viewer code as ?token=: %s", out)
	}
	if resp, err := http.Get(base + "/api/sessions/" + sess.ID + "?token=" + hall.Code); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the site code as ?token= over HTTP: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	req, _ := http.NewRequest("DELETE", base+"/api/sessions/"+sess.ID+"/codes/"+hall.ID, nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if out, ok := readRTSP(t, bin, hall.RTSPURL, false); ok || !strings.Contains(out, "401") {
		t.Fatalf("ffmpeg with a revoked code: ok %v, %s; want 401", ok, out)
	}
	stopPub()
	stopApp()

	// A restart: the codes are in the catalogue, the revoked one stays revoked.
	a, stopApp = run()
	defer stopApp()
	stopPub = publishRTSP(t, bin, studio.RTSPURL)
	defer stopPub()
	if out, ok := readRTSP(t, bin, screen.RTSPURL, true); !ok {
		t.Fatalf("ffmpeg reading with a code after a restart: %s\npublisher: %s", out, stopPub())
	}
	if got := rtspDescribe(t, a.rtsp.Addr(), sess.ID, hall.Code); !strings.HasPrefix(got, "RTSP/1.0 401 ") {
		t.Fatalf("the revoked code after a restart: %q, want 401", got)
	}

	// Wrong codes over RTSP count in the limiter HTTP shares: after enough, the
	// right code is not even looked up (503 over RTSP, 429 over HTTP).
	for i := 0; ; i++ {
		wrong, _, _ := auth.GenerateCode()
		got := rtspDescribe(t, a.rtsp.Addr(), sess.ID, wrong)
		if strings.HasPrefix(got, "RTSP/1.0 503 ") {
			break
		}
		if !strings.HasPrefix(got, "RTSP/1.0 401 ") || i > 20 {
			t.Fatalf("wrong code %d: %q, want 401 then 503", i, got)
		}
	}
	resp, err := http.Get(base + "/api/sessions/" + sess.ID + "?token=" + screen.Code)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the right code over HTTP after wrong ones over RTSP: %d, want 429", resp.StatusCode)
	}
}
