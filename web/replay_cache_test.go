package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"lectern/auth"
	"lectern/catalog"
	"lectern/events"
	"lectern/internal/testrec"
	"lectern/recorder"
	"lectern/sfu"
	"lectern/sfu/peer"
	"lectern/storage"
)

// cacheFixture is a replay server over a Dir store holding two finished
// recordings with synthetic objects, with and without a replay cache in front
// of the same store; store reads are logged.
type cacheFixture struct {
	t        *testing.T
	cache    *ReplayCache
	cached   string // URL of the server with the cache
	uncached string // URL of the server without
	logged   *keyLog
	objects  map[string][]byte // file path under /replay/ → content
	rec      *recorder.Recorder
}

// The recordings and their objects' sizes (seg-000004 is over the cache's
// object limit in the tests that set one of 200 kB).
var (
	cacheRecs  = []string{"sessaaaaaa-trainer-20260301-080000-00aa01", "sessbbbbbb-trainer-20260301-090000-00bb02"}
	cacheFiles = map[string]int{"init.mp4": 900, "seg-000001.m4s": 100_000, "seg-000002.m4s": 150_000,
		"seg-000003.m4s": 120_000, "seg-000004.m4s": 250_000}
)

func newCacheFixture(t *testing.T, maxBytes, maxObject int64) *cacheFixture {
	t.Helper()
	ctx := context.Background()
	d := testrec.DirStore(t)
	f := &cacheFixture{t: t, logged: &keyLog{testStore: d}, objects: map[string][]byte{}}
	rng := rand.New(rand.NewPCG(7, 7))
	var metas []recorder.Meta
	for i, id := range cacheRecs {
		sess := id[:10]
		start := time.Date(2026, 3, 1, 8+i, 0, 0, 0, time.UTC)
		end := start.Add(16 * time.Second)
		m := recorder.Meta{ID: id, Session: sess, Title: "Bài " + fmt.Sprint(i), Publication: "trainer", Status: recorder.StatusComplete,
			StartedAt: start, EndedAt: &end, Duration: 16, Segments: 4, Prefix: "recordings/" + sess + "/" + id + "/",
			Codecs: []string{"avc1.42e01f"}, Renditions: []recorder.RenditionInfo{{Name: recorder.MainRendition, Segments: 4, Duration: 16, Timescale: 90000}}}
		metas = append(metas, m)
		for name, size := range cacheFiles {
			data := make([]byte, size)
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			if err := d.Put(ctx, m.Prefix+name, bytes.NewReader(data), int64(size), ""); err != nil {
				t.Fatal(err)
			}
			f.objects[id+"/"+name] = data
		}
		pl := "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:4.000,\nseg-000001.m4s\n#EXT-X-ENDLIST\n"
		if err := d.Put(ctx, m.Prefix+"index.m3u8", strings.NewReader(pl), int64(len(pl)), ""); err != nil {
			t.Fatal(err)
		}
	}
	index, _ := json.Marshal(map[string]any{"version": 1, "recordings": metas})
	if err := d.Put(ctx, "recordings/index.json", bytes.NewReader(index), int64(len(index)), ""); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var err error
	f.rec, err = recorder.New(ctx, recorder.Config{Store: f.logged, SpoolDir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = f.rec.Close(cctx)
	})
	f.cache = NewReplayCache(maxBytes, maxObject)
	f.cached = f.server(f.cache)
	f.uncached = f.server(nil)
	f.logged.reset()
	return f
}

// server serves the fixture's recordings, with cache (or none).
func (f *cacheFixture) server(cache *ReplayCache) string {
	_, url := replayServer(f.t, &ReplayConfig{Recorder: f.rec, Store: f.logged, Cache: cache})
	return url
}

