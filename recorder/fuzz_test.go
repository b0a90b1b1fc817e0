package recorder

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"

	"lectern/internal/clip"
)

// A fuzzed packet sequence is a series of [control byte][16-bit length][payload]:
// control bit 0 signals a loss before the packet, bit 1 advances the RTP
// timestamp (a new access unit), bit 2 sets the marker. A short last length
// takes what is left.
const (
	fuzzLost    = 1
	fuzzNextTS  = 2
	fuzzMarker  = 4
	fuzzHdrSize = 3
)

// fuzzPackets calls fn for each packet of a fuzzed sequence.
func fuzzPackets(stream []byte, fn func(payload []byte, lost, nextTS, marker bool)) {
	for len(stream) >= fuzzHdrSize {
		ctl := stream[0]
		n := min(int(binary.BigEndian.Uint16(stream[1:3])), len(stream)-fuzzHdrSize)
		payload := stream[fuzzHdrSize : fuzzHdrSize+n]
		stream = stream[fuzzHdrSize+n:]
		fn(payload, ctl&fuzzLost != 0, ctl&fuzzNextTS != 0, ctl&fuzzMarker != 0)
	}
}

// encodePackets is the inverse of fuzzPackets, for seeds.
func encodePackets(stream []byte, payload []byte, ctl byte) []byte {
	stream = append(stream, ctl)
	stream = binary.BigEndian.AppendUint16(stream, uint16(len(payload)))
	return append(stream, payload...)
}

// FuzzH264Depacketizer feeds arbitrary sequences of RTP payloads (single NAL
// units, STAP-A, FU-A, garbage; losses, timestamp changes, markers) to the
// H.264 depacketizer: it never panics, every access unit it returns is within
// the limits, in order, at the time of its first packet, and intact although the
// memory of every packet released is recycled at once, and it retains a bounded
// number of packets, none once released.
func FuzzH264Depacketizer(f *testing.F) {
	seed := func(steps ...[]byte) []byte { return bytes.Join(steps, nil) }
	var key, delta, lossy []byte
	for i, p := range (clip.AccessUnit{NALUs: clip.SyntheticKeyframe(3000)}).Packetize(1200) {
		ctl := byte(0)
		if i == 0 {
			ctl = fuzzNextTS
		}
		if p.Marker {
			ctl |= fuzzMarker
		}
		key = encodePackets(key, p.Payload, ctl)
		if i != 1 {
			lossy = encodePackets(lossy, p.Payload, ctl|byte(i%2)) // a fragment missing, losses signalled
		}
	}
	for _, p := range (clip.AccessUnit{NALUs: clip.SyntheticDelta(500)}).Packetize(1200) {
		delta = encodePackets(delta, p.Payload, fuzzNextTS|fuzzMarker)
	}
	f.Add(seed(key, delta, delta))
	f.Add(seed(delta, key, lossy, delta, key))
	f.Add(seed(encodePackets(nil, []byte{24, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce, 0, 3, 0x65, 0x88, 0x84}, fuzzMarker)))
	f.Add(seed(encodePackets(nil, []byte{28, 0x85, 1, 2}, 0), encodePackets(nil, []byte{7, 1}, 0), encodePackets(nil, []byte{28, 0x45, 3}, fuzzMarker)))
	f.Add(seed(encodePackets(nil, []byte{28, 0x45, 3}, fuzzMarker|fuzzLost), encodePackets(nil, []byte{}, fuzzNextTS)))
	f.Add(seed(encodePackets(nil, []byte{0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x65, 0x88}, fuzzNextTS), encodePackets(nil, []byte{0x41, 1}, fuzzNextTS|fuzzMarker)))
	f.Fuzz(func(t *testing.T, stream []byte) {
		var d h264Depacketizer
		var pool recycler
		ts := uint32(90000)
		seq := uint16(65530)
		lastTS := uint32(0)
		fuzzPackets(stream, func(payload []byte, lost, nextTS, marker bool) {
			if lost {
				d.lost()
				seq++
			}
			if nextTS {
				ts += 3000
			}
			p := pool.packet(rtp.Header{SequenceNumber: seq, Timestamp: ts, Marker: marker}, payload)
			seq++
			aus, _ := d.push(p, int64(ts)*10)
			p.Release()
			if held := pool.recycle(); held > maxHeldPackets+1 {
				t.Fatalf("%d packets retained", held)
			}
			for _, au := range aus {
				checkFuzzedAU(t, &pool, au, ts, &lastTS)
			}
		})
		d.release()
		if held := pool.recycle(); held != 0 {
			t.Fatalf("%d packets retained after release", held)
		}
	})
}

