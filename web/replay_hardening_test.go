package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/auth"
	"lectern/internal/clip"
	"lectern/internal/testpeer"
	"lectern/internal/testrec"
	"lectern/recorder"
)

// TestReplayRangeOverflow: "bytes=0-9223372036854775807" (the largest last
// position a client can send) asks for the rest of the object; RFC 9110 §14.1.2
// wants 206 with what there is, on an uncached or a cached segment and on a
// playlist alike. Before, the length overflowed into a 416 that showed the
// store's key.
func TestReplayRangeOverflow(t *testing.T) {
	f := newCacheFixture(t, 64<<20, 0)
	seg := cacheRecs[0] + "/seg-000002.m4s"
	pl := cacheRecs[0] + "/index.m3u8"
	plBody := f.get(f.uncached, "GET", pl).body
	for _, tc := range []struct {
		name, base, file string
		from             int
		fill             bool
		want             []byte
	}{
		{"uncached segment", f.uncached, seg, 0, false, f.objects[seg]},
		{"uncached segment from 5", f.uncached, seg, 5, false, f.objects[seg]},
		{"segment on a cache miss", f.cached, seg, 0, false, f.objects[seg]},
		{"cached segment", f.cached, seg, 0, true, f.objects[seg]},
		{"cached segment from 5", f.cached, seg, 5, true, f.objects[seg]},
		{"playlist", f.uncached, pl, 0, false, plBody},
		{"playlist from 5", f.cached, pl, 5, false, plBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fill {
				f.get(tc.base, "GET", tc.file)
			}
			rng := fmt.Sprintf("bytes=%d-9223372036854775807", tc.from)
			got := f.get(tc.base, "GET", tc.file, "Range", rng)
			size := len(tc.want)
			if got.status != 206 || !bytes.Equal(got.body, tc.want[tc.from:]) ||
				got.header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", tc.from, size-1, size) {
				t.Fatalf("%s: %d %q, %d bytes (want 206, %d bytes): %.200s", rng, got.status,
					got.header.Get("Content-Range"), len(got.body), size-tc.from, got.body)
			}
		})
	}
}

// TestReplayErrorsHideStoreKeys: no replay error answer names an object of the
// store (recordings/{session}/{id}/...): they are internal.
func TestReplayErrorsHideStoreKeys(t *testing.T) {
	f := newCacheFixture(t, 64<<20, 0)
	rec := cacheRecs[0] + "/"
	f.get(f.cached, "GET", rec+"seg-000001.m4s") // cached: its 416s come from memory
	for _, tc := range []struct {
		name, file string
		hdr        []string
		status     int
	}{
		{"range beyond the end, uncached", rec + "seg-000002.m4s", []string{"Range", "bytes=999999-"}, 416},
		{"range beyond the end, closed", rec + "seg-000002.m4s", []string{"Range", "bytes=999999-1000000"}, 416},
		{"range beyond the end, cached", rec + "seg-000001.m4s", []string{"Range", "bytes=999999-"}, 416},
		{"garbage range", rec + "seg-000002.m4s", []string{"Range", "bytes=x-y"}, 416},
		{"playlist range beyond the end", rec + "index.m3u8", []string{"Range", "bytes=999999-"}, 416},
		{"segment not stored", rec + "seg-000009.m4s", nil, 404},
		{"segment not stored, with a range", rec + "seg-000042.m4s", []string{"Range", "bytes=0-"}, 404},
		{"download without meta.json", rec + "download.mp4", nil, 404},
		{"unknown recording", "sesszzzzzz-trainer-20260301-080000-00aa01/index.m3u8", nil, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, base := range []string{f.uncached, f.cached} {
				got := f.get(base, "GET", tc.file, tc.hdr...)
				var e errorBody
				if got.status != tc.status || json.Unmarshal(got.body, &e) != nil || e.Status != tc.status {
					t.Fatalf("%d %s, want %d with a JSON error", got.status, got.body, tc.status)
				}
				if strings.Contains(e.Error, "recordings/") || strings.Contains(e.Error, f.key(tc.file)) {
					t.Errorf("the error names a store key: %q", e.Error)
				}
			}
		})
	}
}

