package main

import (
	"bytes"
	"testing"
)

// redOf builds an RFC 2198 payload by hand: the redundant blocks (offset back from
// the packet's timestamp, data), oldest first, then the primary, every block of
// payload type 111.
func redOf(primary []byte, red ...redTestBlock) []byte {
	var b []byte
	for _, r := range red {
		b = append(b, 0x80|subscriberOpusPT, byte(r.off>>6), byte(r.off<<2)|byte(len(r.data)>>8), byte(len(r.data)))
	}
	b = append(b, subscriberOpusPT)
	for _, r := range red {
		b = append(b, r.data...)
	}
	return append(b, primary...)
}

type redTestBlock struct {
	off  uint32
	data []byte
}

func TestParseRED(t *testing.T) {
	long := bytes.Repeat([]byte{7}, 1023) // the longest block a header describes
	for _, tc := range []struct {
		name    string
		payload []byte
		ts      uint32
		want    []redBlock // data compared by content
	}{
		{"primary only", redOf([]byte{1, 2, 3}), 5000, []redBlock{{ts: 5000, primary: true, data: []byte{1, 2, 3}}}},
		{"distance 2", redOf([]byte{3, 3}, redTestBlock{1920, []byte{1}}, redTestBlock{960, []byte{2, 2, 2}}), 10000,
			[]redBlock{{ts: 10000 - 1920, data: []byte{1}}, {ts: 10000 - 960, data: []byte{2, 2, 2}}, {ts: 10000, primary: true, data: []byte{3, 3}}}},
		{"timestamp wraps", redOf([]byte{9}, redTestBlock{960, []byte{8}}), 100,
			[]redBlock{{ts: 1<<32 - 860, data: []byte{8}}, {ts: 100, primary: true, data: []byte{9}}}},
		{"largest offset and block", redOf(nil, redTestBlock{1<<14 - 1, long}), 1 << 20,
			[]redBlock{{ts: 1<<20 - (1<<14 - 1), data: long}, {ts: 1 << 20, primary: true, data: []byte{}}}},
		{"empty redundant block", redOf([]byte{4}, redTestBlock{960, nil}), 960,
			[]redBlock{{ts: 0, data: []byte{}}, {ts: 960, primary: true, data: []byte{4}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out [redMaxBlocks]redBlock
			n, ok := parseRED(tc.payload, tc.ts, out[:])
			if !ok || n != len(tc.want) {
				t.Fatalf("parsed %d blocks, ok %v; want %d", n, ok, len(tc.want))
			}
			for i, w := range tc.want {
				g := out[i]
				if g.ts != w.ts || g.primary != w.primary || g.pt != subscriberOpusPT || !bytes.Equal(g.data, w.data) {
					t.Errorf("block %d: ts %d primary %v pt %d %d bytes, want ts %d primary %v %d bytes", i, g.ts, g.primary, g.pt, len(g.data), w.ts, w.primary, len(w.data))
				}
			}
		})
	}
	tooMany := redOf([]byte{1})
	for range redMaxBlocks {
		tooMany = append([]byte{0x80 | subscriberOpusPT, 0, 4, 0}, tooMany...)
	}
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"redundant header cut", []byte{0x80 | subscriberOpusPT, 0, 4}},
		{"no primary header", []byte{0x80 | subscriberOpusPT, 0, 4, 0}},
		{"block longer than the payload", redOf(nil, redTestBlock{960, []byte{1, 2}})[:6]},
		{"blocks longer than the payload", append(redOf(nil, redTestBlock{960, []byte{1, 2}}, redTestBlock{480, []byte{3}})[:9], 0)},
		{"too many blocks", tooMany},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out [redMaxBlocks]redBlock
			if n, ok := parseRED(tc.payload, 0, out[:]); ok {
				t.Fatalf("malformed payload % x parsed into %d blocks", tc.payload, n)
			}
		})
	}
	// A caller's smaller out bounds the blocks too.
	var two [2]redBlock
	if _, ok := parseRED(redOf([]byte{3}, redTestBlock{1920, []byte{1}}, redTestBlock{960, []byte{2}}), 5000, two[:]); ok {
		t.Fatal("three blocks parsed into two")
	}
	if n, ok := parseRED(redOf([]byte{3}, redTestBlock{960, []byte{2}}), 5000, two[:]); !ok || n != 2 {
		t.Fatalf("two blocks into two: %d %v", n, ok)
	}
}

func TestParseREDNoAllocation(t *testing.T) {
	p := redOf([]byte{3, 3}, redTestBlock{1920, []byte{1}}, redTestBlock{960, []byte{2, 2, 2}})
	var out [redMaxBlocks]redBlock
	if a := testing.AllocsPerRun(100, func() { parseRED(p, 10000, out[:]) }); a != 0 {
		t.Fatalf("%v allocations per parse", a)
	}
}

// FuzzParseRED: any payload parses or is refused without a panic; what parses
// accounts for every byte (headers and blocks) and ends with the primary at the
// packet's timestamp.
func FuzzParseRED(f *testing.F) {
	f.Add(redOf([]byte{3, 3}, redTestBlock{1920, []byte{1}}, redTestBlock{960, []byte{2, 2, 2}}), uint32(10000))
	f.Add(redOf(nil), uint32(0))
	f.Add([]byte{0x80 | subscriberOpusPT, 0xff, 0xff, 0xff}, uint32(1))
	f.Fuzz(func(t *testing.T, payload []byte, ts uint32) {
		var out [redMaxBlocks]redBlock
		n, ok := parseRED(payload, ts, out[:])
		if !ok {
			return
		}
		if n < 1 || n > redMaxBlocks {
			t.Fatalf("%d blocks", n)
		}
		total := 1 + 4*(n-1)
		for i, b := range out[:n] {
			if b.primary != (i == n-1) {
				t.Fatalf("block %d of %d: primary %v", i, n, b.primary)
			}
			total += len(b.data)
		}
		if total != len(payload) || out[n-1].ts != ts {
			t.Fatalf("blocks account for %d of %d bytes; primary ts %d, packet's %d", total, len(payload), out[n-1].ts, ts)
		}
	})
}