// replayServer is an HTTP server of the replay routes of rc, without WebRTC
// traffic; it stops when the test ends. It returns the registry and the URL.
func replayServer(tb testing.TB, rc *ReplayConfig) (*sfu.Registry, string) {
	tb.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cat, err := catalog.Open(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: -1, Logger: log})
	edge, err := peer.New(peer.Config{UDPAddr: "127.0.0.1:0", Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	broker := events.NewBroker(events.Options{Logger: log})
	issuer, _ := auth.NewIssuer(testSecret)
	h, err := New(Config{Catalog: cat, Registry: reg, WebRTC: edge, Events: broker, Tokens: issuer, AdminToken: testAdmin, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	router := chi.NewRouter()
	h.replayRoutes(router, rc)
	srv := httptest.NewServer(router)
	tb.Cleanup(func() {
		srv.Close()
		broker.Close()
		reg.CloseAll()
		_ = edge.Close()
	})
	return reg, srv.URL
}

// response is what a test compares of an HTTP response.
type response struct {
	status int
	header http.Header // without Date
	body   []byte
}

// get requests /replay/{file} (file is "<recording>/<name>") from base.
func (f *cacheFixture) get(base, method, file string, hdr ...string) response {
	f.t.Helper()
	req, _ := http.NewRequest(method, base+"/replay/"+file, nil)
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Header.Del("Date")
	return response{resp.StatusCode, resp.Header, body}
}

// reads returns (and forgets) the store keys read since the last call.
func (f *cacheFixture) reads() []string { return f.logged.reset() }

func (f *cacheFixture) key(file string) string {
	id, name, _ := strings.Cut(file, "/")
	return "recordings/" + id[:10] + "/" + id + "/" + name
}

func sameResponse(t *testing.T, what string, got, want response) {
	t.Helper()
	if got.status != want.status || !bytes.Equal(got.body, want.body) || fmt.Sprint(got.header) != fmt.Sprint(want.header) {
		t.Errorf("%s: got %d %v (%d bytes), want %d %v (%d bytes)", what, got.status, got.header, len(got.body),
			want.status, want.header, len(want.body))
	}
}

// TestReplayCacheHitMatchesMiss: a segment served from memory has the bytes and
// every header (ETag, Content-Type, Last-Modified, Accept-Ranges, Cache-Control,
// Content-Length) of the same segment read from the store, with or without a
// cache; HEAD and If-None-Match on a cached segment answer as the uncached path
// does; none of them reads the store.
func TestReplayCacheHitMatchesMiss(t *testing.T) {
	f := newCacheFixture(t, 64<<20, 0)
	for _, name := range []string{"init.mp4", "seg-000002.m4s"} {
		file := cacheRecs[0] + "/" + name
		miss := f.get(f.cached, "GET", file)
		if miss.status != 200 || !bytes.Equal(miss.body, f.objects[file]) || miss.header.Get("ETag") == "" ||
			miss.header.Get("Last-Modified") == "" || !strings.Contains(miss.header.Get("Cache-Control"), "immutable") {
			t.Fatalf("%s: miss %d %v", name, miss.status, miss.header)
		}
		if got := f.reads(); !slices.Equal(got, []string{f.key(file)}) {
			t.Fatalf("%s: the miss read %q", name, got)
		}
		sameResponse(t, name+" uncached server", f.get(f.uncached, "GET", file), miss)
		f.reads()
		sameResponse(t, name+" hit", f.get(f.cached, "GET", file), miss)
		head := f.get(f.uncached, "HEAD", file)
		sameResponse(t, name+" HEAD hit", f.get(f.cached, "HEAD", file), head)
		etag := miss.header.Get("ETag")
		notMod := f.get(f.uncached, "GET", file, "If-None-Match", etag)
		if notMod.status != 304 {
			t.Fatalf("If-None-Match uncached: %d", notMod.status)
		}
		sameResponse(t, name+" If-None-Match hit", f.get(f.cached, "GET", file, "If-None-Match", `"other", `+etag), notMod)
		f.reads() // the uncached server's
		for range 3 {
			f.get(f.cached, "GET", file)
		}
		if got := f.reads(); len(got) > 0 {
			t.Errorf("%s: hits read the store: %q", name, got)
		}
	}
	if h, m := f.cache.hits.Load(), f.cache.misses.Load(); m != 2 || h != 2*(1+1+1+3) {
		t.Errorf("%d hits, %d misses", h, m)
	}
}

// TestReplayCacheRanges: byte ranges, 416s and If-Range on a cached segment
// answer exactly as the store-backed path does, without reading the store.
func TestReplayCacheRanges(t *testing.T) {
	f := newCacheFixture(t, 64<<20, 0)
	file := cacheRecs[0] + "/seg-000001.m4s"
	size := cacheFiles["seg-000001.m4s"]
	f.get(f.cached, "GET", file) // fills
	etag := f.get(f.uncached, "GET", file).header.Get("ETag")
	f.reads()
	for _, tc := range []struct {
		name   string
		hdr    []string
		status int
	}{
		{"first bytes", []string{"Range", "bytes=0-99"}, 206},
		{"middle", []string{"Range", "bytes=100-199"}, 206},
		{"open end", []string{"Range", fmt.Sprintf("bytes=%d-", size-10)}, 206},
		{"from zero", []string{"Range", "bytes=0-"}, 206},
		{"suffix", []string{"Range", "bytes=-10"}, 206},
		{"suffix longer than the object", []string{"Range", fmt.Sprintf("bytes=-%d", size+5)}, 206},
		{"past the end clipped", []string{"Range", fmt.Sprintf("bytes=%d-%d", size-5, size+100)}, 206},
		{"last byte", []string{"Range", fmt.Sprintf("bytes=%d-%d", size-1, size-1)}, 206},
		{"beyond the end", []string{"Range", fmt.Sprintf("bytes=%d-", size)}, 416},
		{"far beyond", []string{"Range", "bytes=99999999-"}, 416},
		{"reversed", []string{"Range", "bytes=50-10"}, 416},
		{"garbage", []string{"Range", "bytes=abc"}, 416},
		{"other unit: whole", []string{"Range", "items=0-1"}, 200}, // RFC 9110 §14.2: ignored
		{"empty suffix", []string{"Range", "bytes=-0"}, 416},
		{"several ranges: whole", []string{"Range", "bytes=0-1,5-6"}, 200},
		{"If-Range matching", []string{"Range", "bytes=10-19", "If-Range", etag}, 206},
		{"If-Range stale: whole", []string{"Range", "bytes=10-19", "If-Range", `"stale"`}, 200},
		{"range and If-None-Match", []string{"Range", "bytes=10-19", "If-None-Match", etag}, 304},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := f.get(f.uncached, "GET", file, tc.hdr...)
			if want.status != tc.status {
				t.Fatalf("uncached: %d, want %d", want.status, tc.status)
			}
			f.reads()
			got := f.get(f.cached, "GET", file, tc.hdr...)
			if tc.status == 416 {
				// The same answer; only the error text may differ (the store-backed
				// path reports the store's own message, which differs by store).
				var e errorBody
				if err := json.Unmarshal(got.body, &e); err != nil || e.Status != 416 || !strings.Contains(e.Error, "range not satisfiable") {
					t.Errorf("416 body %s", got.body)
				}
				for _, r := range []*response{&got, &want} {
					r.body = nil
					r.header.Del("Content-Length")
				}
				if got.header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
					t.Errorf("416 Content-Range %q", got.header.Get("Content-Range"))
				}
			}
			sameResponse(t, "hit", got, want)
			if keys := f.reads(); len(keys) > 0 {
				t.Errorf("the hit read the store: %q", keys)
			}
		})
	}
}