// TestReplayListWhileRecording: while a lecture is recorded, the list and the
// recording's own description tell the same segments and duration (the list
// said 0 and 0 until the end).
func TestReplayListWhileRecording(t *testing.T) {
	c := testrec.LectureClip(t)
	d := testrec.DirStore(t)
	s, _, _ := newReplayStack(t, d, nil)
	id := s.createSession("Bài đang ghi")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	pub, err := testpeer.NewPublisher(s.ctx, testpeer.Options{}, false, s.signal("/whip/"+id, trainer, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ctx, stop := context.WithCancel(s.ctx)
	played := make(chan error, 1)
	go func() {
		played <- c.Play(ctx, clip.PlayOptions{
			WriteVideo: func(p *rtp.Packet) error { return pub.Video.WriteRTP(p) },
			WriteAudio: func(p *rtp.Packet) error { return pub.Audio.WriteRTP(p) },
		})
	}()
	defer func() {
		stop()
		<-played
	}()

	listed := func() recordingSummary {
		resp, body := s.do("GET", "/api/recordings?session="+id, trainer, "", "")
		var page recordingPage
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &page) != nil || len(page.Recordings) > 1 {
			t.Fatalf("list: %d %s", resp.StatusCode, body)
		}
		if len(page.Recordings) == 0 {
			return recordingSummary{}
		}
		return page.Recordings[0]
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		before := listed()
		if before.ID != "" {
			resp, body := s.do("GET", "/api/recordings/"+before.ID, trainer, "", "")
			var item recordingView
			if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &item) != nil {
				t.Fatalf("item: %d %s", resp.StatusCode, body)
			}
			after := listed()
			// Compared when no segment was stored between the requests.
			if before.Segments == after.Segments && item.Status == recorder.StatusRecording &&
				item.Segments >= 2 && before.Status == recorder.StatusRecording {
				if before.Segments != item.Segments || before.Duration != item.Duration || before.Bytes != item.Bytes {
					t.Fatalf("while recording, the list says %d segments, %v s, %d bytes; the recording %d, %v s, %d bytes",
						before.Segments, before.Duration, before.Bytes, item.Segments, item.Duration, item.Bytes)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recording with 2 segments in the list and the item within 30 s: %+v", before)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBrowserReplaysLostMedia: the replay library shows which recordings lost
// media while recorded (the spool was full), with how much, in Chromium.
func TestBrowserReplaysLostMedia(t *testing.T) {
	ctx := context.Background()
	d := testrec.DirStore(t)
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	end := start.Add(20 * time.Second)
	var metas []recorder.Meta
	for i, lost := range []*recorder.LostMedia{{Segments: 3, Seconds: 12}, nil} {
		id := fmt.Sprintf("lostmedia1-trainer-20260301-08000%d-00ee0%d", i, i)
		metas = append(metas, recorder.Meta{ID: id, Session: "lostmedia1", Title: fmt.Sprintf("Bài %d", i+1), Publication: "trainer",
			Status: recorder.StatusComplete, StartedAt: start.Add(time.Duration(i) * time.Second), EndedAt: &end, Duration: 20,
			Segments: 2, LostMedia: lost, Prefix: "recordings/lostmedia1/" + id + "/", Codecs: []string{"avc1.42e01f"},
			Renditions: []recorder.RenditionInfo{{Name: recorder.MainRendition, Segments: 2, Duration: 20, Timescale: 90000, LostMedia: lost}}})
	}
	index, _ := json.Marshal(map[string]any{"version": 1, "recordings": metas})
	if err := d.Put(ctx, "recordings/index.json", bytes.NewReader(index), int64(len(index)), ""); err != nil {
		t.Fatal(err)
	}
	pages, err := NewPages()
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, stackOptions{pages: pages, recorder: true, store: d})
	b := newBrowser(t)
	tab := b.tab("replays")
	tab.open(s.url + "/replays?token=" + testAdmin)
	lostRow := `tr[data-recording="` + metas[0].ID + `"]`
	whole := `tr[data-recording="` + metas[1].ID + `"]`
	tab.waitJS("both recordings listed", `!!document.querySelector('`+lostRow+`') && !!document.querySelector('`+whole+`')`, 15*time.Second)
	if got := tab.text(lostRow + " .lost-media"); !strings.Contains(got, "0:12") {
		t.Errorf("lost media note %q, want the 12 s lost", got)
	}
	var notes int
	if err := tab.eval(`document.querySelectorAll('`+whole+` .lost-media').length`, &notes); err != nil || notes != 0 {
		t.Errorf("a whole recording has %d lost media notes (%v)", notes, err)
	}
	tab.noConsoleErrors()
}

// FuzzReplayRange: whatever Range and If-Range headers arrive, a download (a
// header and stored parts) and a segment (from the store, then from the cache)
// answer 200 with every byte, 206 with exactly the bytes its Content-Range
// names, or a JSON 416 with the size and no store key; never anything else.
// It replaces FuzzParseRange: Range parsing is http.ServeContent's now, and what
// is ours is the reader it seeks and reads.
func FuzzReplayRange(f *testing.F) {
	for _, h := range []string{"bytes=0-99", "bytes=100-", "bytes=-10", "bytes=0-9223372036854775807",
		"bytes=5-9223372036854775807", "bytes=9223372036854775807-", "bytes=-9223372036854775807", "bytes=0-1,5-6",
		"bytes=50-10", "bytes=abc", "items=0-1", "bytes=-0", "bytes= 1-2", "bytes=+1-2", "bytes=1--2", "bytes=-",
		"bytes=1000-5999", "bytes=1090-1110", "bytes=15999-", "bytes=16000-"} {
		f.Add(h, "")
	}
	f.Add("bytes=10-19", `"stale"`)
	f.Add("bytes=10-19", "Sun, 01 Mar 2020 08:00:00 GMT")
	rec, d, id := newDownloadFixture(f, 3, 5000)
	cache := NewReplayCache(1<<20, 0)
	_, base := replayServer(f, &ReplayConfig{Recorder: rec, Store: d, Cache: cache, MaxDownloadsPerAddr: -1})
	client := &http.Client{}
	fetch := func(path string, hdr ...string) (*http.Response, []byte, error) {
		req, err := http.NewRequest("GET", base+path, nil)
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+testAdmin)
		for i := 0; i+1 < len(hdr); i += 2 {
			if hdr[i+1] != "" {
				req.Header.Set(hdr[i], hdr[i+1])
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}
	paths := []string{"/replay/" + id + "/download.mp4", "/replay/" + id + "/seg-000002.m4s", "/replay/" + id + "/seg-000002.m4s"}
	wholes := map[string][]byte{}
	for _, p := range paths {
		resp, body, err := fetch(p)
		if err != nil || resp.StatusCode != 200 {
			f.Fatalf("%s: %v", p, err)
		}
		wholes[p] = body
	}
	f.Fuzz(func(t *testing.T, rng, ifRange string) {
		for _, p := range paths {
			whole := wholes[p]
			resp, body, err := fetch(p, "Range", rng, "If-Range", ifRange)
			if err != nil {
				return // not a header the client sends
			}
			switch resp.StatusCode {
			case 200:
				if !bytes.Equal(body, whole) {
					t.Fatalf("%s %q: 200 with %d bytes of %d", p, rng, len(body), len(whole))
				}
			case 206:
				var first, last, size int
				cr := resp.Header.Get("Content-Range")
				if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &first, &last, &size); err != nil ||
					size != len(whole) || first < 0 || first > last || last >= size || !bytes.Equal(body, whole[first:last+1]) {
					t.Fatalf("%s %q: 206 %q with %d bytes", p, rng, cr, len(body))
				}
			case 416:
				var e errorBody
				if json.Unmarshal(body, &e) != nil || e.Status != 416 || strings.Contains(e.Error, "recordings/") ||
					resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(whole)) {
					t.Fatalf("%s %q: 416 %q %s", p, rng, resp.Header.Get("Content-Range"), body)
				}
			default:
				t.Fatalf("%s %q (If-Range %q): %d %s", p, rng, ifRange, resp.StatusCode, body)
			}
		}
	})
}
