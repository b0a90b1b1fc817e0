package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/internal/clip"
	"lectern/internal/testenv"
	"lectern/internal/testrec"
	"lectern/recorder"
	"lectern/sfu"
)

// benchServer is a replay server over store, without WebRTC traffic; rec nil
// creates a recorder; cache may be nil (no replay cache).
func benchServer(b *testing.B, store testStore, rec *recorder.Recorder, redirect bool, cache *ReplayCache) (*recorder.Recorder, *sfu.Registry, string) {
	b.Helper()
	if rec == nil {
		rec = newQuietRecorder(b, store)
	}
	reg, url := replayServer(b, &ReplayConfig{Recorder: rec, Store: store, Redirect: redirect, Cache: cache})
	return rec, reg, url
}

// recordClip records one pass of c (at 8x real time) into a session and returns
// the finished recording.
func recordClip(b *testing.B, rec *recorder.Recorder, reg *sfu.Registry, c *clip.Clip) recorder.Meta {
	b.Helper()
	sess := reg.Session("benchmark1")
	rec.Attach(sess)
	lease, _ := sess.Claim("trainer", nil)
	video, _ := lease.Track("video", sfu.KindVideo, sfu.Codec{MimeType: sfu.MimeH264, ClockRate: 90000}, nil)
	audio, _ := lease.Track("audio", sfu.KindAudio, sfu.Codec{MimeType: sfu.MimeOpus, ClockRate: 48000, Channels: 2}, nil)
	start := time.Now()
	var seq uint16
	for i, au := range c.Video {
		time.Sleep(time.Until(start.Add(au.PTS / 8)))
		for _, p := range au.Packetize(1200) {
			p.SSRC, p.SequenceNumber, p.Timestamp = 1, seq, uint32(au.PTS*90000/time.Second)
			seq++
			_ = video.WriteRTP(&p)
		}
		for j := i * len(c.Audio) / len(c.Video); j < (i+1)*len(c.Audio)/len(c.Video); j++ {
			f := c.Audio[j]
			_ = audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 2, SequenceNumber: uint16(j), Timestamp: uint32(f.PTS * 48000 / time.Second)}, Payload: f.Data})
		}
	}
	lease.End()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		page, _ := rec.List(recorder.Query{})
		if len(page.Recordings) == 1 && page.Recordings[0].Status == recorder.StatusComplete {
			return page.Recordings[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatal("recording did not complete")
	return recorder.Meta{}
}

// BenchmarkReplaySegments compares serving the segments of a 2.5 Mbit/s 720p
// recording through Lectern (token check, index lookup, then the bytes) with
// fetching the same objects from MinIO directly (presigned GETs), with 1 and 8
// concurrent clients on loopback:
//
//   - minio-direct: the client GETs presigned URLs from MinIO;
//   - lectern-proxy-nocache: Lectern reads every segment from MinIO and copies it
//     to the client (-replay-cache-mb 0);
//   - lectern-proxy-cache: the same with the replay cache (the default): the
//     segments, read once during the warm-up, are served from memory, as they
//     are when many learners watch the same lecture;
//   - lectern-proxy-cache-miss: a replay cache with room for one segment only,
//     read round-robin: every request misses, reads MinIO and fills the cache
//     (evicting the previous segment): the cost of a miss;
//   - lectern-redirect: Lectern answers with a 302 to a presigned URL
//     (-replay-redirect on) and the client follows it.
//
// Compare the MB/s; vs-minio-direct/clients=N reports the ratio of each Lectern
// variant to minio-direct (from each sub-benchmark's final run).
func BenchmarkReplaySegments(b *testing.B) {
	testenv.RequireTool(b, "ffmpeg", "apt-get install ffmpeg")
	c, err := clip.Generate(context.Background(), filepath.Join(os.TempDir(), "lectern-test-clips"), clip.Options{Duration: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	s3, _ := testrec.MinIOStore(b)
	rec, reg, url := benchServer(b, s3, nil, false, nil)
	meta := recordClip(b, rec, reg, c)
	_, _, redirectURL := benchServer(b, s3, rec, true, nil)
	cache := NewReplayCache(256<<20, 0)
	_, _, cacheURL := benchServer(b, s3, rec, false, cache)
	var largest int64
	n := meta.Segments
	var size int64
	var direct []string
	for i := 1; i <= n; i++ {
		key := fmt.Sprintf("%sseg-%06d.m4s", meta.Prefix, i)
		info, err := s3.Stat(context.Background(), key)
		if err != nil {
			b.Fatal(err)
		}
		size += info.Size
		largest = max(largest, info.Size)
		u, err := s3.PresignGet(context.Background(), key, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		direct = append(direct, u)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	defer client.CloseIdleConnections()
	get := func(url string, token bool) {
		req, _ := http.NewRequest("GET", url, nil)
		if token {
			req.Header.Set("Authorization", "Bearer "+testAdmin)
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Errorf("%s: %d", url, resp.StatusCode)
		}
	}
	mbps := map[string]float64{} // MB/s of each sub-benchmark's last run
	run := func(b *testing.B, url func(i int) string, token bool, clients int) {
		b.SetBytes(size / int64(n))
		b.ResetTimer()
		if clients == 1 {
			for i := range b.N {
				get(url(i%n), token)
			}
		} else {
			b.SetParallelism(clients / runtime.GOMAXPROCS(0))
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					get(url(i%n), token)
					i++
				}
			})
		}
		mbps[b.Name()] = float64(size/int64(n)) * float64(b.N) / b.Elapsed().Seconds() / 1e6
	}
	segment := func(base string) func(i int) string {
		return func(i int) string { return fmt.Sprintf("%s/replay/%s/seg-%06d.m4s", base, meta.ID, i+1) }
	}
	for i := range 3 * n { // warm up MinIO, the page cache, the connection pools and the replay cache
		get(direct[i%n], false)
		get(segment(url)(i%n), true)
		get(segment(cacheURL)(i%n), true)
	}
	if objects, _ := cache.stats(); objects != n {
		b.Fatalf("the replay cache holds %d of the %d segments", objects, n)
	}
	tiny := NewReplayCache(largest, 0) // one segment at a time
	_, _, tinyURL := benchServer(b, s3, rec, false, tiny)
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("minio-direct/clients=%d", clients), func(b *testing.B) {
			run(b, func(i int) string { return direct[i] }, false, clients)
		})
		b.Run(fmt.Sprintf("lectern-proxy-nocache/clients=%d", clients), func(b *testing.B) {
			run(b, segment(url), true, clients)
		})
		b.Run(fmt.Sprintf("lectern-proxy-cache/clients=%d", clients), func(b *testing.B) {
			run(b, segment(cacheURL), true, clients)
		})
		b.Run(fmt.Sprintf("lectern-proxy-cache-miss/clients=%d", clients), func(b *testing.B) {
			hits, misses := tiny.hits.Load(), tiny.misses.Load()
			run(b, segment(tinyURL), true, clients)
			// Concurrent clients sometimes ask for the segment just filled.
			hits, misses = tiny.hits.Load()-hits, tiny.misses.Load()-misses
			b.ReportMetric(100*float64(hits)/float64(hits+misses), "hit%")
		})
		b.Run(fmt.Sprintf("lectern-redirect/clients=%d", clients), func(b *testing.B) {
			// The token travels in the query, as HLS players send it: an
			// Authorization header would follow the redirect to the store.
			run(b, func(i int) string {
				return fmt.Sprintf("%s/replay/%s/seg-%06d.m4s?token=%s", redirectURL, meta.ID, i+1, testAdmin)
			}, false, clients)
		})
		ratio := func(variant string) float64 {
			mb := func(v string) float64 { return mbps[fmt.Sprintf("%s/%s/clients=%d", b.Name(), v, clients)] }
			return mb(variant) / mb("minio-direct")
		}
		// Not a measurement: the ratios of the runs above, as metrics.
		b.Run(fmt.Sprintf("vs-minio-direct/clients=%d", clients), func(b *testing.B) {
			b.ReportMetric(ratio("lectern-proxy-nocache"), "proxy-nocache/direct")
			b.ReportMetric(ratio("lectern-proxy-cache"), "proxy-cache/direct")
			b.ReportMetric(ratio("lectern-proxy-cache-miss"), "proxy-cache-miss/direct")
			b.ReportMetric(ratio("lectern-redirect"), "redirect/direct")
		})
	}
	if m := cache.misses.Load(); m != uint64(n) { // the warm-up's first pass fills it
		b.Errorf("the cached proxy read the store %d times after the warm-up", int(m)-n)
	}

}