// TestReplayCacheWhatIsKept: only whole immutable objects up to the object limit
// enter the cache: not playlists, not objects over the limit, not ranges that
// leave part of the object unread, not HEAD; "bytes=0-" (ffmpeg's first
// request) reads the whole object and does.
func TestReplayCacheWhatIsKept(t *testing.T) {
	f := newCacheFixture(t, 64<<20, 200_000)
	rec := cacheRecs[0] + "/"
	for _, tc := range []struct {
		name, file string
		hdr        []string
		kept       bool
	}{
		{"playlist", "index.m3u8", nil, false},
		{"over the object limit", "seg-000004.m4s", nil, false},
		{"part of a segment", "seg-000001.m4s", []string{"Range", "bytes=10-99"}, false},
		{"the end of a segment", "seg-000001.m4s", []string{"Range", "bytes=10-"}, false},
		{"HEAD", "seg-000001.m4s", nil, false},
		{"bytes=0-", "seg-000001.m4s", []string{"Range", "bytes=0-"}, true},
		{"whole init", "init.mp4", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "GET"
			if tc.name == "HEAD" {
				method = "HEAD"
			}
			first := f.get(f.cached, method, rec+tc.file, tc.hdr...)
			if first.status/100 != 2 {
				t.Fatalf("%d", first.status)
			}
			f.reads()
			second := f.get(f.cached, method, rec+tc.file, tc.hdr...)
			sameResponse(t, "second request", second, first)
			if read := len(f.reads()) > 0; read == tc.kept {
				t.Fatalf("second request read the store: %v; want it kept in the cache: %v", read, tc.kept)
			}
		})
	}
	if objects, size := f.cache.stats(); objects != 2 || size != int64(cacheFiles["seg-000001.m4s"]+cacheFiles["init.mp4"]) {
		t.Fatalf("cache holds %d objects, %d bytes", objects, size)
	}
}

