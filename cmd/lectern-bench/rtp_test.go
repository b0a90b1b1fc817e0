package main

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestParseRTP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pkt     rtp.Packet
		payload int
	}{
		{"plain", rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 65535, Timestamp: 0xdeadbeef}, Payload: make([]byte, 100)}, 100},
		{"csrc", rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 7, Timestamp: 1, CSRC: []uint32{1, 2}}, Payload: make([]byte, 10)}, 10},
		{"extension", withExtension(rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 8, Timestamp: 2}, Payload: make([]byte, 20)}), 20},
		{"padding", rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 9, Timestamp: 3, Padding: true, PaddingSize: 4}, Payload: make([]byte, 30)}, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.pkt.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			h, ok := parseRTP(b)
			if !ok {
				t.Fatal("not parsed")
			}
			if h.seq != tc.pkt.SequenceNumber || h.ts != tc.pkt.Timestamp || len(h.payload) != tc.payload {
				t.Fatalf("got seq %d ts %d payload %d, want %d %d %d", h.seq, h.ts, len(h.payload), tc.pkt.SequenceNumber, tc.pkt.Timestamp, tc.payload)
			}
		})
	}
	if _, ok := parseRTP([]byte{0x80, 0}); ok {
		t.Fatal("short packet parsed")
	}
}

func withExtension(p rtp.Packet) rtp.Packet {
	if err := p.SetExtension(1, []byte{1, 2, 3}); err != nil {
		panic(err)
	}
	return p
}

func TestSeqCounter(t *testing.T) {
	for _, tc := range []struct {
		name      string
		seqs      []uint16
		lost, dup int64
	}{
		{"continuous", []uint16{1, 2, 3, 4}, 0, 0},
		{"wrap", []uint16{65534, 65535, 0, 1}, 0, 0},
		{"gap", []uint16{10, 11, 14, 15}, 2, 0},
		{"late arrival recovers", []uint16{10, 12, 11, 13}, 0, 0},
		{"duplicate", []uint16{10, 11, 11, 12}, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c seqCounter
			for _, s := range tc.seqs {
				c.add(s)
			}
			if c.lost.Load() != tc.lost || c.dups.Load() != tc.dup {
				t.Fatalf("lost %d dup %d, want %d %d", c.lost.Load(), c.dups.Load(), tc.lost, tc.dup)
			}
		})
	}
}

func TestHistogramPercentile(t *testing.T) {
	var h histogram
	for i := 1; i <= 100; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	if p := h.percentile(50); p < 49*time.Millisecond || p > 51*time.Millisecond {
		t.Fatalf("p50 %v", p)
	}
	if p := h.percentile(99); p < 98*time.Millisecond || p > 101*time.Millisecond {
		t.Fatalf("p99 %v", p)
	}
	h.reset()
	if h.percentile(50) != 0 {
		t.Fatal("not reset")
	}
}

func TestSendLogLookup(t *testing.T) {
	l := newSendLog()
	for i := uint32(0); i < 3*sendLogSize; i++ {
		l.record(i*3000, i%60 == 0)
	}
	var c sendCursor
	last := uint32(3*sendLogSize-1) * 3000
	if _, _, ok := l.lookup(&c, last); !ok {
		t.Fatal("latest access unit not found")
	}
	if _, _, ok := l.lookup(&c, 0); ok {
		t.Fatal("an overwritten access unit was found")
	}
	key, ok := l.lastKeyframe()
	if !ok || key/3000%60 != 0 {
		t.Fatalf("last keyframe %d %v", key, ok)
	}
}