// checkFuzzedAU checks an access unit out of FuzzH264Depacketizer, pushed when
// the timestamp was ts, after one at *lastTS.
func checkFuzzedAU(t *testing.T, pool *recycler, au videoAU, ts uint32, lastTS *uint32) {
	t.Helper()
	if len(au.nalus) == 0 || len(au.nalus) > h264.MaxNALUsPerAccessUnit || au.ts < *lastTS || au.ts > ts || au.ticks != int64(au.ts)*10 {
		t.Fatalf("access unit of %d NAL units at %d, ticks %d (now %d, last %d)", len(au.nalus), au.ts, au.ticks, ts, *lastTS)
	}
	*lastTS = au.ts
	size := 0
	for _, n := range au.nalus {
		if len(n) == 0 {
			t.Fatal("empty NAL unit")
		}
		size += len(n)
	}
	if !pool.intact(au.nalus) {
		t.Fatal("an access unit refers to recycled packet memory")
	}
	if size > h264.MaxAccessUnitSize {
		t.Fatalf("access unit of %d bytes", size)
	}
}

// FuzzAACDepacketizerSequence feeds arbitrary sequences of MPEG4-GENERIC
// payloads (several AUs per packet, fragmented AUs, losses, timestamp changes)
// to the AAC depacketizer of an AAC-hbr stream as ffmpeg and cameras send it:
// it never panics, returns only AUs within the AAC limit, intact although the
// memory of every packet released is recycled at once, holds at most one AU
// being reassembled, and retains no packet once released.
func FuzzAACDepacketizerSequence(f *testing.F) {
	f.Add(encodePackets(encodePackets(nil, hbrPayload([]int{300, 200}, au(300, 1), au(200, 2)), fuzzNextTS|fuzzMarker),
		hbrPayload([]int{100}, au(100, 3)), fuzzNextTS|fuzzMarker))
	// One AU of 3000 bytes in three fragments, then one whose middle is lost.
	frag := func(s []byte, ctl byte, b byte, n int) []byte {
		return encodePackets(s, hbrPayload([]int{3000}, au(n, b)), ctl)
	}
	var s []byte
	s = frag(s, fuzzNextTS, 1, 1000)
	s = frag(s, 0, 1, 1000)
	s = frag(s, fuzzMarker, 1, 1000)
	s = frag(s, fuzzNextTS, 2, 1000)
	s = frag(s, fuzzLost|fuzzMarker, 2, 1000)
	s = frag(s, fuzzNextTS, 3, 2999)
	s = frag(s, fuzzNextTS|fuzzMarker, 4, 10)
	f.Add(s)
	// The same, fragmented as gortsplib v4 does (each AU-size the fragment's).
	s = nil
	s = encodePackets(s, hbrPayload([]int{1400}, au(1400, 5)), fuzzNextTS)
	s = encodePackets(s, hbrPayload([]int{1400}, au(1400, 5)), 0)
	s = encodePackets(s, hbrPayload([]int{200}, au(200, 5)), fuzzMarker)
	s = encodePackets(s, hbrPayload([]int{1400}, au(1400, 6)), fuzzNextTS)
	s = encodePackets(s, hbrPayload([]int{200}, au(200, 6)), fuzzLost|fuzzMarker)
	f.Add(s)
	f.Add(encodePackets(nil, []byte{0, 16, 0xff, 0xf8, 1, 2, 3}, fuzzMarker))
	f.Add(encodePackets(nil, []byte{0xff, 0xff}, fuzzNextTS))
	format, err := parseAACFormat(hbrCodec)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		d := newAACDepacketizer(format)
		var pool recycler
		ts := uint32(48000)
		seq := uint16(65530)
		fuzzPackets(stream, func(payload []byte, lost, nextTS, marker bool) {
			if lost {
				d.lost()
				seq++
			}
			if nextTS {
				ts += 1024
			}
			p := pool.packet(rtp.Header{SequenceNumber: seq, Timestamp: ts, Marker: marker}, payload)
			seq++
			aus, _ := d.push(p)
			p.Release()
			if held := pool.recycle(); held > maxAACFragments {
				t.Fatalf("%d packets retained", held)
			}
			for _, a := range aus {
				if len(a) == 0 || len(a) > mpeg4audio.MaxAccessUnitSize {
					t.Fatalf("AU of %d bytes", len(a))
				}
			}
			if !pool.intact(aus) {
				t.Fatal("an AU refers to recycled packet memory")
			}
			if d.inFrag && (len(d.frag) > d.fragSize || d.fragSize > mpeg4audio.MaxAccessUnitSize) {
				t.Fatalf("reassembling %d of %d bytes", len(d.frag), d.fragSize)
			}
			if !d.inFrag && d.frag != nil {
				t.Fatalf("%d bytes kept outside a fragment", len(d.frag))
			}
		})
		d.release()
		if held := pool.recycle(); held != 0 {
			t.Fatalf("%d packets retained after release", held)
		}
	})
}
