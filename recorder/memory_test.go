package recorder

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"lectern/internal/clip"
)

func TestArena(t *testing.T) {
	var a arena
	var kept, want [][]byte
	for i := range 2000 {
		b := bytes.Repeat([]byte{byte(i)}, 1+(i*7919)%(arenaBlock/10))
		if i == 1000 {
			b = bytes.Repeat([]byte{1}, arenaBlock+1) // larger than a block
		}
		c := a.copy(b)
		if cap(c) != len(c) {
			t.Fatalf("copy %d: capacity %d for length %d", i, cap(c), len(c))
		}
		kept, want = append(kept, c), append(want, b)
	}
	for i := range kept {
		if !bytes.Equal(kept[i], want[i]) {
			t.Fatalf("copy %d was overwritten", i)
		}
	}
}

// TestH264DepacketizerReusesMemory: the depacketizer reuses its memory from
// access unit to access unit, and every access unit it returns holds the NAL
// units that were sent, also when access units end at a timestamp change
// (no marker) or are dropped after a loss.
func TestH264DepacketizerReusesMemory(t *testing.T) {
	var d h264Depacketizer
	var sent, got [][][]byte
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		nalus := clip.SyntheticDelta(1500 + rng.IntN(4000)) // two packets or more: the loss is inside
		if i%30 == 0 {
			nalus = clip.SyntheticKeyframe(2000 + rng.IntN(20000))
		}
		pkts := clip.AccessUnit{NALUs: nalus}.Packetize(1200)
		lose := i%30 == 17 // a loss: this and the next access units up to a keyframe are dropped
		if i%7 == 3 {
			pkts[len(pkts)-1].Marker = false // ends at the next timestamp
		}
		if i%30 < 17 {
			sent = append(sent, nalus)
		}
		for j, p := range pkts {
			if lose && j == len(pkts)/2 {
				d.lost()
				continue
			}
			aus, err := d.push(p.Payload, uint32(i*3000), p.Marker)
			if err != nil {
				t.Fatal(err)
			}
			for _, au := range aus { // valid until the next push: copy
				var c [][]byte
				for _, n := range au.nalus {
					c = append(c, bytes.Clone(n))
				}
				got = append(got, c)
			}
		}
	}
	last, _ := d.push([]byte{0x09, 0x10}, 1<<30, true) // an AUD at a new timestamp ends the last one
	for _, au := range last {
		got = append(got, au.nalus)
	}
	if len(got) != len(sent) {
		t.Fatalf("%d access units out, want %d", len(got), len(sent))
	}
	for i := range sent {
		var want [][]byte
		for _, n := range sent[i] {
			if typ := n[0] & 0x1f; typ != 9 && typ != 12 { // AUD and filler are not kept
				want = append(want, n)
			}
		}
		if len(got[i]) != len(want) {
			t.Fatalf("access unit %d: %d NAL units, want %d", i, len(got[i]), len(want))
		}
		for j := range want {
			if !bytes.Equal(got[i][j], want[j]) {
				t.Fatalf("access unit %d, NAL unit %d differs", i, j)
			}
		}
	}
	if c := cap(d.buf); c > 200_000 {
		t.Errorf("buffer grew to %d bytes", c)
	}
}
