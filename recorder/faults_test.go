package recorder

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"lectern/internal/testrec"
	"lectern/sfu"
	"lectern/storage"
)

// TestMinIOOutage stops a real MinIO for 20 s in the middle of a recording and
// starts it again: the recording ends complete, with every segment stored once.
func TestMinIOOutage(t *testing.T) {
	t.Parallel()
	c := testrec.LectureClip(t)
	store, minio := testrec.MinIOStore(t)
	r, sess, ctx := recordSession(t, store, "outage0001", -1, 3*time.Minute, nil)
	p := newPublisher(t, sess, sfu.TrainerPublication)

	var stoppedAt time.Time
	p.feed(t, ctx, c, feedOptions{speed: 1, between: func(sec int) {
		if sec == 5 {
			minio.Stop()
			stoppedAt = time.Now()
		}
	}})
	p.feed(t, ctx, c, feedOptions{speed: 1, between: func(int) {
		if !stoppedAt.IsZero() && time.Since(stoppedAt) >= 20*time.Second {
			minio.Start()
			stoppedAt = time.Time{}
		}
	}})
	if !stoppedAt.IsZero() {
		t.Fatal("MinIO was not restarted during the second pass")
	}
	p.lease.End()
	recs := waitComplete(t, r, 1, 2*time.Minute)
	m := recs[0]
	if gatherMetric(t, r, "lectern_recording_upload_errors_total", "") == 0 {
		t.Error("no failed upload attempt was counted during the outage")
	}
	written := int(r.metrics.segmentsWritten.Load())
	if m.Segments != written || !near(m.Duration, 2*c.Duration.Seconds(), 0.5) {
		t.Fatalf("recording has %d segments (%v s), %d were written", m.Segments, m.Duration, written)
	}
	checkPlaylist(t, store, m.Prefix, m.Segments)
	dl := writeDownload(t, r, m.ID, MainRendition)
	got := testrec.FFprobe(t, dl)
	if !near(got.Duration, 2*c.Duration.Seconds(), 0.5) || got.VideoFrames != 2*len(c.Video) {
		t.Errorf("MP4 after outage: %+v, want %v and %d frames", got, 2*c.Duration, 2*len(c.Video))
	}
}

// TestCrashRecovery abandons a recorder mid-recording as SIGKILL would (nothing
// more is written, while the store was failing and segments piled up in the
// spool) and starts a new one on the same spool: the recording is finalised with
// every segment written before the kill.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	c := testrec.LectureClip(t)
	store := &flakyStore{Store: testrec.DirStore(t)}
	spoolDir := t.TempDir()
	r1 := newRecorder(t, store, spoolDir, nil)
	reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: -1, Logger: testLogger()})
	sess := reg.Session("crash00001")
	r1.Attach(sess)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := newPublisher(t, sess, sfu.TrainerPublication)
	crashed := false
	p.feed(t, ctx, c, feedOptions{speed: 4, between: func(sec int) {
		switch sec {
		case 7:
			store.down.Store(true)
		case 15:
			r1.crash()
			crashed = true
		}
	}})
	if !crashed {
		t.Fatal("no crash")
	}
	p.lease.End()
	written := int(r1.metrics.segmentsWritten.Load())
	if written < 3 || r1.metrics.segmentsStored.Load() >= uint64(written) {
		t.Fatalf("before the crash: %d segments written, %d stored; want some left in the spool", written, r1.metrics.segmentsStored.Load())
	}

	store.down.Store(false)
	r2 := newRecorder(t, store, spoolDir, nil)
	defer closeRecorder(t, r2)
	recs := waitComplete(t, r2, 1, time.Minute)
	m := recs[0]
	if !m.Interrupted || m.Segments != written {
		t.Fatalf("recovered recording: interrupted %v, %d segments, want %d", m.Interrupted, m.Segments, written)
	}
	checkPlaylist(t, store, m.Prefix, written)
	got := testrec.FFprobe(t, writeDownload(t, r2, m.ID, MainRendition))
	if !near(got.Duration, m.Duration, 0.1) || got.Duration < 11 || got.VideoFrames != int(m.Duration*30+0.5) {
		t.Errorf("MP4 after recovery: %+v, meta says %v s", got, m.Duration)
	}
	if used := r2.metrics.spoolBytes.Load(); used != 0 {
		t.Errorf("spool holds %d bytes after recovery", used)
	}
}

