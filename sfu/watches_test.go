package sfu

import (
	"slices"
	"testing"
)

func TestWatchesAddOnceRemoveClose(t *testing.T) {
	r := NewRegistry(RegistryConfig{})
	t.Cleanup(r.CloseAll)
	s1, s2 := r.Session("s1"), r.Session("s2")
	l1, _ := s1.Claim(TrainerPublication, nil)
	l2, _ := s2.Claim(TrainerPublication, nil)
	if _, err := l1.Track("video", KindVideo, h264, nil); err != nil {
		t.Fatal(err)
	}

	var w Watches
	var seen []string
	fn := func(tr *Track) { seen = append(seen, tr.Name()) }
	w.Add(s1, fn)
	w.Add(s1, fn) // again, as on every publication.added: not a second watch
	w.Add(s2, fn)
	l1.Track("audio", KindAudio, opus, nil)
	l2.Track("audio", KindAudio, opus, nil)
	if want := []string{"trainer/video", "trainer/audio", "trainer/audio"}; !slices.Equal(seen, want) {
		t.Fatalf("after Add: seen %v, want %v", seen, want)
	}

	seen = nil
	w.Remove(s1)
	l1.Track("screen", KindVideo, h264, nil)
	l2.Track("screen", KindVideo, h264, nil)
	if want := []string{"trainer/screen"}; !slices.Equal(seen, want) {
		t.Fatalf("after Remove(s1): seen %v, want %v (s2's only)", seen, want)
	}

	seen = nil
	w.Close()
	w.Close()
	w.Add(s1, fn) // refused after Close
	l1.Track("camera", KindVideo, h264, nil)
	l2.Track("camera", KindVideo, h264, nil)
	if len(seen) != 0 {
		t.Fatalf("after Close: seen %v, want nothing", seen)
	}
}