// TestReplayCacheLRU: the cache holds at most its bound in bytes, evicting the
// least recently used objects (a hit counts as a use).
func TestReplayCacheLRU(t *testing.T) {
	const bound = 300_000
	f := newCacheFixture(t, bound, 0)
	rec := cacheRecs[0] + "/"
	a, b, c := rec+"seg-000001.m4s", rec+"seg-000002.m4s", rec+"seg-000003.m4s" // 100, 150, 120 kB
	cached := func(file string) bool {
		f.reads()
		if r := f.get(f.cached, "GET", file); r.status != 200 || !bytes.Equal(r.body, f.objects[file]) {
			t.Fatalf("%s: %d", file, r.status)
		}
		return len(f.reads()) == 0
	}
	f.get(f.cached, "GET", a)
	f.get(f.cached, "GET", b) // 250 kB
	// a is now the most recently used.
	if !cached(a) {
		t.Fatal("a not kept")
	}
	f.get(f.cached, "GET", c) // 370 kB > bound: b, the least recently used, goes
	if objects, size := f.cache.stats(); objects != 2 || size != 220_000 {
		t.Fatalf("%d objects, %d bytes", objects, size)
	}
	if !cached(a) || !cached(c) {
		t.Fatal("a or c evicted")
	}
	if cached(b) { // fetched again: kept, evicting a (c was used after a)
		t.Fatal("b was kept beyond the bound")
	}
	if cached(a) {
		t.Fatal("a, then the least recently used, was not evicted")
	}
	if objects, size := f.cache.stats(); size > bound || objects != 2 {
		t.Fatalf("%d objects, %d bytes over the bound of %d", objects, size, bound)
	}
	if f.cache.evictions.Load() < 3 {
		t.Errorf("%d evictions counted", f.cache.evictions.Load())
	}
	// Many clients at once, with a cache smaller than what they read: every body
	// is right and the bound holds (run with -race).
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				file := cacheRecs[(i+j)%2] + "/" + fmt.Sprintf("seg-%06d.m4s", 1+(i*j)%3)
				req, _ := http.NewRequest("GET", f.cached+"/replay/"+file, nil)
				req.Header.Set("Authorization", "Bearer "+testAdmin)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !bytes.Equal(body, f.objects[file]) {
					t.Errorf("%s: wrong body", file)
				}
				if _, size := f.cache.stats(); size > bound {
					t.Errorf("cache at %d bytes", size)
				}
			}
		})
	}
	wg.Wait()
}

