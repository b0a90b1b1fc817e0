package recorder

import (
	"context"
	"testing"
	"time"

	"lectern/internal/testrec"
	"lectern/sfu"
)

// TestScreenShareRendition records a publication with a camera, a screen share
// and audio: the camera and the audio make the main rendition, the screen share a
// second rendition on the same timeline; both decode.
func TestScreenShareRendition(t *testing.T) {
	t.Parallel()
	c := testrec.LectureClip(t)
	store := testrec.DirStore(t)
	r, sess, ctx := recordSession(t, store, "screenshar", -1, time.Minute, nil)
	p := newPublisher(t, sess, sfu.TrainerPublication)
	var err error
	if p.screen, err = p.lease.Track("screen", sfu.KindVideo, h264Codec, nil); err != nil {
		t.Fatal(err)
	}
	p.feed(t, ctx, c, feedOptions{speed: 4})
	p.lease.End()
	m := waitComplete(t, r, 1, 30*time.Second)[0]
	if len(m.Renditions) != 2 || m.Renditions[0].Name != MainRendition || len(m.Renditions[0].Tracks) != 2 ||
		m.Renditions[1].Name != "screen" || m.Renditions[1].Dir != "screen/" || len(m.Codecs) != 2 {
		t.Fatalf("renditions %+v", m.Renditions)
	}
	for _, tc := range []struct{ rendition, playlist string }{{MainRendition, "index.m3u8"}, {"screen", "screen/index.m3u8"}} {
		got := testrec.FFprobe(t, store.Root()+"/"+m.Prefix+tc.playlist)
		if got.VideoFrames != len(c.Video) || !near(got.Duration, c.Duration.Seconds(), 0.5) {
			t.Errorf("%s HLS: %+v", tc.rendition, got)
		}
		got = testrec.FFprobe(t, writeDownload(t, r, m.ID, tc.rendition))
		if got.VideoFrames != len(c.Video) || !near(got.Duration, c.Duration.Seconds(), 0.5) {
			t.Errorf("%s MP4: %+v", tc.rendition, got)
		}
	}
	if _, err := r.Key(m.ID, "screen/seg-000001.m4s"); err != nil {
		t.Error(err)
	}
	if _, err := r.Key(m.ID, "audio/seg-000001.m4s"); err == nil {
		t.Error("a rendition that does not exist has a key")
	}
}

// TestIndexSurvivesRestart: a new recorder on an empty spool finds the recordings
// in the store's index object, and rebuilds the index from meta.json objects when
// the index object is lost.
func TestIndexSurvivesRestart(t *testing.T) {
	t.Parallel()
	c := testrec.LectureClip(t)
	store := testrec.DirStore(t)
	r := newRecorder(t, store, t.TempDir(), nil)
	reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: -1, Logger: testLogger()})
	sess := reg.Session("restart001")
	r.Attach(sess)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	short := *c
	short.Video, short.Audio, short.Duration = c.Video[:150], c.Audio[:250], 5*time.Second
	for _, pub := range []string{"trainer", "site-ha-noi"} {
		p := newPublisher(t, sess, pub)
		p.feed(t, ctx, &short, feedOptions{speed: 8})
		p.lease.End()
	}
	want := waitComplete(t, r, 2, 30*time.Second)
	closeRecorder(t, r)

	r2 := newRecorder(t, store, t.TempDir(), nil)
	got, _ := r2.List(Query{})
	closeRecorder(t, r2)
	if len(got.Recordings) != 2 || got.Recordings[0].ID != want[0].ID || got.Recordings[1].ID != want[1].ID {
		t.Fatalf("after restart: %+v", got.Recordings)
	}
	if err := store.Delete(context.Background(), indexKey); err != nil {
		t.Fatal(err)
	}
	r3 := newRecorder(t, store, t.TempDir(), nil)
	defer closeRecorder(t, r3)
	got, _ = r3.List(Query{})
	if len(got.Recordings) != 2 || got.Recordings[0].ID != want[0].ID || got.Recordings[0].Segments != want[0].Segments {
		t.Fatalf("after rebuild: %+v", got.Recordings)
	}
}