// TestSpoolFull fills a small spool while the store is down: segments are
// dropped with a clear error and a metric, the live stream (another sink of the
// same track) loses nothing, and the recording resumes when the store is back.
func TestSpoolFull(t *testing.T) {
	t.Parallel()
	c := testrec.LectureClip(t)
	store := &flakyStore{Store: testrec.DirStore(t)}
	var logs logBuffer
	r, sess, ctx := recordSession(t, store, "spoolfull1", -1, 2*time.Minute, func(cfg *Config) {
		cfg.MaxSpoolBytes = 1 << 20
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	p := newPublisher(t, sess, sfu.TrainerPublication)
	live := sfu.NewQueue(sfu.QueueOptions{Size: 1 << 16, Kind: sfu.KindVideo})
	remove := p.video.AddSink(live)
	p.feed(t, ctx, c, feedOptions{speed: 4, between: func(sec int) {
		switch sec {
		case 2:
			store.down.Store(true)
		case 16:
			store.down.Store(false)
		}
	}})
	remove()
	p.lease.End()
	waitComplete(t, r, 1, time.Minute)

	if n := gatherMetric(t, r, "lectern_recording_segments_failed_total", "spool_full"); n == 0 {
		t.Error("no segment counted as lost to a full spool")
	}
	if !strings.Contains(logs.String(), "recording spool full") || !strings.Contains(logs.String(), "spool filling up") {
		t.Errorf("no clear error in the log:\n%s", logs.String())
	}
	if n := queued(live); live.Dropped() != 0 || int(p.video.Packets()) != n {
		t.Errorf("live sink: %d dropped, %d of %d packets", live.Dropped(), n, p.video.Packets())
	}
	m := waitComplete(t, r, 1, time.Second)[0]
	pl := readStored(t, store, m.Prefix+"index.m3u8")
	if !strings.Contains(pl, "#EXT-X-DISCONTINUITY") {
		t.Errorf("no discontinuity where segments were lost:\n%s", pl)
	}
	if errs := ffmpegDecodeErrors(t, writeDownload(t, r, m.ID, MainRendition)); errs != "" {
		t.Errorf("decode errors: %s", errs)
	}
}

// queued counts (and releases) the packets in a queue.
func queued(q *sfu.Queue) int {
	n := 0
	for {
		item, ok := q.TryNext()
		if !ok {
			return n
		}
		item.Packet.Release()
		n++
	}
}

// TestDamagedStream sends a stream with lost packets, reordered packets and a
// timestamp jump: the recording stays decodable and keeps its length.
func TestDamagedStream(t *testing.T) {
	t.Parallel()
	c := testrec.LectureClip(t)
	store := testrec.DirStore(t)
	r, sess, ctx := recordSession(t, store, "damaged001", -1, time.Minute, nil)
	p := newPublisher(t, sess, sfu.TrainerPublication)
	p.feed(t, ctx, c, feedOptions{speed: 4, reorder: true, tsJump: 48000 * 3600,
		drop: func(i int) bool { return i%397 == 0 }})
	p.lease.End()
	m := waitComplete(t, r, 1, 30*time.Second)[0]
	if !near(m.Duration, c.Duration.Seconds(), 0.5) {
		t.Errorf("duration %v after a timestamp jump, want %v", m.Duration, c.Duration)
	}
	path := store.Root() + "/" + m.Prefix + "index.m3u8"
	if errs := ffmpegDecodeErrors(t, path); errs != "" {
		t.Errorf("HLS decode errors: %s", errs)
	}
	got := testrec.FFprobe(t, path)
	if got.VideoFrames == 0 || got.VideoFrames >= len(c.Video) || !near(got.Duration, c.Duration.Seconds(), 0.5) {
		t.Errorf("HLS: %+v (lost frames must be skipped until the next keyframe)", got)
	}
	if errs := ffmpegDecodeErrors(t, writeDownload(t, r, m.ID, MainRendition)); errs != "" {
		t.Errorf("MP4 decode errors: %s", errs)
	}
	if r.metrics.decodeErrors.Load() != 0 {
		t.Errorf("%d decode errors counted", r.metrics.decodeErrors.Load())
	}
}

// TestReconnectContinuesRecording: a trainer who drops and comes back within the
// grace period (a new SSRC, new sequence numbers and timestamps) continues the
// same recording, with the pause recorded as a gap.
func TestReconnectContinuesRecording(t *testing.T) {
	t.Parallel()
	c := testrec.LectureClip(t)
	store := testrec.DirStore(t)
	r, sess, ctx := recordSession(t, store, "reconnect1", 5*time.Second, time.Minute, nil)
	p := newPublisher(t, sess, sfu.TrainerPublication)
	p.feed(t, ctx, c, feedOptions{speed: 4})
	p.lease.Release()
	time.Sleep(2 * time.Second)
	p2 := newPublisher(t, sess, sfu.TrainerPublication)
	if p2.video != p.video {
		t.Fatal("the reconnect did not continue the track")
	}
	p2.ssrc, p2.vseq, p2.vts, p2.ats = 4242, 9, 99, 12345
	p2.feed(t, ctx, c, feedOptions{speed: 4})
	p2.lease.End()
	recs := waitComplete(t, r, 1, 30*time.Second)
	if len(recs) != 1 {
		t.Fatalf("%d recordings, want one", len(recs))
	}
	m := recs[0]
	if len(m.Gaps) == 0 || !near(m.Gaps[0].Duration, 2, 0.7) {
		t.Errorf("gaps %+v, want one of about 2 s", m.Gaps)
	}
	path := store.Root() + "/" + m.Prefix + "index.m3u8"
	if errs := ffmpegDecodeErrors(t, path); errs != "" {
		t.Errorf("decode errors: %s", errs)
	}
	got := testrec.FFprobe(t, path)
	if got.VideoFrames != 2*len(c.Video) || !near(got.Duration, 2*c.Duration.Seconds()+2, 0.8) {
		t.Errorf("HLS: %+v, want %d frames over about %v s", got, 2*len(c.Video), 2*c.Duration.Seconds()+2)
	}
}

// TestLostSpool: the server dies and its disk is lost with it; a new server on
// the same store finalises the recording from what the store holds (the index
// says it was in progress; its playlist lists every stored segment).
func TestLostSpool(t *testing.T) {
	t.Parallel()
	c := testrec.LectureClip(t)
	store := testrec.DirStore(t)
	r1 := newRecorder(t, store, t.TempDir(), nil)
	reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: -1, Logger: testLogger()})
	sess := reg.Session("lostspool1")
	r1.Attach(sess)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := newPublisher(t, sess, sfu.TrainerPublication)
	stored := 0
	p.feed(t, ctx, c, feedOptions{speed: 4, between: func(sec int) {
		if sec == 15 {
			time.Sleep(300 * time.Millisecond) // let the index and the last segment reach the store
			r1.crash()
			stored = int(r1.metrics.segmentsStored.Load())
		}
	}})
	p.lease.End()
	r2 := newRecorder(t, store, t.TempDir(), nil) // a new disk
	defer closeRecorder(t, r2)
	m := waitComplete(t, r2, 1, 30*time.Second)[0]
	if !m.Interrupted || m.Segments != stored || stored < 3 {
		t.Fatalf("finalised from the store: %+v, %d segments were stored", m, stored)
	}
	checkPlaylist(t, store, m.Prefix, stored)
	got := testrec.FFprobe(t, writeDownload(t, r2, m.ID, MainRendition))
	if !near(got.Duration, m.Duration, 0.1) || got.VideoFrames != int(m.Duration*30+0.5) {
		t.Errorf("MP4: %+v, meta says %v s", got, m.Duration)
	}
}