// TestReplayCacheDelete: deleting a recording drops its objects from the cache
// (and only its objects); they are then gone.
func TestReplayCacheDelete(t *testing.T) {
	f := newCacheFixture(t, 64<<20, 0)
	for _, id := range cacheRecs {
		for _, name := range []string{"init.mp4", "seg-000001.m4s", "seg-000002.m4s"} {
			f.get(f.cached, "GET", id+"/"+name)
		}
	}
	if objects, _ := f.cache.stats(); objects != 6 {
		t.Fatalf("%d objects cached", objects)
	}
	req, _ := http.NewRequest("DELETE", f.cached+"/api/recordings/"+cacheRecs[0], nil)
	req.Header.Set("Authorization", "Bearer "+testAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	f.cache.mu.Lock()
	var left []string
	for key := range f.cache.items {
		left = append(left, key)
	}
	f.cache.mu.Unlock()
	slices.Sort(left)
	if len(left) != 3 || slices.ContainsFunc(left, func(k string) bool { return strings.Contains(k, cacheRecs[0]) }) {
		t.Fatalf("cached after the delete: %q", left)
	}
	if r := f.get(f.cached, "GET", cacheRecs[0]+"/seg-000001.m4s"); r.status != 404 {
		t.Fatalf("deleted segment: %d", r.status)
	}
	f.reads()
	if r := f.get(f.cached, "GET", cacheRecs[1]+"/seg-000001.m4s"); r.status != 200 || len(f.reads()) > 0 {
		t.Fatalf("the other recording's segment: %d, or read from the store", r.status)
	}
	// A fill that began before a deletion is not kept.
	gen := f.cache.generation()
	f.cache.evictPrefix("recordings/nothing/")
	info := storage.ObjectInfo{Size: 3}
	if f.cache.put("recordings/x/seg-000001.m4s", info, []byte("abc"), gen) != nil {
		t.Fatal("a fill older than a deletion was kept")
	}
}

// TestReplayCacheMetrics: the cache's counters and size are exported.
func TestReplayCacheMetrics(t *testing.T) {
	f := newCacheFixture(t, 64<<20, 0)
	file := cacheRecs[0] + "/seg-000001.m4s"
	f.get(f.cached, "GET", file)
	f.get(f.cached, "GET", file)
	f.get(f.cached, "GET", file, "Range", "bytes=0-9")
	reg := prometheus.NewRegistry()
	reg.MustRegister(f.cache)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			got[mf.GetName()] = c.GetValue()
		} else {
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	size := float64(cacheFiles["seg-000001.m4s"])
	for name, want := range map[string]float64{
		"lectern_replay_cache_hits_total": 2, "lectern_replay_cache_misses_total": 1, "lectern_replay_cache_fills_total": 1,
		"lectern_replay_cache_served_bytes_total": size + 10, "lectern_replay_cache_evictions_total": 0,
		"lectern_replay_cache_objects": 1, "lectern_replay_cache_bytes": size, "lectern_replay_cache_limit_bytes": 64 << 20,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
}

// TestReplayConditionalsAndSpans: replies follow RFC 9110's conditional
// requests (If-Modified-Since, If-Match, If-Range with a date) on segments and
// downloads alike, and the store is asked for exactly the bytes sent: nothing
// for a HEAD, a 304, a 412 or a 416; the range itself for a 206, also when it
// spans several parts of a download.
func TestReplayConditionalsAndSpans(t *testing.T) {
	f := newCacheFixture(t, 64<<20, 0)
	file := cacheRecs[0] + "/seg-000002.m4s"
	key := f.key(file)
	whole := f.get(f.uncached, "GET", file)
	etag, lastMod := whole.header.Get("ETag"), whole.header.Get("Last-Modified")
	if whole.status != 200 || etag == "" || lastMod == "" {
		t.Fatalf("segment: %d %v", whole.status, whole.header)
	}
	f.logged.resetOpens()
	for _, tc := range []struct {
		name   string
		method string
		hdr    []string
		status int
		opens  []string
	}{
		{"HEAD", "HEAD", nil, 200, nil},
		{"If-None-Match", "GET", []string{"If-None-Match", etag}, 304, nil},
		{"If-Modified-Since", "GET", []string{"If-Modified-Since", lastMod}, 304, nil},
		{"If-Match other", "GET", []string{"If-Match", `"other"`}, 412, nil},
		{"If-Match", "GET", []string{"If-Match", etag}, 200, []string{key + "@0+150000"}},
		{"range beyond the end", "GET", []string{"Range", "bytes=200000-"}, 416, nil},
		{"range", "GET", []string{"Range", "bytes=100-199"}, 206, []string{key + "@100+100"}},
		{"suffix", "GET", []string{"Range", "bytes=-10"}, 206, []string{key + "@149990+10"}},
		{"If-Range date", "GET", []string{"Range", "bytes=5-9", "If-Range", lastMod}, 206, []string{key + "@5+5"}},
		{"If-Range old date", "GET", []string{"Range", "bytes=5-9", "If-Range", "Sun, 01 Mar 2020 08:00:00 GMT"}, 200, []string{key + "@0+150000"}},
		{"HEAD with a range", "HEAD", []string{"Range", "bytes=5-9"}, 200, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := f.get(f.uncached, tc.method, file, tc.hdr...)
			if got.status != tc.status {
				t.Fatalf("%d %.100q, want %d", got.status, got.body, tc.status)
			}
			if tc.status == 412 {
				var e errorBody
				if json.Unmarshal(got.body, &e) != nil || e.Status != 412 || got.header.Get("ETag") != "" {
					t.Errorf("412: %v %s, want a JSON error without the object's headers", got.header, got.body)
				}
			}
			if tc.status == 200 && tc.method == "GET" && !bytes.Equal(got.body, f.objects[file]) {
				t.Errorf("wrong body (%d bytes)", len(got.body))
			}
			if opens := f.logged.resetOpens(); !slices.Equal(opens, tc.opens) {
				t.Errorf("opened %q, want %q", opens, tc.opens)
			}
		})
	}

	// A playlist rewritten with the request's token is a representation too.
	pl := cacheRecs[0] + "/index.m3u8?token=" + testAdmin
	plWhole := f.get(f.uncached, "GET", pl)
	plPart := f.get(f.uncached, "GET", pl, "Range", "bytes=0-6")
	if plWhole.status != 200 || !strings.Contains(string(plWhole.body), "init.mp4?token=") || plPart.status != 206 || string(plPart.body) != "#EXTM3U" {
		t.Errorf("playlist with a token: %d %q, range %d %q", plWhole.status, plWhole.body, plPart.status, plPart.body)
	}

	rec, d, id := newDownloadFixture(t, 3, 100_000)
	logged := &keyLog{testStore: d}
	_, base := replayServer(t, &ReplayConfig{Recorder: rec, Store: logged})
	dl := base + "/replay/" + id + "/download.mp4"
	get := func(method string, hdr ...string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, dl, nil)
		req.Header.Set("Authorization", "Bearer "+testAdmin)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	resp, all := get("GET")
	if resp.StatusCode != 200 || int64(len(all)) != resp.ContentLength {
		t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(all))
	}
	head := len(all) - 3*100_000
	prefix := "recordings/downloads1/" + id + "/"
	logged.resetOpens()
	// From the header's last 10 bytes to the 10th byte of the third segment.
	from, to := head-10, head+200_000+9
	resp, part := get("GET", "Range", fmt.Sprintf("bytes=%d-%d", from, to))
	if resp.StatusCode != 206 || !bytes.Equal(part, all[from:to+1]) {
		t.Fatalf("download range: %d, %d bytes, equal %v", resp.StatusCode, len(part), bytes.Equal(part, all[from:to+1]))
	}
	want := []string{prefix + "seg-000001.m4s@0+100000", prefix + "seg-000002.m4s@0+100000", prefix + "seg-000003.m4s@0+10"}
	if opens := logged.resetOpens(); !slices.Equal(opens, want) {
		t.Errorf("download range opened %q, want %q", opens, want)
	}
	for _, c := range []struct {
		method string
		hdr    []string
		status int
	}{
		{"HEAD", nil, 200},
		{"GET", []string{"If-None-Match", resp.Header.Get("ETag")}, 304},
		{"GET", []string{"Range", fmt.Sprintf("bytes=%d-", len(all))}, 416},
	} {
		if resp, _ := get(c.method, c.hdr...); resp.StatusCode != c.status {
			t.Errorf("download %s %q: %d, want %d", c.method, c.hdr, resp.StatusCode, c.status)
		}
	}
	if opens := logged.resetOpens(); len(opens) > 0 {
		t.Errorf("HEAD, 304 and 416 of the download opened %q", opens)
	}
}

