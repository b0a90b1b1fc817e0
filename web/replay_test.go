package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/pion/rtp"

	"lectern/auth"
	"lectern/catalog"
	"lectern/internal/clip"
	"lectern/internal/testpeer"
	"lectern/internal/testrec"
	"lectern/recorder"
	"lectern/sfu"
	"lectern/sfu/peer"
	"lectern/storage"
)

// replayStore is the store of a replay stack: a Dir or a MinIO bucket.
type testStore interface {
	recorder.Store
	replayStore
}

// keyLog wraps a store and remembers every key read, to prove that bad ids
// touch nothing, and the spans opened ("key@offset+length").
type keyLog struct {
	testStore
	mu    sync.Mutex
	keys  []string
	opens []string
}

func (k *keyLog) Open(ctx context.Context, key string, off, n int64) (io.ReadCloser, storage.ObjectInfo, error) {
	k.note(key)
	k.mu.Lock()
	k.opens = append(k.opens, fmt.Sprintf("%s@%d+%d", key, off, n))
	k.mu.Unlock()
	return k.testStore.Open(ctx, key, off, n)
}

// resetOpens returns (and forgets) the spans opened since the last call.
func (k *keyLog) resetOpens() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	opens := k.opens
	k.opens = nil
	return opens
}

func (k *keyLog) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	k.note(key)
	return k.testStore.Stat(ctx, key)
}

func (k *keyLog) note(key string) {
	k.mu.Lock()
	k.keys = append(k.keys, key)
	k.mu.Unlock()
}

func (k *keyLog) reset() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	keys := k.keys
	k.keys = nil
	return keys
}

