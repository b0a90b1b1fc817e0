package recorder

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"lectern/internal/clip"
	"lectern/sfu"
)

// pkt builds a retained sfu packet for reorderer tests.
func pkt(seq uint16, arrival int64) *sfu.Packet {
	p := new(sfu.Packet)
	p.Retain() // a fresh Packet has no reference; give it the one push takes over
	p.Header.SequenceNumber = seq
	p.ArrivalNanos = arrival
	return p
}

func TestReorderer(t *testing.T) {
	ms := int64(time.Millisecond)
	for _, tc := range []struct {
		name     string
		seqs     []uint16
		arrivals []int64 // ms; default i
		want     []uint16
		lost     int
	}{
		{"in order", []uint16{1, 2, 3}, nil, []uint16{1, 2, 3}, 0},
		{"swapped", []uint16{1, 3, 2, 4}, nil, []uint16{1, 2, 3, 4}, 0},
		{"duplicate", []uint16{1, 2, 2, 3}, nil, []uint16{1, 2, 3}, 0},
		{"late duplicate", []uint16{1, 2, 3, 1}, nil, []uint16{1, 2, 3}, 0},
		{"wrap", []uint16{65534, 65535, 1, 0, 2}, nil, []uint16{65534, 65535, 0, 1, 2}, 0},
		{"loss given up after the wait", []uint16{1, 3, 4, 5}, []int64{0, 10, 20, 600}, []uint16{1, 3, 4, 5}, 1},
		{"jump ahead", []uint16{1, 2, 1000}, nil, []uint16{1, 2, 1000}, 997},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := reorderer{maxWait: 500 * ms}
			var got []uint16
			lost := 0
			for i, s := range tc.seqs {
				at := int64(i)
				if tc.arrivals != nil {
					at = tc.arrivals[i]
				}
				ready, l := r.push(pkt(s, at*ms))
				lost += l
				for _, p := range ready {
					got = append(got, p.Header.SequenceNumber)
				}
			}
			ready, l := r.drain()
			lost += l
			for _, p := range ready {
				got = append(got, p.Header.SequenceNumber)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || lost != tc.lost {
				t.Fatalf("got %v lost %d, want %v lost %d", got, lost, tc.want, tc.lost)
			}
		})
	}
}

// testPacket returns an sfu packet holding payload, with one reference: the
// caller's, as the track reader holds one while it hands a packet on.
func testPacket(hdr rtp.Header, payload []byte) *sfu.Packet {
	p := new(sfu.Packet)
	p.Retain()
	p.Header, p.Payload = hdr, payload
	return p
}

// pushH264 hands p to d as the track reader does (holding a reference meanwhile),
// at ticks ten times its timestamp.
func pushH264(d *h264Depacketizer, p rtp.Packet) ([]videoAU, error) {
	sp := testPacket(p.Header, p.Payload)
	defer sp.Release()
	return d.push(sp, int64(p.Timestamp)*10)
}

// h264Packets packetizes an access unit at timestamp ts, with sequence numbers
// from *seq on.
func h264Packets(nalus [][]byte, ts uint32, seq *uint16) []rtp.Packet {
	ps := clip.AccessUnit{NALUs: nalus}.Packetize(1200)
	for i := range ps {
		ps[i].Timestamp = ts
		ps[i].SequenceNumber = *seq
		*seq++
	}
	return ps
}