// goneAfterStat is a store whose objects are deleted right after a Stat
// describes them: a recording deleted while a request is being answered.
type goneAfterStat struct{ *storage.Dir }

func (g goneAfterStat) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	info, err := g.Dir.Stat(ctx, key)
	if err == nil {
		err = g.Dir.Delete(ctx, key)
	}
	return info, err
}

// TestReplayObjectGoneBeforeFirstByte: when the store fails before the first
// byte of a response is sent (the object was deleted after its Stat), the client
// gets the store's answer (a JSON 404 of the right length), not a response that
// announced the object's length and ETag and then breaks.
func TestReplayObjectGoneBeforeFirstByte(t *testing.T) {
	rec, d, id := newDownloadFixture(t, 3, 100_000)
	_, base := replayServer(t, &ReplayConfig{Recorder: rec, Store: goneAfterStat{d}})
	for i, hdr := range [][]string{{"Range", "bytes=-10"}, {"If-None-Match", `"other"`}} {
		t.Run(hdr[0], func(t *testing.T) {
			req, _ := http.NewRequest("GET", base+"/replay/"+id+fmt.Sprintf("/seg-%06d.m4s", i+1), nil)
			req.Header.Set("Authorization", "Bearer "+testAdmin)
			req.Header.Set(hdr[0], hdr[1])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			var e errorBody
			if err != nil || resp.StatusCode != 404 || json.Unmarshal(body, &e) != nil || e.Status != 404 {
				t.Fatalf("%d %.80q (%v), want a JSON 404", resp.StatusCode, body, err)
			}
			for _, h := range []string{"ETag", "Last-Modified", "Content-Range"} {
				if v := resp.Header.Get(h); v != "" {
					t.Errorf("the 404 has the object's %s %q", h, v)
				}
			}
		})
	}
}
