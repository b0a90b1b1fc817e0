package sfu

import (
	"maps"
	"slices"
	"sync/atomic"
	"testing"
)

// endedSink records that its track ended.
type endedSink struct{ ended atomic.Bool }

func (s *endedSink) WriteRTP(*Packet) error { return nil }
func (s *endedSink) TrackEnded(*Track)      { s.ended.Store(true) }

// TestLeaseRemoveTracks: a lease removes the tracks its source does not feed: they
// are closed, their sinks told, and the publication no longer lists them; the
// tracks the server derives are left alone, and a lease that was replaced removes
// nothing.
func TestLeaseRemoveTracks(t *testing.T) {
	s := newTestSession(t, RegistryConfig{})
	old, err := s.Claim(TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, local := range []string{"video", "video~1", "video~2", "audio"} {
		kind := KindVideo
		if local == "audio" {
			kind = KindAudio
		}
		if _, err := old.Track(local, kind, h264, nil); err != nil {
			t.Fatal(err)
		}
	}
	pub := old.Publication()
	if _, err := pub.DerivedTrack(OpusVariant("video~2"), KindAudio, Codec{MimeType: MimeOpus, ClockRate: 48000}); err != nil {
		t.Fatal(err)
	}
	byName := func() map[string]*Track {
		m := map[string]*Track{}
		for _, tr := range pub.Tracks() {
			m[tr.Name()] = tr
		}
		return m
	}
	low := byName()["trainer/video~2"]
	var sink endedSink
	low.AddSink(&sink)

	lease, err := s.Claim(TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	everything := func(string) bool { return true }
	if got := old.RemoveTracks(everything); len(got) != 0 || len(pub.Tracks()) != 5 {
		t.Fatalf("a replaced lease removed %v; %d tracks left, want 5", got, len(pub.Tracks()))
	}
	var asked []string
	got := lease.RemoveTracks(func(local string) bool {
		asked = append(asked, local)
		return local != "video" && local != "audio"
	})
	slices.Sort(got)
	if !slices.Equal(got, []string{"video~1", "video~2"}) {
		t.Fatalf("removed %v, want video~1 and video~2", got)
	}
	if slices.Contains(asked, OpusVariant("video~2")) {
		t.Errorf("asked about the derived track: %v", asked)
	}
	left := byName()
	if len(left) != 3 || left["trainer/video"] == nil || left["trainer/audio"] == nil || left["trainer/"+OpusVariant("video~2")] == nil {
		t.Fatalf("tracks left %v, want video, audio and the derived track", slices.Collect(maps.Keys(left)))
	}
	if !low.Closed() || !sink.ended.Load() {
		t.Errorf("removed layer closed %v, its sink told %v", low.Closed(), sink.ended.Load())
	}
	for _, tr := range pub.Info().Tracks {
		if _, rank := SplitLayer(tr.Name); rank != 0 {
			t.Errorf("Info lists %s", tr.Name)
		}
	}
}

// TestLayerFollowerMovesOffEndedLayer: a follower on the low layer whose track ends
// (its source came back without simulcast) moves to the layer that remains, asks
// it for a keyframe and switches there; when no layer sends at that moment it
// waits paused, and a new target once the layer sends takes it.
func TestLayerFollowerMovesOffEndedLayer(t *testing.T) {
	s := newTestSession(t, RegistryConfig{})
	lp := newLayeredPublisher(t, s)
	lp.round(true)
	q := NewQueue(QueueOptions{Kind: KindVideo})
	f := NewLayerFollower(TrainerPublication+"/video", q, nil)
	stop := Follow(s, f)
	defer stop()
	drainLayers(q)
	f.SetTarget(2)
	lp.round(true)
	drainLayers(q)
	if f.Current() != 2 {
		t.Fatalf("current %d, want 2", f.Current())
	}

	lease, err := s.Claim(TrainerPublication, nil) // the source came back
	if err != nil {
		t.Fatal(err)
	}
	before := lp.keyReq[0].Load()
	lp.tracks[0].lastKeyRequest.Store(0) // not coalesced with the fast start's request
	removed := lease.RemoveTracks(func(local string) bool { return local != "video" })
	if len(removed) != 2 {
		t.Fatalf("removed %v", removed)
	}
	if f.Target() != 0 || f.Current() != -1 {
		t.Fatalf("after the low layer ended: target %d, current %d; want 0, -1", f.Target(), f.Current())
	}
	if lp.keyReq[0].Load() == before {
		t.Error("no keyframe asked of the remaining layer")
	}
	lp.frame(0, false)
	lp.frame(0, true)
	lp.frame(0, false)
	if got, want := drainLayers(q), []int{-10, 0, 0, 0}; !equalInts(got, want) {
		t.Fatalf("after the move: got %v, want %v", got, want)
	}

	// Ended while no layer sends: paused until asked again once one does.
	s2 := newTestSession(t, RegistryConfig{})
	lp2 := newLayeredPublisher(t, s2)
	lp2.round(true)
	q2 := NewQueue(QueueOptions{Kind: KindVideo})
	f2 := NewLayerFollower(TrainerPublication+"/video", q2, nil)
	stop2 := Follow(s2, f2)
	defer stop2()
	f2.SetTarget(2)
	lp2.round(true)
	drainLayers(q2)
	lp2.tracks[0].lastArrival.Store(Nanotime() - int64(10*layerAliveFor))
	lease2, err := s2.Claim(TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	lease2.RemoveTracks(func(local string) bool { return local != "video" })
	if f2.Target() != -1 {
		t.Fatalf("no layer sends: target %d, want -1", f2.Target())
	}
	lp2.frame(0, true)
	f2.SetTarget(2)
	lp2.frame(0, true)
	if got, want := drainLayers(q2), []int{-10, 0}; !equalInts(got, want) || f2.Target() != 0 {
		t.Fatalf("asked again: got %v, target %d; want %v, 0", got, f2.Target(), want)
	}
}
