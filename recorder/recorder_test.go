package recorder

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lectern/internal/testrec"
	"lectern/sfu"
)

// TestRecordToDir records a 20 s H.264 + Opus clip into a local Dir store and
// checks with ffprobe that the HLS playlist and the MP4 download decode, with the
// duration and frame count that were sent.
func TestRecordToDir(t *testing.T) {
	c := testrec.LectureClip(t)
	store := testrec.DirStore(t)
	r, sess, ctx := recordSession(t, store, "abcdefghij", -1, time.Minute, nil)
	p := newPublisher(t, sess, sfu.TrainerPublication)
	livePlaylist := ""
	p.feed(t, ctx, c, feedOptions{speed: 4, between: func(sec int) {
		if sec != 15 {
			return
		}
		// While live: an EVENT playlist listing stored segments only.
		page, _ := r.List(Query{})
		if len(page.Recordings) != 1 || page.Recordings[0].Status != StatusRecording {
			t.Errorf("live listing: %+v", page.Recordings)
			return
		}
		prefix := page.Recordings[0].Prefix
		livePlaylist = readStored(t, store, prefix+"index.m3u8")
		for _, line := range strings.Split(livePlaylist, "\n") {
			if strings.HasPrefix(line, "seg-") {
				if _, err := store.Stat(ctx, prefix+line); err != nil {
					t.Errorf("live playlist lists %s before it is stored: %v", line, err)
				}
			}
		}
	}})
	p.lease.End()
	if !strings.Contains(livePlaylist, "#EXT-X-PLAYLIST-TYPE:EVENT") || strings.Contains(livePlaylist, "ENDLIST") ||
		!strings.Contains(livePlaylist, "seg-000002.m4s") {
		t.Errorf("live playlist:\n%s", livePlaylist)
	}

	recs := waitComplete(t, r, 1, 30*time.Second)
	m := recs[0]
	if m.Session != "abcdefghij" || m.Publication != "trainer" || m.Title != "Bài giảng" || !near(m.Duration, 20, 0.5) {
		t.Fatalf("meta %+v", m)
	}
	playlist := filepath.Join(store.Root(), m.Prefix, "index.m3u8")
	got := testrec.FFprobe(t, playlist)
	if !near(got.Duration, c.Duration.Seconds(), 0.5) || got.VideoFrames != len(c.Video) {
		t.Errorf("HLS: %+v, want %v and %d frames", got, c.Duration, len(c.Video))
	}
	dl := writeDownload(t, r, m.ID, MainRendition)
	got = testrec.FFprobe(t, dl)
	if !near(got.Duration, c.Duration.Seconds(), 0.5) || got.VideoFrames != len(c.Video) {
		t.Errorf("MP4: %+v, want %v and %d frames", got, c.Duration, len(c.Video))
	}
	t.Logf("recording %s: %.3f s, %d segments; ffprobe HLS/MP4 ok", m.ID, m.Duration, m.Segments)
}
