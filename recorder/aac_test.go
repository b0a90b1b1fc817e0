package recorder

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/pion/rtp"

	"lectern/sfu"
)

// hbrCodec is what the RTSP edge declares for ffmpeg's 48 kHz stereo AAC-LC.
var hbrCodec = sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: 48000, Channels: 2,
	Fmtp: "profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190"}

// hbrPayload builds an AAC-hbr payload: one 16-bit AU header (13-bit size, 3-bit
// index 0) per entry of sizes, then data.
func hbrPayload(sizes []int, data ...[]byte) []byte {
	p := binary.BigEndian.AppendUint16(nil, uint16(16*len(sizes)))
	for _, n := range sizes {
		p = binary.BigEndian.AppendUint16(p, uint16(n<<3))
	}
	for _, d := range data {
		p = append(p, d...)
	}
	return p
}

// au returns an access unit of n bytes filled with b.
func au(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func TestParseAACFormat(t *testing.T) {
	for _, tc := range []struct {
		name    string
		codec   sfu.Codec
		wantDur int64 // 0: refused
	}{
		{"AAC-hbr 48 kHz", hbrCodec, 1024},
		{"AAC-lbr 44.1 kHz", sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: 44100,
			Fmtp: "mode=AAC-lbr; config=1210; SizeLength=6; IndexLength=2; IndexDeltaLength=2"}, 1024},
		{"960-sample frames", sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: 48000, Fmtp: "mode=AAC-hbr;sizelength=13;config=1194"}, 960},
		{"HE-AAC clocked at the output rate", sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: 48000, Fmtp: "mode=AAC-hbr;sizelength=13;config=2B118800"}, 2048},
		{"no config", sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: 48000, Fmtp: "mode=AAC-hbr;sizelength=13"}, 0},
		{"bad config", sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: 48000, Fmtp: "mode=AAC-hbr;sizelength=13;config=zz"}, 0},
		{"no sizelength", sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: 48000, Fmtp: "config=1190"}, 0},
		{"absurd sizelength", sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: 48000, Fmtp: "config=1190;sizelength=99"}, 0},
		{"no clock rate", sfu.Codec{MimeType: sfu.MimeAAC, Fmtp: "config=1190;sizelength=13"}, 0},
		{"generic-mode fields left out", sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: 48000, Fmtp: "config=1190;sizelength=13;ctsdeltalength=0;randomaccessindication=0"}, 1024},
		{"CTS deltas", sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: 48000, Fmtp: "config=1190;sizelength=13;ctsdeltalength=8"}, 0},
		{"random access indication", sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: 48000, Fmtp: "config=1190;sizelength=13;randomaccessindication=1"}, 0},
		{"auxiliary section", sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: 48000, Fmtp: "config=1190;sizelength=13;auxiliarydatasizelength=8"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseAACFormat(tc.codec)
			if tc.wantDur == 0 {
				if !errors.Is(err, ErrUnsupportedCodec) {
					t.Fatalf("got %+v, %v; want ErrUnsupportedCodec", f, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.auDuration != tc.wantDur {
				t.Fatalf("AU duration %d ticks, want %d", f.auDuration, tc.wantDur)
			}
			if err := recordable(tc.codec); err != nil {
				t.Fatalf("recordable: %v", err)
			}
		})
	}
}