func TestH264Depacketizer(t *testing.T) {
	key := clip.SyntheticKeyframe(3000)
	delta := clip.SyntheticDelta(500)
	bigDelta := clip.SyntheticDelta(3000) // in FU-A fragments only
	type step struct {
		nalus  [][]byte
		edit   func([]rtp.Packet) []rtp.Packet
		lost   bool // signal a loss before these packets
		errors bool // a malformed packet is reported
	}
	for _, tc := range []struct {
		name  string
		steps []step
		want  []string // keyframe flag and time of the access units out
	}{
		{"keyframe then delta", []step{{nalus: key}, {nalus: delta}}, []string{"key@0", "delta@30000"}},
		{"delta first is dropped", []step{{nalus: delta}, {nalus: key}}, []string{"key@30000"}},
		{"loss drops until keyframe", []step{{nalus: key}, {nalus: delta, lost: true}, {nalus: delta}, {nalus: key}},
			[]string{"key@0", "key@90000"}},
		{"missing marker ends at next timestamp", []step{{nalus: key, edit: withoutMarker}, {nalus: delta}},
			[]string{"key@0", "delta@30000"}},
		{"missing marker, next access unit fragmented", []step{{nalus: key, edit: withoutMarker}, {nalus: bigDelta}, {nalus: delta}},
			[]string{"key@0", "delta@30000", "delta@60000"}},
		{"no markers at all", []step{{nalus: key, edit: withoutMarker}, {nalus: bigDelta, edit: withoutMarker}, {nalus: delta, edit: withoutMarker}, {nalus: key}},
			[]string{"key@0", "delta@30000", "delta@60000", "key@90000"}},
		{"missing fragment start", []step{{nalus: key}, {nalus: key, edit: func(ps []rtp.Packet) []rtp.Packet { return skip(ps, 1) }, errors: true}, {nalus: delta}},
			[]string{"key@0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d h264Depacketizer
			defer d.release()
			var got []string
			seq := uint16(65000)
			for i, s := range tc.steps {
				if s.lost {
					d.lost()
					seq += 3
				}
				ps := h264Packets(s.nalus, uint32(i*3000), &seq)
				if s.edit != nil {
					ps = s.edit(ps)
				}
				errs := 0
				for _, p := range ps {
					aus, err := pushH264(&d, p)
					if err != nil {
						if !errors.Is(err, errBadPayload) {
							t.Fatalf("error %v does not wrap errBadPayload", err)
						}
						errs++
					}
					for _, au := range aus {
						kind := "delta"
						if au.key {
							kind = "key"
						}
						got = append(got, fmt.Sprintf("%s@%d", kind, au.ticks))
					}
				}
				if (errs > 0) != s.errors {
					t.Fatalf("step %d: %d errors", i, errs)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func skip(ps []rtp.Packet, i int) []rtp.Packet { return append(ps[:i:i], ps[i+1:]...) }

func withoutMarker(ps []rtp.Packet) []rtp.Packet {
	ps[len(ps)-1].Marker = false
	return ps
}

func TestH264DepacketizerReassembles(t *testing.T) {
	key := clip.SyntheticKeyframe(5000)
	var d h264Depacketizer
	defer d.release()
	seq := uint16(1)
	wantNALUs(t, pushAllH264(t, &d, h264Packets(key, 0, &seq)), key)
	for i, bad := range [][]byte{{}, {28}, {24, 0, 9, 1}, {25, 1, 2}} {
		hdr := rtp.Header{Timestamp: uint32(i+1) * 3000, Marker: true} // the rest of a damaged access unit is dropped silently
		if _, err := pushH264(&d, rtp.Packet{Header: hdr, Payload: bad}); !errors.Is(err, errBadPayload) {
			t.Errorf("payload %v: error %v", bad, err)
		}
	}
}

// pushAllH264 pushes pkts into d and returns (copies of) the NAL units of the
// access units it completed.
func pushAllH264(t *testing.T, d *h264Depacketizer, pkts []rtp.Packet) [][]byte {
	t.Helper()
	var out [][]byte
	for _, p := range pkts {
		aus, err := pushH264(d, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, au := range aus {
			for _, n := range au.nalus {
				out = append(out, bytes.Clone(n))
			}
		}
	}
	return out
}

// wantNALUs fails the test unless got holds the NAL units of want.
func wantNALUs(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d NAL units, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("NAL unit %d: % x, want % x", i, got[i][:min(8, len(got[i]))], want[i][:min(8, len(want[i]))])
		}
	}
}

// TestH264DepacketizerCameraQuirks: what cameras send beside RFC 6184 (the
// decoder's knowledge) is recorded as plain NAL units: Annex-B start codes inside
// a payload, an FU-A with both its start and end bits, and unspecified NAL unit
// types (which a sample does not carry).
func TestH264DepacketizerCameraQuirks(t *testing.T) {
	key := clip.SyntheticKeyframe(600) // SPS, PPS, IDR
	annexB := func(nalus ...[]byte) []byte {
		var b []byte
		for _, n := range nalus {
			b = append(append(b, 0, 0, 0, 1), n...)
		}
		return b
	}
	idr := key[len(key)-1]
	oneFragment := append([]byte{idr[0]&0xe0 | 28, 0xc0 | idr[0]&0x1f}, idr[1:]...)
	for _, tc := range []struct {
		name     string
		payloads [][]byte
	}{
		{"Annex-B in one payload", [][]byte{annexB(key...)}},
		{"Annex-B in each payload", [][]byte{annexB(key[0]), annexB(key[1]), annexB(idr)}},
		{"FU-A with start and end", [][]byte{key[0], key[1], oneFragment}},
		{"unspecified NAL unit types", [][]byte{key[0], {30, 1, 2}, key[1], {0, 9}, idr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d h264Depacketizer
			defer d.release()
			var pkts []rtp.Packet
			for i, payload := range tc.payloads {
				pkts = append(pkts, rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i), Timestamp: 3000,
					Marker: i == len(tc.payloads)-1}, Payload: payload})
			}
			wantNALUs(t, pushAllH264(t, &d, pkts), key)
		})
	}
}

func TestTimeline(t *testing.T) {
	sec := int64(time.Second)
	for _, tc := range []struct {
		name   string
		ts     []uint32
		at     []int64 // arrival, in ms
		want   []int64 // ticks at 1 kHz
		jumped int
	}{
		{"starts at the arrival time", []uint32{500, 600}, []int64{2000, 2100}, []int64{2000, 2100}, 0},
		{"wraps", []uint32{4294967000, 200}, []int64{0, 500}, []int64{0, 496}, 0},
		{"jump forward absorbed", []uint32{0, 100, 9000000}, []int64{0, 100, 200}, []int64{0, 100, 200}, 1},
		{"jump back absorbed", []uint32{5000000, 5000100, 100}, []int64{0, 100, 200}, []int64{0, 100, 200}, 1},
		{"small step back kept", []uint32{1000, 900, 1100}, []int64{0, 10, 20}, []int64{0, -100, 100}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTimeline(1000, 0)
			var got []int64
			jumps := 0
			for i, ts := range tc.ts {
				v, j := tl.ticks(ts, tc.at[i]*sec/1000)
				got = append(got, v)
				if j {
					jumps++
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || jumps != tc.jumped {
				t.Fatalf("got %v (%d jumps), want %v (%d)", got, jumps, tc.want, tc.jumped)
			}
		})
	}
}

func TestPlaylist(t *testing.T) {
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	info := &RenditionInfo{Timescale: 90000, SegmentList: []segmentRecord{
		{N: 1, Start: 0, Duration: 360000}, {N: 2, Start: 360000, Duration: 450000}, {N: 4, Start: 1170000, Duration: 360000, Discontinuity: true}}}
	live, done := string(playlist(start, info, false)), string(playlist(start, info, true))
	for _, want := range []string{"#EXT-X-TARGETDURATION:5\n", "#EXT-X-MAP:URI=\"init.mp4\"\n", "#EXT-X-PLAYLIST-TYPE:EVENT\n",
		"#EXT-X-PROGRAM-DATE-TIME:2026-03-01T08:00:04.000Z\n#EXTINF:5.000,\nseg-000002.m4s\n", "#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-03-01T08:00:13.000Z\n"} {
		if !strings.Contains(live, want) {
			t.Errorf("live playlist lacks %q:\n%s", want, live)
		}
	}
	if strings.Contains(live, "ENDLIST") || !strings.HasSuffix(done, "#EXT-X-ENDLIST\n") || !strings.Contains(done, "PLAYLIST-TYPE:VOD") {
		t.Errorf("VOD playlist:\n%s", done)
	}
}

func TestIndexList(t *testing.T) {
	ix := newIndex(nil)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 250 {
		sess := []string{"aaaaaaaaaa", "bbbbbbbbbb"}[i%2]
		ix.putQuiet(Meta{ID: fmt.Sprintf("%s-rec-%03d", sess, i), Session: sess, StartedAt: base.Add(time.Duration(i) * time.Hour)})
	}
	for _, tc := range []struct {
		name  string
		q     Query
		count int
		first string
	}{
		{"all, newest first", Query{Limit: 1000}, 250, "bbbbbbbbbb-rec-249"},
		{"one session", Query{Session: "bbbbbbbbbb", Limit: 1000}, 125, "bbbbbbbbbb-rec-249"},
		{"date range", Query{From: base.Add(10 * time.Hour), To: base.Add(20 * time.Hour), Limit: 1000}, 10, "bbbbbbbbbb-rec-019"},
		{"allowed sessions", Query{Allow: func(s string) bool { return s == "aaaaaaaaaa" }, Limit: 1000}, 125, "aaaaaaaaaa-rec-248"},
		{"default page", Query{}, DefaultPageSize, "bbbbbbbbbb-rec-249"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ix.list(tc.q)
			if err != nil || len(p.Recordings) != tc.count || p.Recordings[0].ID != tc.first {
				t.Fatalf("%d recordings, first %v, err %v", len(p.Recordings), p.Recordings[0].ID, err)
			}
		})
	}
	// Paging visits every recording once, in order, even when one is removed meanwhile.
	seen := map[string]bool{}
	q := Query{Limit: 7}
	for pages := 0; ; pages++ {
		p, err := ix.list(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Recordings {
			if seen[m.ID] {
				t.Fatalf("%s listed twice", m.ID)
			}
			seen[m.ID] = true
		}
		if pages == 3 {
			ix.mu.Lock()
			delete(ix.byID, p.Recordings[len(p.Recordings)-1].ID) // the cursor's own recording
			ix.sorted = nil
			ix.mu.Unlock()
		}
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	if len(seen) != 250 {
		t.Fatalf("paging saw %d recordings", len(seen))
	}
	if _, err := ix.list(Query{Cursor: "%%%"}); err == nil {
		t.Fatal("bad cursor accepted")
	}
}

func TestParsePlaylistRoundTrip(t *testing.T) {
	start := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	info := &RenditionInfo{Timescale: 90000, SegmentList: []segmentRecord{
		{N: 1, Start: 0, Duration: 360000, Size: 10}, {N: 2, Start: 360000, Duration: 450000, Size: 20},
		{N: 4, Start: 1170000, Duration: 361800, Size: 40, Discontinuity: true}}}
	got := parsePlaylist(string(playlist(start, info, false)), start, 90000, func(name string) int64 {
		return map[string]int64{"seg-000001.m4s": 10, "seg-000002.m4s": 20, "seg-000004.m4s": 40}[name]
	})
	if fmt.Sprint(got) != fmt.Sprint(info.SegmentList) {
		t.Fatalf("got %v, want %v", got, info.SegmentList)
	}
}
