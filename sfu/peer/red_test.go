package peer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/pion/webrtc/v4"
)

// redBlock is one block of a decoded RED payload.
type redBlock struct {
	pt   uint8
	ts   uint32 // the primary's timestamp minus the block's offset
	data []byte
}

// decodeRED splits a RED payload (RFC 2198) sent at timestamp ts into its
// blocks, redundant ones first, the primary last. It is the receiver's side,
// written from the RFC, to check the encoder against.
func decodeRED(ts uint32, b []byte) ([]redBlock, error) {
	type hdr struct {
		pt      uint8
		off, ln int
	}
	var hdrs []hdr
	p := 0
	for {
		if p >= len(b) {
			return nil, fmt.Errorf("truncated header at %d", p)
		}
		if b[p]&0x80 == 0 {
			hdrs = append(hdrs, hdr{pt: b[p] & 0x7f, ln: -1})
			p++
			break
		}
		if p+4 > len(b) {
			return nil, fmt.Errorf("truncated block header at %d", p)
		}
		hdrs = append(hdrs, hdr{
			pt:  b[p] & 0x7f,
			off: int(b[p+1])<<6 | int(b[p+2])>>2,
			ln:  int(b[p+2]&3)<<8 | int(b[p+3]),
		})
		p += 4
	}
	blocks := make([]redBlock, 0, len(hdrs))
	for _, h := range hdrs {
		ln := h.ln
		if ln < 0 {
			ln = len(b) - p
		}
		if p+ln > len(b) {
			return nil, fmt.Errorf("block of %d bytes at %d overruns %d", ln, p, len(b))
		}
		blocks = append(blocks, redBlock{pt: h.pt, ts: ts - uint32(h.off), data: b[p : p+ln]})
		p += ln
	}
	return blocks, nil
}

// testFrame is frame i of a test stream: n bytes that name i.
func testFrame(i, n int) []byte {
	f := make([]byte, n)
	for j := range f {
		f[j] = byte(i*7 + j)
	}
	if n >= 4 {
		binary.BigEndian.PutUint32(f, uint32(i))
	}
	return f
}

func TestREDEncodeRoundTrip(t *testing.T) {
	for _, distance := range []int{0, 1, 2} {
		t.Run(fmt.Sprint("distance ", distance), func(t *testing.T) {
			e := newREDEncoder(63, 111, distance)
			const ts0 = 0xffff_f000 // wraps during the stream
			frames := map[uint32][]byte{}
			for i := range 50 {
				ts := uint32(ts0 + i*960)
				frame := testFrame(i, 40+i*3)
				frames[ts] = frame
				out := e.encode(ts, frame, true)
				blocks, err := decodeRED(ts, out)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if want := min(i, distance) + 1; len(blocks) != want {
					t.Fatalf("frame %d: %d blocks, want %d", i, len(blocks), want)
				}
				for k, b := range blocks {
					// Oldest first: block k of frame i is frame i-(len-1-k).
					wantTS := ts - uint32(960*(len(blocks)-1-k))
					if b.pt != 111 || b.ts != wantTS || !bytes.Equal(b.data, frames[wantTS]) {
						t.Fatalf("frame %d block %d: pt %d ts %d (%d bytes), want pt 111 ts %d (%d bytes)",
							i, k, b.pt, b.ts, len(b.data), wantTS, len(frames[wantTS]))
					}
				}
			}
		})
	}
}

