package peer

import (
	"testing"
	"time"

	"lectern/internal/clip"
	"lectern/internal/testenv"
	"lectern/internal/testpeer"
	"lectern/sfu"
)

// simulcastClips returns the three real layers (720p, 360p, 180p; ffmpeg-made,
// cached) of a simulcast publisher.
func simulcastClips(t *testing.T) []*clip.Clip {
	t.Helper()
	var clips []*clip.Clip
	for _, o := range testpeer.SimulcastClipOptions(4 * time.Second) {
		clips = append(clips, testenv.Clip(t, o))
	}
	return clips
}

// startSimulcast connects a simulcast trainer publisher; it is closed when the test
// ends.
func (f *fixture) startSimulcast(t *testing.T, o testpeer.SimulcastOptions) *testpeer.SimulcastPublisher {
	t.Helper()
	pub, err := testpeer.NewSimulcastPublisher(f.ctx, f.publishSignal(sfu.TrainerPublication), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	return pub
}

// trainerTracks returns the trainer publication's tracks by name.
func (f *fixture) trainerTracks() map[string]*sfu.Track {
	out := map[string]*sfu.Track{}
	if p, ok := f.sess.Publication(sfu.TrainerPublication); ok {
		for _, tr := range p.Tracks() {
			out[tr.Name()] = tr
		}
	}
	return out
}

// TestSimulcastLayersBecomeTracks: a pion publisher's three simulcast layers (rids
// h, m, l) become the tracks trainer/video, trainer/video~1 and trainer/video~2,
// each carrying its own layer (the bitrates are in the clips' order), beside
// trainer/audio.
func TestSimulcastLayersBecomeTracks(t *testing.T) {
	f := newFixture(t, Config{}, time.Second)
	pub := f.startSimulcast(t, testpeer.SimulcastOptions{Layers: simulcastClips(t)})
	names := []string{"trainer/video", "trainer/video~1", "trainer/video~2", "trainer/audio"}
	testenv.WaitFor(f.ctx, t, "four tracks with packets", func() bool {
		tracks := f.trainerTracks()
		for _, n := range names {
			if tr := tracks[n]; tr == nil || tr.Bytes() < 20_000 && tr.Kind() == sfu.KindVideo || tr.Bytes() == 0 {
				return false
			}
		}
		return true
	})
	tracks := f.trainerTracks()
	if len(tracks) != len(names) {
		t.Fatalf("tracks %v, want %v", keys(tracks), names)
	}
	for rank, n := range names[:3] {
		if got := tracks[n].Layer(); got != rank {
			t.Errorf("%s: layer %d, want %d", n, got, rank)
		}
	}
	// Sample over the same second: the top layer carries the most.
	before := [3]uint64{}
	for i, n := range names[:3] {
		before[i] = tracks[n].Bytes()
	}
	time.Sleep(2 * time.Second)
	var rates [3]uint64
	for i, n := range names[:3] {
		rates[i] = (tracks[n].Bytes() - before[i]) * 8 / 2
	}
	t.Logf("layer bitrates (bit/s): %v", rates)
	if !(rates[0] > rates[1] && rates[1] > rates[2] && rates[2] > 0) {
		t.Fatalf("layer bitrates %v are not best first", rates)
	}
	for _, rid := range testpeer.SimulcastRIDs {
		if p, _ := pub.Sent(rid); p == 0 {
			t.Errorf("layer %s sent nothing", rid)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
