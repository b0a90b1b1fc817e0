package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"lectern/internal/testrec"
	"lectern/recorder"
	"lectern/storage"
)

// newDownloadFixture stores a finished recording of segs segments of segSize
// random bytes each, behind a real init segment, with its meta.json and the
// index, and returns a recorder over it and the recording's id.
func newDownloadFixture(t testing.TB, segs, segSize int) (*recorder.Recorder, *storage.Dir, string) {
	t.Helper()
	ctx := context.Background()
	d := testrec.DirStore(t)
	const sess = "downloads1"
	id := sess + "-trainer-20260301-080000-00dd01"
	prefix := "recordings/" + sess + "/" + id + "/"
	put := func(key string, data []byte) {
		if err := d.Put(ctx, key, bytes.NewReader(data), int64(len(data)), ""); err != nil {
			t.Fatal(err)
		}
	}
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 3, TimeScale: 48000, Codec: &fmp4.CodecOpus{ChannelCount: 2}}}}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		t.Fatal(err)
	}
	put(prefix+"init.mp4", buf.Bytes())
	rng := rand.New(rand.NewPCG(9, 9))
	var list []map[string]any
	for n := 1; n <= segs; n++ {
		data := make([]byte, segSize)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		put(prefix+fmt.Sprintf("seg-%06d.m4s", n), data)
		list = append(list, map[string]any{"n": n, "start": (n - 1) * 4 * 48000, "duration": 4 * 48000, "size": segSize})
	}
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	end := start.Add(time.Duration(segs) * 4 * time.Second)
	meta := map[string]any{"id": id, "session": sess, "title": "Tải về", "publication": "trainer", "status": recorder.StatusComplete,
		"started_at": start, "ended_at": end, "duration": segs * 4, "segments": segs, "bytes": segs * segSize,
		"codecs": []string{"opus"}, "prefix": prefix, "renditions": []map[string]any{{"name": recorder.MainRendition, "dir": "",
			"tracks": []any{}, "segments": segs, "duration": segs * 4, "timescale": 48000, "primary_id": 3, "segment_list": list}}}
	mj, _ := json.Marshal(meta)
	put(prefix+"meta.json", mj)
	delete(meta["renditions"].([]map[string]any)[0], "segment_list")
	ij, _ := json.Marshal(map[string]any{"version": 1, "recordings": []any{meta}})
	put("recordings/index.json", ij)
	return newQuietRecorder(t, d), d, id
}

// newQuietRecorder is a recorder on store that logs nothing, closed at the end
// of the test.
func newQuietRecorder(t testing.TB, store recorder.Store) *recorder.Recorder {
	t.Helper()
	rec, err := recorder.New(context.Background(), recorder.Config{Store: store, SpoolDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = rec.Close(ctx)
	})
	return rec
}

// clientFrom returns an HTTP client whose connections come from the local
// address ip (any 127.0.0.0/8 address reaches a loopback server on Linux).
func clientFrom(ip string) *http.Client {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}}
}

// stalledDownload is GET path from 127.0.0.1 of which the client read only the
// response head, then stopped reading.
type stalledDownload struct {
	conn   net.Conn
	br     *bufio.Reader
	status int
	length int64
}

func startStalled(t *testing.T, base, path string) *stalledDownload {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: lectern\r\nAuthorization: Bearer %s\r\n\r\n", path, testAdmin)
	br := bufio.NewReaderSize(conn, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &stalledDownload{conn: conn, br: br, status: resp.StatusCode, length: resp.ContentLength}
}

// TestReplayDownloadSlowReaders: one address holds at most MaxDownloadsPerAddr
// downloads at once (the next gets 429 with the reason), another address is
// still served, and a client that stops reading is cut once it made no progress
// for WriteIdle: its slot is free again.
//
// Through the replay routes alone, and through the whole server (its
// middleware must let the handler reach the connection's deadlines).
func TestReplayDownloadSlowReaders(t *testing.T) {
	t.Run("routes", func(t *testing.T) {
		rec, d, id := newDownloadFixture(t, 2, 8<<20)
		_, base := replayServer(t, &ReplayConfig{Recorder: rec, Store: d, MaxDownloadsPerAddr: 2, WriteIdle: 500 * time.Millisecond})
		testSlowReaders(t, base, "/replay/"+id+"/download.mp4")
		testSlowSegment(t, base, "/replay/"+id+"/seg-000001.m4s")
	})
	t.Run("server", func(t *testing.T) {
		_, d, id := newDownloadFixture(t, 2, 8<<20)
		s := newStack(t, stackOptions{recorder: true, store: d, config: func(c *Config) {
			c.Replays.MaxDownloadsPerAddr, c.Replays.WriteIdle = 2, 500*time.Millisecond
		}})
		testSlowReaders(t, s.url, "/replay/"+id+"/download.mp4")
		testSlowSegment(t, s.url, "/replay/"+id+"/seg-000001.m4s")
	})
}

// testSlowSegment: a client that stops reading a segment is cut too.
func testSlowSegment(t *testing.T, base, path string) {
	s := startStalled(t, base, path)
	if s.status != 200 || s.length < 8<<20 {
		t.Fatalf("segment: %d, %d bytes", s.status, s.length)
	}
	s.wasCut(t, "stalled segment")
}

// wasCut waits (a minute at most: a bound of the test, not of the server) for
// the server to close the connection, reading what it sent before.
func (s *stalledDownload) wasCut(t *testing.T, what string) {
	t.Helper()
	// Nothing is read meanwhile: the server's writes block once the socket
	// buffers are full, and its write deadline (500 ms) passes.
	time.Sleep(3 * time.Second)
	_ = s.conn.SetReadDeadline(time.Now().Add(time.Minute))
	n, err := io.Copy(io.Discard, s.br)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s: still open after %d bytes", what, n)
	}
	if n >= s.length {
		t.Errorf("%s got all %d bytes: it was not cut", what, n)
	}
}

func testSlowReaders(t *testing.T, base, path string) {

	var stalled []*stalledDownload
	for range 2 {
		s := startStalled(t, base, path)
		if s.status != 200 || s.length < 16<<20 {
			t.Fatalf("download: %d, %d bytes", s.status, s.length)
		}
		stalled = append(stalled, s)
	}
	get := func(c *http.Client) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+testAdmin)
		req.Header.Set("Range", "bytes=0-99")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	local, other := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")
	// The two stalled downloads may still be moving bytes into socket buffers:
	// a third one from the same address is refused all the same.
	if status, body := get(local); status != 429 || !strings.Contains(body, "downloads") {
		t.Fatalf("third download from one address: %d %s, want 429 with the reason", status, body)
	}
	if status, body := get(other); status != 206 {
		t.Fatalf("download from another address: %d %s, want 206", status, body)
	}

	// The stalled readers are cut: their slots come back.
	deadline := time.Now().Add(time.Minute)
	for {
		status, body := get(local)
		if status == 206 {
			break
		}
		if status != 429 || time.Now().After(deadline) {
			t.Fatalf("after the stalled readers: %d %s", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, s := range stalled {
		s.wasCut(t, fmt.Sprintf("stalled download %d", i))
	}
}
