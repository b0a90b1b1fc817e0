package rtsp

import (
	"bytes"
	"testing"

	"github.com/pion/rtp"

	"lectern/sfu"
)

var (
	testSPS = []byte{0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01}
	testPPS = []byte{0x68, 0xce, 0x3c, 0x80}
)

func nalu(typ byte, size int) []byte {
	b := make([]byte, size)
	b[0] = 0x60 | typ
	for i := 1; i < size; i++ {
		b[i] = byte(i)
	}
	return b
}

func stap(nalus ...[]byte) []byte {
	out := []byte{0x78}
	for _, n := range nalus {
		out = append(out, byte(len(n)>>8), byte(len(n)))
		out = append(out, n...)
	}
	return out
}

func fua(n []byte, start, end bool) []byte {
	h := n[0] & 0x1f
	if start {
		h |= 0x80
	}
	if end {
		h |= 0x40
	}
	return append([]byte{n[0]&0xe0 | naluFUA, h}, n[1:]...)
}

type inPkt struct {
	seq     uint16
	ts      uint32
	marker  bool
	payload []byte
}

type outPkt struct {
	seq     uint16
	ts      uint32
	marker  bool
	payload []byte
}

func runBridge(t *testing.T, sps, pps []byte, in []inPkt) []outPkt {
	t.Helper()
	var out []outPkt
	b := newH264Bridge(sps, pps, func(p *rtp.Packet) error {
		if len(p.Payload) > maxVideoPayload {
			t.Fatalf("payload of %d bytes", len(p.Payload))
		}
		out = append(out, outPkt{p.SequenceNumber, p.Timestamp, p.Marker, bytes.Clone(p.Payload)})
		return nil
	})
	for _, p := range in {
		if err := b.write(&rtp.Packet{Header: rtp.Header{SequenceNumber: p.seq, Timestamp: p.ts, Marker: p.marker}, Payload: p.payload}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// reassemble returns the NAL units a depacketizer would get from out.
func reassemble(out []outPkt) [][]byte {
	var nalus [][]byte
	var fu []byte
	for _, p := range out {
		switch p.payload[0] & 0x1f {
		case naluSTAPA:
			_ = sfu.WalkH264(p.payload, func(n sfu.H264NALU) bool { nalus = append(nalus, bytes.Clone(n.Data)); return true })
		case naluFUA:
			if p.payload[1]&0x80 != 0 {
				fu = []byte{p.payload[0]&0xe0 | p.payload[1]&0x1f}
			}
			fu = append(fu, p.payload[2:]...)
			if p.payload[1]&0x40 != 0 {
				nalus = append(nalus, fu)
				fu = nil
			}
		default:
			nalus = append(nalus, p.payload)
		}
	}
	return nalus
}

func TestH264Bridge(t *testing.T) {
	idr, big, slice := nalu(naluIDR, 300), nalu(1, 3000), nalu(1, 500)
	for _, tc := range []struct {
		name      string
		sps, pps  []byte
		in        []inPkt
		wantNALUs [][]byte // after reassembly
		wantSeqs  []uint16 // when checked
		check     func(t *testing.T, out []outPkt)
	}{
		{
			name:      "small packets pass unchanged",
			in:        []inPkt{{10, 0, true, slice}},
			wantNALUs: [][]byte{slice},
			wantSeqs:  []uint16{10},
		},
		{
			name:      "large NAL unit is fragmented",
			in:        []inPkt{{10, 0, true, big}},
			wantNALUs: [][]byte{big},
			wantSeqs:  []uint16{10, 11, 12},
			check: func(t *testing.T, out []outPkt) {
				for i, p := range out {
					if p.marker != (i == len(out)-1) {
						t.Fatalf("packet %d marker %v", i, p.marker)
					}
				}
			},
		},
		{
			name: "parameter sets from SDP inserted before an IDR",
			sps:  testSPS, pps: testPPS,
			in:        []inPkt{{5, 900, true, idr}},
			wantNALUs: [][]byte{testSPS, testPPS, idr},
			wantSeqs:  []uint16{5, 6},
			check: func(t *testing.T, out []outPkt) {
				if out[0].payload[0]&0x1f != naluSTAPA || out[0].marker || out[0].ts != 900 {
					t.Fatalf("inserted packet %+v", out[0])
				}
			},
		},
		{
			name: "no insertion when the access unit has them",
			sps:  testSPS, pps: testPPS,
			in:        []inPkt{{1, 900, false, testSPS}, {2, 900, false, testPPS}, {3, 900, true, idr}},
			wantNALUs: [][]byte{testSPS, testPPS, idr},
			wantSeqs:  []uint16{1, 2, 3},
		},
		{
			name: "no insertion when a STAP-A carries them",
			sps:  testSPS, pps: testPPS,
			in:        []inPkt{{1, 900, true, stap(testSPS, testPPS, idr)}},
			wantNALUs: [][]byte{testSPS, testPPS, idr},
			wantSeqs:  []uint16{1},
		},
		{
			name:      "nothing to insert without parameter sets",
			in:        []inPkt{{1, 900, true, idr}},
			wantNALUs: [][]byte{idr},
		},
		{
			name:      "in-band parameter sets are remembered",
			in:        []inPkt{{1, 0, false, stap(testSPS, testPPS)}, {2, 0, true, idr}, {3, 3000, true, slice}, {4, 6000, true, idr}},
			wantNALUs: [][]byte{testSPS, testPPS, idr, slice, testSPS, testPPS, idr},
		},
		{
			name: "IDR as FU-A gets parameter sets before its first fragment only",
			sps:  testSPS, pps: testPPS,
			in:       []inPkt{{1, 0, false, fua(nalu(naluIDR, 1000), true, false)}, {2, 0, true, fua(nalu(naluIDR, 1000), false, true)}},
			wantSeqs: []uint16{1, 2, 3},
			check: func(t *testing.T, out []outPkt) {
				if out[0].payload[0]&0x1f != naluSTAPA || out[1].payload[1]&0x80 == 0 || out[2].payload[1]&0x40 == 0 {
					t.Fatal("wrong order or flags")
				}
			},
		},
		{
			name:      "large FU-A fragments are cut, S and E kept at the ends",
			in:        []inPkt{{1, 0, false, fua(big[:1400], true, false)}, {2, 0, true, fua(append([]byte{big[0]}, big[1400:]...), false, true)}},
			wantNALUs: [][]byte{big},
			check: func(t *testing.T, out []outPkt) {
				for i, p := range out {
					s, e := p.payload[1]&0x80 != 0, p.payload[1]&0x40 != 0
					if s != (i == 0) || e != (i == len(out)-1) || p.marker != (i == len(out)-1) {
						t.Fatalf("fragment %d: S=%v E=%v M=%v", i, s, e, p.marker)
					}
				}
			},
		},
		{
			name:      "large STAP-A is split",
			in:        []inPkt{{1, 0, true, stap(nalu(1, 700), nalu(1, 700))}},
			wantNALUs: [][]byte{nalu(1, 700), nalu(1, 700)},
			wantSeqs:  []uint16{1, 2},
		},
		{
			name:     "gaps are kept, duplicates and late packets dropped",
			in:       []inPkt{{10, 0, true, slice}, {12, 1, true, slice}, {12, 1, true, slice}, {11, 1, true, slice}, {13, 2, true, big}},
			wantSeqs: []uint16{10, 12, 13, 14, 15},
		},
		{
			name:      "STAP-B, MTAP and malformed STAP-A are dropped",
			in:        []inPkt{{1, 0, true, []byte{0x79, 0, 0}}, {2, 0, true, []byte{0x7a, 1}}, {3, 0, true, []byte{0x78, 0, 9, 1}}, {4, 0, true, slice}},
			wantNALUs: [][]byte{slice},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := runBridge(t, tc.sps, tc.pps, tc.in)
			if tc.wantNALUs != nil {
				got := reassemble(out)
				if len(got) != len(tc.wantNALUs) {
					t.Fatalf("%d NAL units, want %d", len(got), len(tc.wantNALUs))
				}
				for i := range got {
					if !bytes.Equal(got[i], tc.wantNALUs[i]) {
						t.Fatalf("NAL unit %d differs: % x…", i, got[i][:min(8, len(got[i]))])
					}
				}
			}
			if tc.wantSeqs != nil {
				var seqs []uint16
				for _, p := range out {
					seqs = append(seqs, p.seq)
				}
				if len(seqs) != len(tc.wantSeqs) {
					t.Fatalf("sequence numbers %v, want %v", seqs, tc.wantSeqs)
				}
				for i := range seqs {
					if seqs[i] != tc.wantSeqs[i] {
						t.Fatalf("sequence numbers %v, want %v", seqs, tc.wantSeqs)
					}
				}
			}
			if tc.check != nil {
				tc.check(t, out)
			}
		})
	}
}

func BenchmarkH264Bridge(b *testing.B) {
	big := nalu(1, 1400)
	br := newH264Bridge(testSPS, testPPS, func(*rtp.Packet) error { return nil })
	pkt := &rtp.Packet{Payload: big}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		pkt.SequenceNumber = uint16(i)
		pkt.Timestamp = uint32(i * 3000)
		_ = br.write(pkt)
	}
}