// BenchmarkListRecordings lists 5,000 recordings: the index object is loaded
// from MinIO at start (reported once), then pages are served from memory.
func BenchmarkListRecordings(b *testing.B) {
	s3, _ := testrec.MinIOStore(b)
	putIndex(b, s3, 5000)
	start := time.Now()
	rec, _, url := benchServer(b, s3, nil, false, nil)
	b.Logf("cold start with 5,000 recordings in the MinIO index object: %v", time.Since(start))
	client := &http.Client{}
	defer client.CloseIdleConnections()
	// fetch GETs a list page and returns its size and the next page's path (from
	// the Link header: the client does not parse the body).
	fetch := func(b *testing.B, path string) (int, string) {
		req, _ := http.NewRequest("GET", url+path, nil)
		req.Header.Set("Authorization", "Bearer "+testAdmin)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		n, _ := io.Copy(io.Discard, resp.Body)
		next := resp.Header.Get("Link")
		if next != "" {
			next = next[1:strings.Index(next, ">")]
		}
		return int(n), next
	}
	page := func(b *testing.B, q string) recordingPage {
		req, _ := http.NewRequest("GET", url+"/api/recordings"+q, nil)
		req.Header.Set("Authorization", "Bearer "+testAdmin)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var p recordingPage
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			b.Fatal(err)
		}
		return p
	}
	b.Run("http-all-5000-in-pages-of-1000", func(b *testing.B) {
		for range b.N {
			pages, bytes, path := 0, 0, "/api/recordings?limit=1000"
			for path != "" {
				n, next := fetch(b, path)
				pages, bytes, path = pages+1, bytes+n, next
			}
			if pages != 5 {
				b.Fatalf("%d pages", pages)
			}
			b.ReportMetric(float64(bytes), "bytes/list")
		}
	})
	b.Run("http-all-5000-decoded-by-client", func(b *testing.B) {
		for range b.N {
			total, q := 0, "?limit=1000"
			for {
				p := page(b, q)
				total += len(p.Recordings)
				if p.Next == "" {
					break
				}
				q = "?limit=1000&cursor=" + p.Next
			}
			if total != 5000 {
				b.Fatalf("listed %d", total)
			}
		}
	})
	b.Run("http-first-page-of-50", func(b *testing.B) {
		for range b.N {
			if p := page(b, ""); len(p.Recordings) != 50 {
				b.Fatalf("page of %d", len(p.Recordings))
			}
		}
	})
	b.Run("http-one-session-of-5000", func(b *testing.B) {
		for range b.N {
			if p := page(b, "?session=sess000042&limit=1000"); len(p.Recordings) != 10 {
				b.Fatalf("page of %d", len(p.Recordings))
			}
		}
	})
	b.Run("in-memory-all-5000", func(b *testing.B) {
		for range b.N {
			total := 0
			q := recorder.Query{Limit: recorder.MaxPageSize}
			for {
				p, _ := rec.List(q)
				total += len(p.Recordings)
				if p.Next == "" {
					break
				}
				q.Cursor = p.Next
			}
			if total != 5000 {
				b.Fatalf("listed %d", total)
			}
		}
	})
}

