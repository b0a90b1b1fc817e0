package sfu

import "testing"

func TestClaimRelayMarksThePublication(t *testing.T) {
	s := newTestSession(t, RegistryConfig{})
	l, err := s.ClaimRelay(TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	video, _ := l.Track("video", KindVideo, h264, nil)
	p, _ := s.Publication(TrainerPublication)
	if !p.Relayed() || !p.Info().Relayed {
		t.Fatal("a relay's publication is not marked relayed")
	}
	var seen []*Track
	cancel := s.Watch(func(tr *Track) { seen = append(seen, tr) })
	defer cancel()
	seen = seen[:0]
	// The publisher connects here (this node became the origin): the same tracks
	// go on, the mark goes, and watchers see the tracks again (the recorder
	// skipped them while relayed).
	l2, err := s.Claim(TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Relayed() || p.Info().Relayed {
		t.Fatal("a local source's publication is still marked relayed")
	}
	if len(seen) != 1 || seen[0] != video {
		t.Fatalf("watchers saw %v again, want the video track", seen)
	}
	if v2, _ := l2.Track("video", KindVideo, h264, nil); v2 != video {
		t.Fatal("the local source does not continue the relayed track")
	}
	// An ordinary reclaim does not show the tracks again.
	seen = seen[:0]
	if _, err := s.Claim(TrainerPublication, nil); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 0 {
		t.Fatalf("watchers saw %d tracks again on an ordinary reclaim", len(seen))
	}
}