func TestAACDepacketizer(t *testing.T) {
	big := au(3000, 7) // more than one packet holds
	adts, err := mpeg4audio.ADTSPackets{{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 2, AU: au(100, 5)}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	type pkt struct {
		payload []byte
		ts      uint32
		marker  bool
		lost    bool // signal a loss before this packet
	}
	for _, tc := range []struct {
		name   string
		fmtp   string // default: AAC-hbr
		pkts   []pkt
		want   [][]byte
		errors int
	}{
		{name: "single AU", pkts: []pkt{{hbrPayload([]int{300}, au(300, 1)), 0, true, false}},
			want: [][]byte{au(300, 1)}},
		{name: "several AUs", pkts: []pkt{{hbrPayload([]int{200, 10, 350}, au(200, 1), au(10, 2), au(350, 3)), 0, true, false}},
			want: [][]byte{au(200, 1), au(10, 2), au(350, 3)}},
		{name: "fragmented AU", pkts: []pkt{
			{hbrPayload([]int{3000}, big[:1400]), 1024, false, false},
			{hbrPayload([]int{3000}, big[1400:2800]), 1024, false, false},
			{hbrPayload([]int{3000}, big[2800:]), 1024, true, false},
			{hbrPayload([]int{5}, au(5, 9)), 2048, true, false},
		}, want: [][]byte{big, au(5, 9)}},
		{name: "fragments sized as gortsplib v4 sends them", pkts: []pkt{
			{hbrPayload([]int{1400}, big[:1400]), 1024, false, false},
			{hbrPayload([]int{1400}, big[1400:2800]), 1024, false, false},
			{hbrPayload([]int{200}, big[2800:]), 1024, true, false},
			{hbrPayload([]int{5}, au(5, 9)), 2048, true, false},
		}, want: [][]byte{big, au(5, 9)}},
		{name: "fragments of gortsplib v4 with a new timestamp", pkts: []pkt{
			{hbrPayload([]int{1400}, big[:1400]), 0, false, false},
			{hbrPayload([]int{5}, au(5, 9)), 1024, true, false},
		}, want: [][]byte{au(5, 9)}, errors: 1},
		{name: "ADTS-wrapped AUs", pkts: []pkt{{hbrPayload([]int{len(adts)}, adts), 0, true, false}},
			want: [][]byte{au(100, 5)}},
		{name: "lost fragment drops the AU", pkts: []pkt{
			{hbrPayload([]int{3000}, big[:1400]), 0, false, false},
			{hbrPayload([]int{3000}, big[2800:]), 0, true, true},
			{hbrPayload([]int{5}, au(5, 9)), 1024, true, false},
		}, want: [][]byte{au(5, 9)}, errors: 1},
		{name: "unfinished fragment before a new timestamp", pkts: []pkt{
			{hbrPayload([]int{3000}, big[:1400]), 0, false, false},
			{hbrPayload([]int{5}, au(5, 9)), 1024, true, false},
		}, want: [][]byte{au(5, 9)}, errors: 1},
		{name: "fragment of another size", pkts: []pkt{
			{hbrPayload([]int{3000}, big[:1400]), 0, false, false},
			{hbrPayload([]int{2999}, big[1400:2800]), 0, false, false},
		}, errors: 1},
		{name: "last fragment short", pkts: []pkt{
			{hbrPayload([]int{3000}, big[:1400]), 0, false, false},
			{hbrPayload([]int{3000}, big[1400:2800]), 0, true, false},
		}, errors: 1},
		{name: "AAC-lbr", fmtp: "mode=AAC-lbr;config=1190;sizelength=6;indexlength=2;indexdeltalength=2",
			pkts: []pkt{{append([]byte{0, 16, 10 << 2, 20 << 2}, append(au(10, 1), au(20, 2)...)...), 0, true, false}},
			want: [][]byte{au(10, 1), au(20, 2)}},
		{name: "empty payload", pkts: []pkt{{nil, 0, true, false}}, errors: 1},
		{name: "no AU headers", pkts: []pkt{{[]byte{0, 0, 1, 2}, 0, true, false}}, errors: 1},
		{name: "headers beyond the payload", pkts: []pkt{{[]byte{0xff, 0xf0, 0, 8}, 0, true, false}}, errors: 1},
		{name: "truncated AU header", pkts: []pkt{{[]byte{0, 10, 0x00, 0x40, 1, 2}, 0, true, false}}, errors: 1},
		{name: "AU of zero bytes", pkts: []pkt{{hbrPayload([]int{0}), 0, true, false}}, errors: 1},
		{name: "AU larger than the data", pkts: []pkt{{hbrPayload([]int{10, 400}, au(10, 1), au(20, 2)), 0, true, false}},
			errors: 1},
		{name: "whole AU announced larger than the packet", pkts: []pkt{{hbrPayload([]int{400}, au(20, 2)), 0, true, false}}, errors: 1},
		{name: "interleaved AUs", pkts: []pkt{{[]byte{0, 16, 0x00, 0x51, 1, 2}, 0, true, false}}, errors: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := hbrCodec
			if tc.fmtp != "" {
				c.Fmtp = tc.fmtp
			}
			f, err := parseAACFormat(c)
			if err != nil {
				t.Fatal(err)
			}
			d := newAACDepacketizer(f)
			defer d.release()
			var pool recycler
			var got [][]byte
			errs := 0
			for i, p := range tc.pkts {
				if p.lost {
					d.lost()
				}
				sp := pool.packet(rtp.Header{SequenceNumber: uint16(i), Timestamp: p.ts, Marker: p.marker}, p.payload)
				aus, err := d.push(sp)
				sp.Release()
				pool.recycle()
				aus = slices.Clone(aus)
				for i := range aus {
					aus[i] = bytes.Clone(aus[i])
				}
				if err != nil {
					if !errors.Is(err, errBadAAC) {
						t.Fatalf("error %v does not wrap errBadAAC", err)
					}
					errs++
				}
				got = append(got, aus...)
			}
			if errs != tc.errors {
				t.Errorf("%d errors, want %d", errs, tc.errors)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %d AUs %v, want %d", len(got), sizesOf(got), len(tc.want))
			}
		})
	}
}

func sizesOf(aus [][]byte) []int {
	var out []int
	for _, a := range aus {
		out = append(out, len(a))
	}
	return out
}