// TestSpoolFullKeepsTimeline: segments lost to a full spool (a small spool and
// a store outage) keep their place: the recording is flagged with lost media in
// meta.json and the list, the playlist has an EXT-X-GAP of their duration where
// they were (replay time stays wall-clock time, ffprobe still reads it), the
// duration counts them, and Degraded reports the full spool until the spool
// takes media again.
func TestSpoolFullKeepsTimeline(t *testing.T) {
	t.Parallel()
	c := testrec.LectureClip(t)
	store := &flakyStore{Store: testrec.DirStore(t)}
	r, sess, ctx := recordSession(t, store, "spoolgap01", -1, 2*time.Minute, func(cfg *Config) { cfg.MaxSpoolBytes = 1 << 20 })
	if err := r.Degraded(); err != nil {
		t.Fatalf("Degraded before anything: %v", err)
	}
	p := newPublisher(t, sess, sfu.TrainerPublication)
	var during error
	p.feed(t, ctx, c, feedOptions{speed: 2, between: func(sec int) {
		switch sec {
		case 2:
			store.down.Store(true)
		case 13:
			during = r.Degraded() // 1 MiB holds two segments: later ones were refused
			store.down.Store(false)
		}
	}})
	p.lease.End()
	if during == nil || !errors.Is(during, ErrSpoolFull) {
		t.Errorf("Degraded while the spool was full: %v", during)
	}
	m := waitComplete(t, r, 1, time.Minute)[0]
	if err := r.Degraded(); err != nil {
		t.Errorf("Degraded after the spool drained: %v", err)
	}

	lost := int(r.metrics.spoolFull.Load())
	if m.LostMedia == nil || m.LostMedia.Segments != lost || lost == 0 || m.LostMedia.Seconds < 4 {
		t.Fatalf("list: lost media %+v, %d segments were refused", m.LostMedia, lost)
	}
	if !near(m.Duration, c.Duration.Seconds(), 0.5) {
		t.Errorf("duration %v with the lost time, want %v", m.Duration, c.Duration.Seconds())
	}
	stored, err := readMeta(ctx, store, m.Prefix+metaFile)
	if err != nil {
		t.Fatal(err)
	}
	if stored.LostMedia == nil || *stored.LostMedia != *m.LostMedia || stored.Status != StatusComplete {
		t.Errorf("meta.json: status %s, lost media %+v, want %+v", stored.Status, stored.LostMedia, m.LostMedia)
	}
	if got, err := r.Get(m.ID); err != nil || got.LostMedia == nil || *got.LostMedia != *m.LostMedia {
		t.Errorf("Get: %+v, %v", got.LostMedia, err)
	}

	// The playlist: every segment has its place, lost ones as gaps; the
	// timeline has no hole.
	pl := readStored(t, store, m.Prefix+playlistFile)
	var total float64
	gaps, entries := 0, 0
	for _, line := range strings.Split(pl, "\n") {
		switch {
		case line == "#EXT-X-GAP":
			gaps++
		case strings.HasPrefix(line, "#EXTINF:"):
			d, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(line, "#EXTINF:"), ","), 64)
			total += d
		case strings.HasPrefix(line, "seg-"):
			entries++
			if line != segmentFile(entries) {
				t.Fatalf("playlist entry %d is %s: a hole in the timeline\n%s", entries, line, pl)
			}
		}
	}
	if gaps != lost || entries != m.Segments+lost || !near(total, m.Duration, 0.2) {
		t.Errorf("playlist: %d gaps (want %d), %d entries (want %d), %.3f s (want %.3f)\n%s",
			gaps, lost, entries, m.Segments+lost, total, m.Duration, pl)
	}
	if n := len(storedSegments(t, store, m.Prefix)); n != m.Segments {
		t.Errorf("%d segment objects for %d stored segments", n, m.Segments)
	}
	got := testrec.FFprobe(t, store.Store.(*storage.Dir).Root()+"/"+m.Prefix+playlistFile)
	if got.VideoFrames == 0 || got.VideoFrames >= len(c.Video) {
		t.Errorf("ffprobe of the playlist with gaps: %+v", got)
	}
	if errs := ffmpegDecodeErrors(t, writeDownload(t, r, m.ID, MainRendition)); errs != "" {
		t.Errorf("download decode errors: %s", errs)
	}
}
