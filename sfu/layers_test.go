package sfu

import (
	"sync/atomic"
	"testing"

	"github.com/pion/rtp"
)

// layeredPublisher writes three simulcast layers of one stream, each with its own
// sequence space and a payload byte naming the layer.
type layeredPublisher struct {
	t      *testing.T
	tracks [MaxLayers]*Track
	seq    [MaxLayers]uint16
	keyReq [MaxLayers]atomic.Int32
}

func newLayeredPublisher(t *testing.T, s *Session) *layeredPublisher {
	t.Helper()
	lease, err := s.Claim(TrainerPublication, nil)
	if err != nil {
		t.Fatal(err)
	}
	lp := &layeredPublisher{t: t}
	for r := range MaxLayers {
		tr, err := lease.Track(LayerName("video", r), KindVideo, h264, func() { lp.keyReq[r].Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		lp.tracks[r] = tr
		lp.seq[r] = uint16(1000 * (r + 1))
	}
	return lp
}

// frame writes one two-packet frame on layer r: a keyframe or a P frame.
func (lp *layeredPublisher) frame(r int, key bool) {
	first, second := []byte{0x41, 0x9a, byte(r)}, []byte{0x41, 0x9a, byte(r)}
	if key {
		first, second = []byte{0x7c, 0x85, byte(r)}, []byte{0x7c, 0x45, byte(r)}
	}
	for i, pl := range [][]byte{first, second} {
		lp.seq[r]++
		err := lp.tracks[r].WriteRTP(&rtp.Packet{Header: rtp.Header{
			Version: 2, SequenceNumber: lp.seq[r], Timestamp: uint32(lp.seq[r]) * 1500,
			SSRC: uint32(100 + r), Marker: i == 1,
		}, Payload: pl})
		if err != nil {
			lp.t.Fatal(err)
		}
	}
}

// round writes one frame on every layer.
func (lp *layeredPublisher) round(key bool) {
	for r := range MaxLayers {
		lp.frame(r, key)
	}
}

// drain returns the layers of the queued items, marking switches with a minus.
func drainLayers(q *Queue) []int {
	var out []int
	for {
		item, ok := q.TryNext()
		if !ok {
			return out
		}
		l := int(item.Packet.Payload[2])
		if int(item.Layer) != l {
			panic("item layer does not match the packet's")
		}
		if item.Resync == ResyncSwitch {
			l = -10 - l
		}
		out = append(out, l)
		item.Packet.Release()
	}
}

func TestLayerNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		base string
		rank int
	}{
		{"trainer/video", "trainer/video", 0},
		{"trainer/video~1", "trainer/video", 1},
		{"trainer/video~2", "trainer/video", 2},
		{"trainer/video~3", "trainer/video~3", 0},
		{"trainer/video~x", "trainer/video~x", 0},
		{"trainer/video~0", "trainer/video~0", 0},
	} {
		base, rank := SplitLayer(tc.name)
		if base != tc.base || rank != tc.rank {
			t.Errorf("SplitLayer(%q) = %q, %d; want %q, %d", tc.name, base, rank, tc.base, tc.rank)
		}
		if rank > 0 && LayerName(base, rank) != tc.name {
			t.Errorf("LayerName(%q, %d) = %q", base, rank, LayerName(base, rank))
		}
	}
}

func TestLayerFollowerSwitchesAtKeyframes(t *testing.T) {
	s := newTestSession(t, RegistryConfig{})
	lp := newLayeredPublisher(t, s)
	lp.round(true)
	lp.round(false)

	q := NewQueue(QueueOptions{Kind: KindVideo})
	f := NewLayerFollower(TrainerPublication+"/video", q, nil)
	stop := Follow(s, f)
	defer stop()

	// The first picture starts from the top layer's cached keyframe.
	if got, want := drainLayers(q), []int{-10, 0, 0, 0}; !equalInts(got, want) {
		t.Fatalf("fast start: got %v, want %v", got, want)
	}
	if f.Current() != 0 {
		t.Fatalf("current %d, want 0", f.Current())
	}

	// Down to the low layer: the top one goes on until the low one's keyframe.
	before := lp.keyReq[2].Load()
	f.SetTarget(2)
	if lp.keyReq[2].Load() == before {
		t.Fatal("no keyframe asked of the target layer")
	}
	lp.round(false)
	if got, want := drainLayers(q), []int{0, 0}; !equalInts(got, want) {
		t.Fatalf("before the target's keyframe: got %v, want %v", got, want)
	}
	lp.round(true) // layer 0 writes first: still forwarded
	if got, want := drainLayers(q), []int{0, 0, -12, 2}; !equalInts(got, want) {
		t.Fatalf("at the target's keyframe: got %v, want %v", got, want)
	}
	lp.round(false)
	if got, want := drainLayers(q), []int{2, 2}; !equalInts(got, want) {
		t.Fatalf("after the switch: got %v, want %v", got, want)
	}
	if n := lp.tracks[0].Sinks(); n != 0 {
		t.Fatalf("the old layer still has %d sinks", n)
	}

	// Pause at a frame boundary, resume at a keyframe of the wanted layer.
	f.SetTarget(-1)
	lp.round(true)
	if got := drainLayers(q); len(got) != 0 {
		t.Fatalf("paused, yet got %v", got)
	}
	if f.Current() != -1 {
		t.Fatalf("current %d while paused", f.Current())
	}
	f.SetTarget(1)
	lp.round(false)
	lp.round(true)
	if got, want := drainLayers(q), []int{-11, 1}; !equalInts(got, want) {
		t.Fatalf("resume: got %v, want %v", got, want)
	}
	if f.Switches() != 3 {
		t.Fatalf("switches %d, want 3", f.Switches())
	}

	// A silent layer is not taken: the nearest lower one that sends is.
	lp.tracks[0].lastArrival.Store(Nanotime() - int64(10*layerAliveFor))
	f.SetTarget(0)
	if f.Target() != 1 {
		t.Fatalf("target %d for a silent top layer, want 1", f.Target())
	}
	stop()
	if n := lp.tracks[1].Sinks(); n != 0 {
		t.Fatalf("stopped follower left %d sinks", n)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