// redStream plays a RED sender (distance 2, 20 ms frames) and a loss pattern into
// a frameTracker and a seqCounter, as the audio reader does.
type redStream struct {
	tr   frameTracker
	seqs seqCounter
}

const frameTicks = 960

// send delivers packet i of the stream (frame i, with copies of frames i-1, i-2).
func (s *redStream) send(i int) {
	ts := uint32(7_000_000 + i*frameTicks)
	var red []redTestBlock
	for back := 2; back >= 1; back-- {
		if i-back >= -2 { // the sender had frames before the subscriber's first
			red = append(red, redTestBlock{uint32(back * frameTicks), []byte{byte(i - back)}})
		}
	}
	s.seqs.add(uint16(60000 + i))
	s.tr.add(subscriberREDPT, subscriberREDPT, ts, redOf([]byte{byte(i)}, red...))
}

func (s *redStream) framesLost() int64 { return s.tr.framesLost(s.seqs.lost.Load()) }

func TestFrameTracker(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		order                 []int // packets delivered, in order
		packetsLost, frames   int64
		recovered, malformedN int64
	}{
		{"clean", []int{0, 1, 2, 3, 4}, 0, 0, 0, 0},
		{"one lost", []int{0, 1, 3, 4}, 1, 0, 1, 0},
		{"two in a row lost", []int{0, 1, 4, 5}, 2, 0, 2, 0},
		{"three in a row lost: the oldest is gone", []int{0, 1, 5, 6}, 3, 1, 2, 0},
		{"isolated losses", []int{0, 2, 4, 6, 8}, 4, 0, 4, 0},
		{"late packet after its recovery", []int{0, 1, 3, 2, 4}, 0, 0, 0, 0},
		{"duplicate", []int{0, 1, 1, 2}, 0, 0, 0, 0},
		{"first packets never count", []int{5, 6, 7}, 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s redStream
			for _, i := range tc.order {
				s.send(i)
			}
			if s.seqs.lost.Load() != tc.packetsLost || s.framesLost() != tc.frames || s.tr.recovered.Load() != tc.recovered || s.tr.malformed.Load() != tc.malformedN {
				t.Fatalf("packets lost %d, frames lost %d, recovered %d, malformed %d; want %d %d %d %d",
					s.seqs.lost.Load(), s.framesLost(), s.tr.recovered.Load(), s.tr.malformed.Load(), tc.packetsLost, tc.frames, tc.recovered, tc.malformedN)
			}
		})
	}
	t.Run("malformed packet's frame is lost unless repeated", func(t *testing.T) {
		var s redStream
		s.send(0)
		s.seqs.add(60001)
		s.tr.add(subscriberREDPT, subscriberREDPT, 7_000_000+frameTicks, []byte{0x80 | subscriberOpusPT, 0, 4}) // cut
		if s.framesLost() != 1 {
			t.Fatalf("frames lost %d after a malformed packet, want 1", s.framesLost())
		}
		s.send(2) // repeats frame 1
		if s.framesLost() != 0 || s.tr.malformed.Load() != 1 {
			t.Fatalf("frames lost %d (malformed %d) once the next packet repeated it, want 0", s.framesLost(), s.tr.malformed.Load())
		}
	})
	t.Run("plain Opus: a packet is a frame", func(t *testing.T) {
		var tr frameTracker
		var seqs seqCounter
		for _, i := range []int{0, 1, 3, 4} {
			seqs.add(uint16(i))
			tr.add(subscriberOpusPT, 0, uint32(i*frameTicks), []byte{0xf8})
		}
		if tr.framesLost(seqs.lost.Load()) != 1 || tr.redPkts.Load() != 0 {
			t.Fatalf("frames lost %d, RED packets %d", tr.framesLost(seqs.lost.Load()), tr.redPkts.Load())
		}
	})
	t.Run("a plain packet amid RED", func(t *testing.T) {
		// The server sends a frame too large for RED as plain Opus.
		var s redStream
		s.send(0)
		s.seqs.add(60001)
		s.tr.add(subscriberOpusPT, subscriberREDPT, 7_000_000+frameTicks, []byte{1})
		s.send(3) // repeats frames 1 and 2: 1 already received, 2 recovered
		if s.framesLost() != 0 || s.tr.recovered.Load() != 1 {
			t.Fatalf("frames lost %d, recovered %d", s.framesLost(), s.tr.recovered.Load())
		}
	})
}

func TestFrameTrackerNoAllocation(t *testing.T) {
	var s redStream
	i := 0
	p := redOf([]byte{3, 3}, redTestBlock{1920, []byte{1}}, redTestBlock{960, []byte{2, 2, 2}})
	if a := testing.AllocsPerRun(100, func() {
		i += 2
		s.tr.add(subscriberREDPT, subscriberREDPT, uint32(i*frameTicks), p)
	}); a != 0 {
		t.Fatalf("%v allocations per packet", a)
	}
}