// TestREDEncodeBounds checks what is left out: previous frames that would take
// the payload over redMaxPayload, that are longer than a block can say, whose
// offset does not fit 14 bits, and retransmitted or late frames as redundancy.
func TestREDEncodeBounds(t *testing.T) {
	blocksOf := func(t *testing.T, e *redEncoder, ts uint32, frame []byte, record bool) []redBlock {
		t.Helper()
		out := e.encode(ts, frame, record)
		if len(out) > redMaxPayload && len(out) > 1+len(frame) {
			t.Fatalf("payload of %d bytes with redundancy, bound %d", len(out), redMaxPayload)
		}
		blocks, err := decodeRED(ts, out)
		if err != nil {
			t.Fatal(err)
		}
		if p := blocks[len(blocks)-1]; p.ts != ts || !bytes.Equal(p.data, frame) {
			t.Fatalf("primary ts %d %d bytes, want ts %d %d bytes", p.ts, len(p.data), ts, len(frame))
		}
		return blocks
	}

	t.Run("size", func(t *testing.T) {
		e := newREDEncoder(63, 111, 2)
		blocksOf(t, e, 0, testFrame(0, 500), true)
		// 500 + 4 + 1 + 500 fits 1100; a second copy would not.
		if b := blocksOf(t, e, 960, testFrame(1, 500), true); len(b) != 2 || b[0].ts != 0 {
			t.Fatalf("%d blocks, want the previous frame and the primary", len(b))
		}
		if b := blocksOf(t, e, 1920, testFrame(2, 500), true); len(b) != 2 || b[0].ts != 960 {
			t.Fatalf("%d blocks (first ts %d), want the newest previous frame and the primary", len(b), b[0].ts)
		}
		// A primary larger than the bound goes alone.
		if b := blocksOf(t, e, 2880, testFrame(3, 1200), true); len(b) != 1 {
			t.Fatalf("%d blocks, want the primary alone", len(b))
		}
		// It is longer than a block can describe: never repeated.
		if b := blocksOf(t, e, 3840, testFrame(4, 100), true); len(b) != 2 || b[0].ts != 1920 {
			t.Fatalf("%d blocks, want frame 2 (frame 3 is too long to repeat) and the primary", len(b))
		}
		// One that does not fit the output buffer is refused: the caller sends it plain.
		if out := e.encode(4800, make([]byte, redOutSize), true); out != nil {
			t.Fatalf("a %d-byte primary encoded", redOutSize)
		}
	})

	t.Run("offset", func(t *testing.T) {
		e := newREDEncoder(63, 111, 2)
		blocksOf(t, e, 1000, testFrame(0, 50), true)
		// 2^14 ticks later (DTX, a pause): the old frame cannot be described.
		if b := blocksOf(t, e, 1000+1<<14, testFrame(1, 50), true); len(b) != 1 {
			t.Fatalf("%d blocks at offset 2^14, want the primary alone", len(b))
		}
		// The largest offset that fits is used.
		if b := blocksOf(t, e, 1000+1<<14+redMaxTSOffset, testFrame(2, 50), true); len(b) != 2 || b[0].ts != 1000+1<<14 {
			t.Fatalf("%d blocks at offset 2^14-1, want 2", len(b))
		}
	})

	t.Run("retransmission", func(t *testing.T) {
		e := newREDEncoder(63, 111, 2)
		for i := range 3 {
			blocksOf(t, e, uint32(i*960), testFrame(i, 50), true)
		}
		// A retransmission of frame 1 has no redundancy (the kept frames are newer)
		// and is not kept.
		if b := blocksOf(t, e, 960, testFrame(1, 50), false); len(b) != 1 {
			t.Fatalf("retransmission: %d blocks, want 1", len(b))
		}
		// A late frame (record, but older than the last) is not kept either.
		blocksOf(t, e, 960, testFrame(1, 50), true)
		b := blocksOf(t, e, 3*960, testFrame(3, 50), true)
		if len(b) != 3 || b[0].ts != 960 || b[1].ts != 1920 {
			t.Fatalf("after a retransmission: %d blocks, want frames 1, 2 and the primary", len(b))
		}
	})

	t.Run("empty", func(t *testing.T) {
		e := newREDEncoder(63, 111, 2)
		blocksOf(t, e, 0, nil, true)
		if b := blocksOf(t, e, 960, testFrame(1, 50), true); len(b) != 1 {
			t.Fatalf("%d blocks, want an empty previous frame left out", len(b))
		}
	})
}

func TestREDEncodeNoAllocation(t *testing.T) {
	e := newREDEncoder(63, 111, redDistance)
	frame := testFrame(1, 120)
	ts := uint32(0)
	if n := testing.AllocsPerRun(1000, func() {
		ts += 960
		e.encode(ts, frame, true)
	}); n != 0 {
		t.Fatalf("%v allocations per packet", n)
	}
}

