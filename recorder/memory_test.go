package recorder

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/pion/rtp"

	"lectern/internal/clip"
	"lectern/sfu"
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

// recycler stands for the sfu packet pool in tests: it hands out packets holding
// one reference (the caller's), and overwrites the memory of every packet
// released to the end, as the pool's next user would.
type recycler struct {
	live  []recycled
	freed [][]byte // the memory of the packets the last recycle overwrote
}

type recycled struct {
	p   *sfu.Packet
	mem []byte
}

// packet returns a packet with a copy of payload.
func (r *recycler) packet(hdr rtp.Header, payload []byte) *sfu.Packet {
	mem := bytes.Clone(payload)
	p := testPacket(hdr, mem)
	r.live = append(r.live, recycled{p, mem})
	return p
}

// recycle overwrites the packets released since the last call, and returns how
// many are still retained.
func (r *recycler) recycle() int {
	kept := r.live[:0]
	r.freed = r.freed[:0]
	for _, x := range r.live {
		if x.p.Payload != nil { // Release clears it
			kept = append(kept, x)
			continue
		}
		for i := range x.mem {
			x.mem[i] = 0xee
		}
		r.freed = append(r.freed, x.mem)
	}
	clear(r.live[len(kept):])
	r.live = kept
	return len(kept)
}

// intact reports whether bufs are in memory of their own, not in that of the
// packets the last recycle overwrote: they stay the same when it is overwritten
// once more.
func (r *recycler) intact(bufs [][]byte) bool {
	var copies [][]byte
	for _, b := range bufs {
		copies = append(copies, bytes.Clone(b))
	}
	for _, m := range r.freed {
		for i := range m {
			m[i] = 0x11
		}
	}
	for i, b := range bufs {
		if !bytes.Equal(b, copies[i]) {
			return false
		}
	}
	return true
}

// TestH264DepacketizerPacketMemory: the depacketizer retains the packets its
// access units (and the decoder) refer to, so an access unit holds the NAL units
// that were sent even though the packets' memory is recycled once released; it
// retains no more than the access unit being collected, and nothing once
// released. Access units end at a marker or at a timestamp change (no marker),
// and are dropped after a loss.
func TestH264DepacketizerPacketMemory(t *testing.T) {
	var d h264Depacketizer
	var pool recycler
	var sent, got [][][]byte
	rng := rand.New(rand.NewPCG(3, 4))
	seq := uint16(60000)
	push := func(p rtp.Packet) {
		sp := pool.packet(p.Header, p.Payload)
		aus, err := d.push(sp, 0)
		sp.Release()
		if err != nil {
			t.Fatal(err)
		}
		if held := pool.recycle(); held > 60 {
			t.Fatalf("%d packets retained", held)
		}
		for _, au := range aus { // valid until the next push: copy
			var c [][]byte
			for _, n := range au.nalus {
				c = append(c, bytes.Clone(n))
			}
			got = append(got, c)
		}
	}
	for i := range 300 {
		nalus := clip.SyntheticDelta(1500 + rng.IntN(4000)) // two packets or more: the loss is inside
		if i%30 == 0 {
			nalus = clip.SyntheticKeyframe(2000 + rng.IntN(20000))
		}
		pkts := h264Packets(nalus, uint32(i*3000), &seq)
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
			push(p)
		}
	}
	push(rtp.Packet{Header: rtp.Header{Timestamp: 1 << 30, Marker: true, SequenceNumber: seq}, Payload: []byte{0x09, 0x10}}) // an AUD at a new timestamp ends the last one
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
	d.release()
	if held := pool.recycle(); held != 0 {
		t.Fatalf("%d packets still retained after release", held)
	}
}