// newReplayStack is newStack with a recorder attached the way cmd/lectern wires it:
// a registry event handler attaches every session when its first publication
// appears, and the replay routes are mounted next to the server's.
func newReplayStack(t *testing.T, store testStore, cache *ReplayCache) (*stack, *recorder.Recorder, *catalog.Catalog) {
	t.Helper()
	cat, log, broker := newStackBase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	rec, err := recorder.New(ctx, recorder.Config{Store: store, SpoolDir: t.TempDir(), Logger: log,
		RetryMin: 50 * time.Millisecond, RetryMax: time.Second,
		Title: func(id string) string { c, _ := cat.Get(id); return c.Title }})
	if err != nil {
		t.Fatal(err)
	}
	var reg *sfu.Registry
	reg = sfu.NewRegistry(sfu.RegistryConfig{Grace: -1, Logger: log, OnEvent: func(session, typ string, data any) {
		broker.Publish(session, typ, data)
		if typ == sfu.EventPublicationAdded {
			if sess, ok := reg.Lookup(session); ok {
				rec.Attach(sess)
			}
		}
	}})
	edge, err := peer.New(peer.Config{UDPAddr: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	issuer, _ := auth.NewIssuer(testSecret)
	h, err := New(Config{Catalog: cat, Registry: reg, WebRTC: edge, Events: broker, Tokens: issuer, AdminToken: testAdmin, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	router := chi.NewRouter()
	h.replayRoutes(router, &ReplayConfig{Recorder: rec, Store: store, Cache: cache})
	router.Handle("/*", h)
	t.Cleanup(func() { // after serveStack's cleanup has closed the sessions
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		if err := rec.Close(cctx); err != nil {
			t.Error(err)
		}
	})
	return serveStack(t, router, ctx, cancel, broker, reg, edge, issuer), rec, cat
}

// TestReplayOverHTTP records ~20 s from a real pion WHIP publisher sending an
// H.264 + Opus clip, then replays it over HTTP: ffprobe decodes the HLS playlist
// and the MP4 download with the duration and frame count that were sent; segments
// have their content type, ETag, ranges and caching; access is checked; bad ids
// touch nothing; the admin deletes it. Against a local Dir, and a real MinIO with
// segments served from the replay cache once read (the header checks then run
// on cached segments).
func TestReplayOverHTTP(t *testing.T) {
	c := testrec.LectureClip(t)
	t.Run("dir", func(t *testing.T) {
		t.Parallel()
		d := testrec.DirStore(t)
		testReplay(t, c, d, nil)
	})
	t.Run("minio", func(t *testing.T) {
		t.Parallel()
		s3, _ := testrec.MinIOStore(t)
		cache := NewReplayCache(64<<20, 0)
		testReplay(t, c, s3, cache)
		if cache.hits.Load() == 0 || cache.fills.Load() == 0 {
			t.Errorf("replay cache unused: %d hits, %d fills", cache.hits.Load(), cache.fills.Load())
		}
	})
}

func testReplay(t *testing.T, c *clip.Clip, store testStore, cache *ReplayCache) {
	logged := &keyLog{testStore: store}
	s, _, _ := newReplayStack(t, logged, cache)
	id := s.createSession("Chuyển đổi số - Bài 2")
	other := s.createSession("Another lecture")
	trainer := s.token(id, auth.RoleTrainer, "trainer")
	learner := s.token(id, auth.RoleLearner, "hv1")
	outsider := s.token(other, auth.RoleLearner, "hv2")

	rv := recordWholeClip(t, s, c, id, trainer, learner)

	base := s.url + "/replay/" + rv.ID
	for _, u := range []string{base + "/index.m3u8?token=" + learner, base + "/download.mp4?token=" + learner} {
		got := testrec.FFprobe(t, u)
		if !near(got.Duration, c.Duration.Seconds(), 0.5) || got.VideoFrames != len(c.Video) {
			t.Errorf("%s: %+v, want %v and %d frames", strings.Split(u, "?")[0], got, c.Duration, len(c.Video))
		}
	}
	testReplayHeaders(t, s, rv, learner)
	testReplayAccess(t, s, rv, learner, outsider)
	testReplayBadIDs(t, s, rv, logged)
	testReplayDelete(t, s, rv, learner, store)
}

func near(got, want, tol float64) bool { return got >= want-tol && got <= want+tol }

// recordWholeClip publishes the whole clip c once over WHIP (a pion peer) as the
// trainer of session, ends the WHIP session (DELETE) and waits until its
// recording is complete.
func recordWholeClip(t *testing.T, s *stack, c *clip.Clip, session, trainer, learner string) recordingSummary {
	t.Helper()
	var loc string
	pub, err := testpeer.NewPublisher(s.ctx, testpeer.Options{}, false, s.signal("/whip/"+session, trainer, &loc))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	err = c.Play(s.ctx, clip.PlayOptions{
		WriteVideo: func(p *rtp.Packet) error { return pub.Video.WriteRTP(p) },
		WriteAudio: func(p *rtp.Packet) error { return pub.Audio.WriteRTP(p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the last packets cross the loopback
	if resp, body := s.do("DELETE", loc, trainer, "", ""); resp.StatusCode != 200 {
		t.Fatalf("WHIP DELETE: %d %s", resp.StatusCode, body)
	}
	return waitRecording(t, s, learner, session)
}

// waitRecording waits until the session's recording is complete.
func waitRecording(t *testing.T, s *stack, token, session string) recordingSummary {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, body := s.do("GET", "/api/recordings?session="+session, token, "", "")
		if resp.StatusCode != 200 {
			t.Fatalf("list: %d %s", resp.StatusCode, body)
		}
		var page recordingPage
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Recordings) == 1 && page.Recordings[0].Status == recorder.StatusComplete {
			rv := page.Recordings[0]
			if rv.Title != "Chuyển đổi số - Bài 2" || rv.Publication != "trainer" || rv.Links["download"] == "" {
				t.Fatalf("recording %+v", rv)
			}
			return rv
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete recording: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func testReplayHeaders(t *testing.T, s *stack, rv recordingSummary, token string) {
	seg := "/replay/" + rv.ID + "/seg-000002.m4s"
	resp, full := s.do("GET", seg, token, "", "")
	h := resp.Header
	if resp.StatusCode != 200 || h.Get("Content-Type") != "video/iso.segment" || h.Get("ETag") == "" ||
		h.Get("Accept-Ranges") != "bytes" || !strings.Contains(h.Get("Cache-Control"), "immutable") ||
		h.Get("Content-Length") != strconv.Itoa(len(full)) || len(full) < 1000 {
		t.Fatalf("segment: %d %v (%d bytes)", resp.StatusCode, h, len(full))
	}
	size := len(full)
	for _, tc := range []struct {
		name, rng string
		status    int
		body      string
		cr        string
	}{
		{"first bytes", "bytes=0-99", 206, full[:100], fmt.Sprintf("bytes 0-99/%d", size)},
		{"middle", "bytes=100-199", 206, full[100:200], fmt.Sprintf("bytes 100-199/%d", size)},
		{"open end", fmt.Sprintf("bytes=%d-", size-10), 206, full[size-10:], fmt.Sprintf("bytes %d-%d/%d", size-10, size-1, size)},
		{"suffix", "bytes=-10", 206, full[size-10:], fmt.Sprintf("bytes %d-%d/%d", size-10, size-1, size)},
		{"past the end clipped", fmt.Sprintf("bytes=%d-%d", size-5, size+100), 206, full[size-5:], fmt.Sprintf("bytes %d-%d/%d", size-5, size-1, size)},
		{"beyond the end", fmt.Sprintf("bytes=%d-", size), 416, "", fmt.Sprintf("bytes */%d", size)},
		{"far beyond", "bytes=99999999-", 416, "", fmt.Sprintf("bytes */%d", size)},
		{"reversed", "bytes=50-10", 416, "", fmt.Sprintf("bytes */%d", size)},
		{"garbage", "bytes=abc", 416, "", fmt.Sprintf("bytes */%d", size)},
		// RFC 9110 §14.2: an origin server MUST ignore a range unit it does not know.
		{"other unit: whole", "items=0-1", 200, full, ""},
		{"several ranges: whole", "bytes=0-1,5-6", 200, full, ""},
	} {
		t.Run("range "+tc.name, func(t *testing.T) {
			resp, body := s.do("GET", seg, token, "", "", "Range", tc.rng)
			if resp.StatusCode != tc.status || (tc.body != "" && body != tc.body) || resp.Header.Get("Content-Range") != tc.cr {
				t.Fatalf("%s: %d %q (%d bytes)", tc.rng, resp.StatusCode, resp.Header.Get("Content-Range"), len(body))
			}
		})
	}
	if resp, _ := s.do("GET", seg, token, "", "", "If-None-Match", h.Get("ETag")); resp.StatusCode != 304 {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	if resp, body := s.do("HEAD", seg, token, "", ""); resp.StatusCode != 200 || body != "" || resp.Header.Get("Content-Length") != strconv.Itoa(size) {
		t.Errorf("HEAD: %d %v", resp.StatusCode, resp.Header)
	}
	resp, pl := s.do("GET", "/replay/"+rv.ID+"/index.m3u8", token, "", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.apple.mpegurl" ||
		!strings.Contains(pl, "#EXT-X-ENDLIST") || !strings.Contains(pl, "#EXT-X-PLAYLIST-TYPE:VOD") ||
		!strings.Contains(pl, `#EXT-X-MAP:URI="init.mp4"`) || !strings.Contains(pl, "#EXT-X-PROGRAM-DATE-TIME:") {
		t.Errorf("playlist: %d %v\n%s", resp.StatusCode, resp.Header, pl)
	}
	resp, _ = s.do("GET", "/replay/"+rv.ID+"/init.mp4", token, "", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/mp4" {
		t.Errorf("init: %d %v", resp.StatusCode, resp.Header)
	}
	dl := "/replay/" + rv.ID + "/download.mp4"
	resp, whole := s.do("GET", dl, token, "", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/mp4" || resp.Header.Get("Content-Length") != strconv.Itoa(len(whole)) {
		t.Fatalf("download: %d %v", resp.StatusCode, resp.Header)
	}
	// A range across the header and several segments equals the same bytes of the whole.
	from, to := 500, len(whole)/2
	resp, part := s.do("GET", dl, token, "", "", "Range", fmt.Sprintf("bytes=%d-%d", from, to))
	if resp.StatusCode != 206 || part != whole[from:to+1] {
		t.Errorf("download range: %d, %d bytes, equal %v", resp.StatusCode, len(part), part == whole[from:to+1])
	}
	if resp, _ := s.do("GET", dl, token, "", "", "Range", fmt.Sprintf("bytes=%d-", len(whole))); resp.StatusCode != 416 {
		t.Errorf("download range beyond the end: %d", resp.StatusCode)
	}
}

func testReplayAccess(t *testing.T, s *stack, rv recordingSummary, learner, outsider string) {
	for _, tc := range []struct {
		name, path, token string
		want              int
	}{
		{"list without token: nothing private", "/api/recordings", "", 200},
		{"get without token", "/api/recordings/" + rv.ID, "", 401},
		{"playlist without token", "/replay/" + rv.ID + "/index.m3u8", "", 401},
		{"segment of another session's learner", "/replay/" + rv.ID + "/seg-000001.m4s", outsider, 403},
		{"download of another session's learner", "/replay/" + rv.ID + "/download.mp4", outsider, 403},
		{"garbage token", "/replay/" + rv.ID + "/index.m3u8", "not-a-token", 401},
		{"learner", "/api/recordings/" + rv.ID, learner, 200},
		{"admin", "/api/recordings/" + rv.ID, testAdmin, 200},
		{"unknown recording", "/api/recordings/zzzzzzzzzz-trainer-20200101-000000-000000", testAdmin, 404},
		{"bad cursor", "/api/recordings?cursor=!!", testAdmin, 400},
		{"bad date", "/api/recordings?from=yesterday", testAdmin, 400},
		{"bad limit", "/api/recordings?limit=0", testAdmin, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.do("GET", tc.path, tc.token, "", "")
			if resp.StatusCode != tc.want {
				t.Fatalf("%d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			if tc.name == "list without token: nothing private" && strings.Contains(body, rv.ID) {
				t.Fatalf("private recording listed: %s", body)
			}
		})
	}
	// Once the session's replays are public, no token is needed.
	resp, _ := s.do("GET", "/replay/"+rv.ID+"/index.m3u8", "", "", "")
	if resp.StatusCode != 401 {
		t.Fatalf("before public: %d", resp.StatusCode)
	}
}

func testReplayBadIDs(t *testing.T, s *stack, rv recordingSummary, logged *keyLog) {
	logged.reset()
	for _, path := range []string{
		"/replay/..%2F..%2Fetc/index.m3u8",
		"/replay/../index.m3u8",
		"/replay/%2e%2e/index.m3u8",
		"/replay/" + rv.ID + "/..%2Fmeta.json",
		"/replay/" + rv.ID + "/%2e%2e%2f%2e%2e%2findex.json",
		"/replay/" + rv.ID + "/meta.json",
		"/replay/" + rv.ID + "/journal.jsonl",
		"/replay/" + rv.ID + "/screen/index.m3u8",
		"/replay/" + rv.ID + "/screen%2F..%2Findex.m3u8",
		"/replay/" + rv.ID + "/seg-1.m4s",
		"/replay/" + rv.ID + "/seg-000001.m4s%00",
		"/replay/" + rv.ID + "%2F..%2F..%2Findex.json/index.m3u8",
		"/replay/" + strings.ToUpper(rv.ID) + "/index.m3u8",
		"/api/recordings/..%2Findex.json",
		"/replay/" + rv.ID + "/nope/download.mp4",
	} {
		t.Run(path, func(t *testing.T) {
			resp, body := s.do("GET", path, testAdmin, "", "")
			if resp.StatusCode != 404 {
				t.Fatalf("%d, want 404: %s", resp.StatusCode, body)
			}
		})
	}
	if keys := logged.reset(); len(keys) > 0 {
		t.Errorf("bad ids read the store: %q", keys)
	}
}

func testReplayDelete(t *testing.T, s *stack, rv recordingSummary, learner string, store testStore) {
	_, body := s.do("GET", "/api/recordings/"+rv.ID, testAdmin, "", "")
	var detail recordingView
	if err := json.Unmarshal([]byte(body), &detail); err != nil || detail.Prefix == "" || len(detail.Renditions) != 1 {
		t.Fatalf("detail: %v %s", err, body)
	}
	if resp, _ := s.do("DELETE", "/api/recordings/"+rv.ID, learner, "", ""); resp.StatusCode != 403 {
		t.Fatalf("learner delete: %d", resp.StatusCode)
	}
	if resp, body := s.do("DELETE", "/api/recordings/"+rv.ID, testAdmin, "", ""); resp.StatusCode != 204 {
		t.Fatalf("admin delete: %d %s", resp.StatusCode, body)
	}
	if resp, _ := s.do("GET", "/api/recordings/"+rv.ID, testAdmin, "", ""); resp.StatusCode != 404 {
		t.Fatalf("deleted recording: %d", resp.StatusCode)
	}
	if resp, _ := s.do("GET", "/replay/"+rv.ID+"/seg-000001.m4s", testAdmin, "", ""); resp.StatusCode != 404 {
		t.Fatalf("deleted segment: %d", resp.StatusCode)
	}
	var left []string
	_ = store.List(context.Background(), detail.Prefix, func(o storage.ObjectInfo) error {
		left = append(left, o.Key)
		return nil
	})
	if len(left) > 0 {
		t.Fatalf("objects left after delete: %q", left)
	}
}