func TestBindRED(t *testing.T) {
	opus := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}
	opus109 := opus
	opus109.PayloadType = 109
	red := func(pt webrtc.PayloadType, fmtp string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/RED", ClockRate: 48000, Channels: 2, SDPFmtpLine: fmtp}, PayloadType: pt}
	}
	for _, tc := range []struct {
		name   string
		codecs []webrtc.RTPCodecParameters
		want   webrtc.PayloadType // 0: plain Opus
	}{
		{"red first", []webrtc.RTPCodecParameters{red(63, "111/111"), opus}, 63},
		{"red after opus", []webrtc.RTPCodecParameters{opus, red(63, "111/111")}, 63},
		{"distance 3 fmtp", []webrtc.RTPCodecParameters{opus, red(96, "111/111/111")}, 96},
		{"no red", []webrtc.RTPCodecParameters{opus}, 0},
		{"red of another payload type", []webrtc.RTPCodecParameters{red(63, "109/109"), opus109}, 63},
		{"red of another codec", []webrtc.RTPCodecParameters{opus, red(63, "109/109")}, 0},
		{"red without fmtp", []webrtc.RTPCodecParameters{opus, red(63, "")}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chosen := opus // what Bind chose before: the section's Opus
			for _, c := range tc.codecs {
				if c.MimeType == webrtc.MimeTypeOpus {
					chosen = c
				}
			}
			c, e := bindRED(tc.codecs, chosen)
			if tc.want == 0 {
				if e != nil || c.PayloadType != chosen.PayloadType {
					t.Fatalf("bound %s %d with encoder %v, want opus alone", c.MimeType, c.PayloadType, e != nil)
				}
				return
			}
			if e == nil || c.PayloadType != tc.want || e.pt != uint8(tc.want) || e.blockPT != uint8(chosen.PayloadType) || e.distance.Load() != redDistance {
				t.Fatalf("bound %s %d, encoder %+v; want red %d", c.MimeType, c.PayloadType, e, tc.want)
			}
		})
	}
}

func BenchmarkREDEncode(b *testing.B) {
	e := newREDEncoder(63, 111, redDistance)
	frame := testFrame(1, 120) // a 20 ms voice frame at ~48 kbit/s
	ts := uint32(0)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		ts += 960
		e.encode(ts, frame, true)
	}
}

// TestDownTrackEncodeRED: an audio downtrack sends RED only while its source is
// Opus; a camera's PCMU goes out unchanged, and without RED nothing changes.
func TestDownTrackEncodeRED(t *testing.T) {
	frame := testFrame(1, 80)
	for _, tc := range []struct {
		name   string
		red    bool
		pt     uint8 // the source codec's payload type for the subscriber
		wantPT uint8
	}{
		{"opus with red", true, 111, 63},
		{"pcmu with red", true, 0, 0},
		{"opus without red", false, 111, 111},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &downTrack{pt: tc.pt}
			if tc.red {
				d.red = newREDEncoder(63, 111, redDistance)
			}
			d.hdr.PayloadType, d.hdr.Timestamp = tc.pt, 960
			out := d.encodeRED(frame, false)
			if d.hdr.PayloadType != tc.wantPT {
				t.Fatalf("payload type %d, want %d", d.hdr.PayloadType, tc.wantPT)
			}
			if tc.wantPT != 63 {
				if !bytes.Equal(out, frame) {
					t.Fatal("payload changed")
				}
				return
			}
			blocks, err := decodeRED(960, out)
			if err != nil || len(blocks) != 1 || !bytes.Equal(blocks[0].data, frame) {
				t.Fatalf("RED payload %d blocks (%v), want the frame alone", len(blocks), err)
			}
		})
	}
}

// TestREDDistanceChange: the distance set between packets applies to the next
// one; the frames sent at distance 0 are still kept, so a distance raised again
// repeats the previous frames at once; changing it allocates nothing.
func TestREDDistanceChange(t *testing.T) {
	e := newREDEncoder(63, 111, redDistance)
	frames := map[uint32][]byte{}
	i := 0
	send := func(distance, wantBlocks int) {
		t.Helper()
		e.setDistance(distance)
		ts := uint32(i * 960)
		frames[ts] = testFrame(i, 60)
		blocks, err := decodeRED(ts, e.encode(ts, frames[ts], true))
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if len(blocks) != wantBlocks {
			t.Fatalf("frame %d at distance %d: %d blocks, want %d", i, distance, len(blocks), wantBlocks)
		}
		for k, b := range blocks {
			wantTS := ts - uint32(960*(len(blocks)-1-k))
			if b.ts != wantTS || !bytes.Equal(b.data, frames[wantTS]) {
				t.Fatalf("frame %d block %d: ts %d, want %d", i, k, b.ts, wantTS)
			}
		}
		i++
	}
	send(2, 1)
	send(2, 2)
	send(2, 3)
	send(1, 2)
	send(0, 1)
	send(0, 1)
	send(2, 3) // the two frames sent alone are repeated
	send(1, 2)
	send(5, 3) // clamped to redMaxDistance
	send(-1, 1)

	frame := testFrame(1, 120)
	ts := uint32(i * 960)
	allocs := testing.AllocsPerRun(100, func() {
		ts += 960
		e.setDistance(int(ts/960) % 3)
		e.encode(ts, frame, true)
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per packet, want 0", allocs)
	}
}