// putIndex stores an index object of n finished recordings (500 sessions).
func putIndex(b *testing.B, st testStore, n int) {
	b.Helper()
	base := time.Date(2025, 9, 1, 7, 0, 0, 0, time.UTC)
	var recs []recorder.Meta
	for i := range n {
		sess := fmt.Sprintf("sess%06d", i%500)
		start := base.Add(time.Duration(i) * 90 * time.Minute)
		end := start.Add(90 * time.Minute)
		id := fmt.Sprintf("%s-trainer-%s-%06x", sess, start.Format("20060102-150405"), i)
		recs = append(recs, recorder.Meta{ID: id, Session: sess, Title: "Chuyển đổi số - Bài " + fmt.Sprint(i), Publication: "trainer",
			Status: recorder.StatusComplete, StartedAt: start, EndedAt: &end, Duration: 5400, Segments: 1350, Bytes: 1 << 30,
			Codecs: []string{"avc1.42e01f", "opus"}, Prefix: "recordings/" + sess + "/" + id + "/",
			Renditions: []recorder.RenditionInfo{{Name: "main", Segments: 1350, Duration: 5400, Timescale: 90000, PrimaryID: 1,
				Tracks: []recorder.TrackInfo{{ID: 1, Name: "trainer/video", Kind: "video", Codec: "avc1.42e01f", Width: 1280, Height: 720},
					{ID: 3, Name: "trainer/audio", Kind: "audio", Codec: "opus", Channels: 2}}}}})
	}
	data, _ := json.Marshal(map[string]any{"version": 1, "recordings": recs})
	if err := st.Put(context.Background(), "recordings/index.json", bytes.NewReader(data), int64(len(data)), ""); err != nil {
		b.Fatal(err)
	}
}