// TestAACReaderCountsErrors: the track reader counts malformed AAC payloads and
// spaces the AUs of one packet by the AU duration.
func TestAACReaderCountsErrors(t *testing.T) {
	f, err := parseAACFormat(hbrCodec)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan *auBatch, 8)
	r := &trackReader{rt: &recTrack{}, out: out, aac: newAACDepacketizer(f), stats: newMetrics()}
	ctx := context.Background()
	for _, payload := range [][]byte{{}, {0, 16, 0xff}, hbrPayload([]int{4, 6}, au(4, 1), au(6, 2))} {
		p := &sfu.Packet{Header: rtp.Header{Timestamp: 90, Marker: true}, Payload: payload}
		if !r.packetAAC(ctx, p, 5000) {
			t.Fatal("reader stopped")
		}
	}
	if n := r.stats.decodeErrors.Load(); n != 2 {
		t.Fatalf("%d decode errors counted, want 2", n)
	}
	if !r.flush(ctx) {
		t.Fatal("reader stopped")
	}
	close(out)
	var ticks []int64
	for b := range out {
		for _, a := range b.aus {
			ticks = append(ticks, a.ticks)
			if a.dur != 1024 {
				t.Fatalf("AU duration %d", a.dur)
			}
		}
	}
	if fmt.Sprint(ticks) != "[5000 6024]" {
		t.Fatalf("AU times %v", ticks)
	}
}

// FuzzAACDepacketizer: no payload makes the depacketizer panic or return an AU
// larger than AAC allows.
func FuzzAACDepacketizer(f *testing.F) {
	f.Add(hbrPayload([]int{300}, au(300, 1)), true)
	f.Add(hbrPayload([]int{3000}, au(1400, 1)), false)
	f.Add(hbrPayload([]int{1400}, au(1400, 1)), false)
	f.Add([]byte{0, 42, 0x00, 0x10, 0x00, 0x0c, 0x40, 0x00, 16, 0xaa, 0xbb, 1, 1, 2, 2, 2}, true)
	format, err := parseAACFormat(hbrCodec)
	if err != nil {
		f.Fatal(err)
	}
	d := newAACDepacketizer(format)
	seq := uint16(0)
	f.Fuzz(func(t *testing.T, payload []byte, marker bool) {
		seq++
		p := testPacket(rtp.Header{SequenceNumber: seq, Marker: marker}, payload)
		aus, _ := d.push(p)
		p.Release()
		for _, a := range aus {
			if len(a) == 0 || len(a) > mpeg4audio.MaxAccessUnitSize {
				t.Fatalf("AU of %d bytes", len(a))
			}
		}
	})
}

// captureSink keeps what a rendition produces.
type captureSink struct {
	init []byte
	segs []segment
}

func (c *captureSink) initReady(_ *rendition, data []byte) error { c.init = data; return nil }

func (c *captureSink) segmentReady(_ *rendition, s segment) error {
	c.segs = append(c.segs, s)
	return nil
}

// TestAACRenditionGap: AAC access units are muxed as MPEG-4 Audio samples, and a
// gap in the audio (lost packets, a pause) stretches the sample before it, so the
// timeline stays in sync without a fake frame.
func TestAACRenditionGap(t *testing.T) {
	f, err := parseAACFormat(hbrCodec)
	if err != nil {
		t.Fatal(err)
	}
	sink := &captureSink{}
	mt := &muxTrack{name: "trainer/audio", id: 3, rate: 48000, channels: 2, codec: &mp4.CodecMPEG4Audio{Config: f.config}}
	r := &rendition{name: MainRendition, primary: mt, tracks: []*muxTrack{mt}, target: 1 << 40, sink: sink}
	for _, pts := range []int64{0, 1024, 2048, 12288, 13312} {
		if err := r.write(mt, accessUnit{ticks: pts, audio: au(10, byte(pts)), dur: f.auDuration}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.finish(); err != nil {
		t.Fatal(err)
	}
	if len(sink.init) == 0 || len(sink.segs) != 1 || len(r.gaps) != 0 { // 0.19 s: too short to report
		t.Fatalf("init %d bytes, %d segments, gaps %v", len(sink.init), len(sink.segs), r.gaps)
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(sink.init)); err != nil {
		t.Fatal(err)
	}
	if c, ok := init.Tracks[0].Codec.(*mp4.CodecMPEG4Audio); !ok || c.Config.SampleRate != 48000 || c.Config.ChannelCount != 2 {
		t.Fatalf("init track %+v", init.Tracks[0])
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(sink.segs[0].Data); err != nil {
		t.Fatal(err)
	}
	var durs []uint32
	for _, s := range parts[0].Tracks[0].Samples {
		durs = append(durs, s.Duration)
	}
	if fmt.Sprint(durs) != "[1024 1024 10240 1024 1024]" || sink.segs[0].Duration != 14336 {
		t.Fatalf("sample durations %v, segment of %d ticks", durs, sink.segs[0].Duration)
	}
}

func TestRecordable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codec sfu.Codec
		ok    bool
	}{
		{"H.264", h264Codec, true},
		{"Opus", opusCodec, true},
		{"AAC", hbrCodec, true},
		{"AAC without its config", sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: 48000, Fmtp: "mode=AAC-hbr;sizelength=13"}, false},
		{"PCMU", sfu.Codec{MimeType: sfu.MimePCMU, ClockRate: 8000, Channels: 1}, false},
		{"PCMA", sfu.Codec{MimeType: sfu.MimePCMA, ClockRate: 8000, Channels: 1}, false},
		{"VP8", sfu.Codec{MimeType: "video/VP8", ClockRate: 90000}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := recordable(tc.codec)
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrUnsupportedCodec) {
				t.Fatalf("recordable: %v", err)
			}
		})
	}
}
