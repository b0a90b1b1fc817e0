package sfu

import (
	"bytes"
	"errors"
	"testing"

	mch264 "github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

func TestWalkH264(t *testing.T) {
	type unit struct {
		typ                  mch264.NALUType
		data                 []byte
		fragment, start, end bool
	}
	whole := func(typ mch264.NALUType, data ...byte) unit {
		return unit{typ: typ, data: data, start: true, end: true}
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		want    []unit
		err     error
	}{
		{"empty", nil, nil, ErrH264Payload},
		{"single p slice", []byte{0x41, 0x9a, 1}, []unit{whole(mch264.NALUTypeNonIDR, 0x41, 0x9a, 1)}, nil},
		{"single idr", []byte{0x65, 0x88}, []unit{whole(mch264.NALUTypeIDR, 0x65, 0x88)}, nil},
		{"stap-a sps pps", []byte{0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce},
			[]unit{whole(mch264.NALUTypeSPS, 0x67, 0x42), whole(mch264.NALUTypePPS, 0x68, 0xce)}, nil},
		{"stap-a truncated after a unit", []byte{0x78, 0, 2, 0x67, 0x42, 0, 9, 0x68},
			[]unit{whole(mch264.NALUTypeSPS, 0x67, 0x42)}, ErrH264Payload},
		{"stap-a zero size", []byte{0x78, 0, 0, 0x67}, nil, ErrH264Payload},
		{"stap-a trailing byte", []byte{0x78, 0, 1, 0x06, 0}, []unit{whole(mch264.NALUTypeSEI, 0x06)}, ErrH264Payload},
		{"stap-a empty", []byte{0x78}, nil, ErrH264Payload},
		{"fu-a idr start", []byte{0x7c, 0x85, 1, 2}, []unit{{typ: mch264.NALUTypeIDR, data: []byte{1, 2}, fragment: true, start: true}}, nil},
		{"fu-a middle", []byte{0x7c, 0x05, 3}, []unit{{typ: mch264.NALUTypeIDR, data: []byte{3}, fragment: true}}, nil},
		{"fu-a end", []byte{0x5c, 0x41, 4}, []unit{{typ: mch264.NALUTypeNonIDR, data: []byte{4}, fragment: true, end: true}}, nil},
		{"fu-a without data", []byte{0x7c, 0x85}, nil, ErrH264Payload},
		{"stap-b", []byte{0x79, 0, 0}, nil, ErrH264Packetization},
		{"mtap16", []byte{0x7a, 0, 0}, nil, ErrH264Packetization},
		{"fu-b", []byte{0x7d, 0x85, 0, 0, 1}, nil, ErrH264Packetization},
		{"type 0", []byte{0x00, 1}, nil, ErrH264Packetization},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []unit
			err := WalkH264(tc.payload, func(n H264NALU) bool {
				got = append(got, unit{n.Type, n.Data, n.Fragment, n.Start, n.End})
				return true
			})
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("units %+v, want %+v", got, tc.want)
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if g.typ != w.typ || !bytes.Equal(g.data, w.data) || g.fragment != w.fragment || g.start != w.start || g.end != w.end {
					t.Fatalf("unit %d: %+v, want %+v", i, g, w)
				}
			}
		})
	}
	t.Run("stops when told", func(t *testing.T) {
		n := 0
		err := WalkH264([]byte{0x78, 0, 1, 0x06, 0, 1, 0x09, 0, 1, 0x0c}, func(H264NALU) bool { n++; return false })
		if err != nil || n != 1 {
			t.Fatalf("%d calls, err %v; want 1 call, no error", n, err)
		}
	})
}

// The track runs H264IsKeyframe on every video packet: it must not allocate.
func TestH264IsKeyframeDoesNotAllocate(t *testing.T) {
	payloads := [][]byte{spsPPS, idrStart, pFrame, {0x78, 0, 1, 0x06, 0, 2, 0x65, 0x88}}
	allocs := testing.AllocsPerRun(100, func() {
		for _, p := range payloads {
			H264IsKeyframe(p)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
	if !H264IsKeyframe(payloads[3]) {
		t.Fatal("IDR in the second unit of a STAP-A not seen")
	}
}

func TestH264ParameterSets(t *testing.T) {
	sps := []byte{0x67, 0x42, 0xe0, 0x1f, 0xda}
	pps := []byte{0x68, 0xce, 0x3c, 0x80}
	stap := append(append(append([]byte{0x78, 0, byte(len(sps))}, sps...), 0, byte(len(pps))), pps...)
	for _, tc := range []struct {
		name             string
		payload          []byte
		wantSPS, wantPPS []byte
	}{
		{"stap-a", stap, sps, pps},
		{"single sps", sps, sps, nil},
		{"single pps", pps, nil, pps},
		{"short sps ignored", []byte{0x67, 0x42}, nil, nil},
		{"fu-a of an sps is not whole", []byte{0x7c, 0x87, 0x42, 0xe0, 0x1f}, nil, nil},
		{"p slice", pFrame, nil, nil},
		{"empty", nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gotSPS, gotPPS := H264ParameterSets(tc.payload)
			if !bytes.Equal(gotSPS, tc.wantSPS) || !bytes.Equal(gotPPS, tc.wantPPS) {
				t.Fatalf("got %x / %x, want %x / %x", gotSPS, gotPPS, tc.wantSPS, tc.wantPPS)
			}
		})
	}
}

func TestFmtpParam(t *testing.T) {
	const browser = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
	const aac = "streamtype=5; profile-level-id=1; mode=AAC-hbr; sizelength=13; indexlength=3; indexdeltalength=3; config=1190"
	for _, tc := range []struct {
		fmtp, key, want string
	}{
		{browser, "packetization-mode", "1"},
		{browser, "profile-level-id", "42e01f"},
		{browser, "level-asymmetry-allowed", "1"},
		{browser, "sprop-parameter-sets", ""},
		{aac, "mode", "AAC-hbr"},
		{aac, "config", "1190"},
		{aac, "SizeLength", "13"},
		{"PACKETIZATION-MODE=0", "packetization-mode", "0"},
		{"sprop-parameter-sets=Z0LAH9oBQBbsBEAAAAMAQAAADyPGDKg=,aM48gA==", "sprop-parameter-sets", "Z0LAH9oBQBbsBEAAAAMAQAAADyPGDKg=,aM48gA=="},
		{" a = 1 ;; b=2;", "b", "2"},
		{"flag;a=1", "flag", ""},
		{"", "a", ""},
		{"ab=1", "a", ""},
	} {
		if got := FmtpParam(tc.fmtp, tc.key); got != tc.want {
			t.Errorf("FmtpParam(%q, %q) = %q, want %q", tc.fmtp, tc.key, got, tc.want)
		}
	}
	if got := (Codec{MimeType: MimeH264, Fmtp: browser}).FmtpParam("profile-level-id"); got != "42e01f" {
		t.Errorf("Codec.FmtpParam = %q", got)
	}
}

// queued drains q and returns the payloads' first bytes and whether a switch was marked.
func queued(q *Queue) (firsts []byte, switched bool) {
	for {
		item, ok := q.TryNext()
		if !ok {
			return firsts, switched
		}
		firsts = append(firsts, item.Packet.Payload[0])
		switched = switched || item.Resync == ResyncSwitch
		item.Packet.Release()
	}
}

func TestFollower(t *testing.T) {
	s := newTestSession(t, RegistryConfig{})
	q := NewQueue(QueueOptions{Kind: KindVideo})
	refused := 0
	f := NewFollower("trainer/video", q, func(t *Track) bool {
		if t.Codec().MimeType != MimeH264 {
			refused++
			return false
		}
		return true
	})
	stop := Follow(s, f)

	l1, _ := s.Claim(TrainerPublication, nil)
	l1.Track("audio", KindAudio, opus, nil) // another name: not followed
	tr1, _ := l1.Track("video", KindVideo, h264, nil)
	if f.Track() != tr1 {
		t.Fatal("the named track was not followed")
	}
	writeVideo(t, tr1, 1, 10, 1000, spsPPS, true)
	if got, switched := queued(q); len(got) != 1 || !switched {
		t.Fatalf("first track: %d packets, switch marked %v", len(got), switched)
	}
	writeVideo(t, tr1, 1, 11, 4000, pFrame, true)
	if got, switched := queued(q); len(got) != 1 || switched {
		t.Fatalf("same track: %d packets, switch marked %v", len(got), switched)
	}

	// The publication ends; a new one brings a new track of the same name.
	l1.End()
	l2, _ := s.Claim(TrainerPublication, nil)
	tr2, _ := l2.Track("video", KindVideo, h264, nil)
	if tr2 == tr1 || f.Track() != tr2 {
		t.Fatal("the new publication's track was not followed")
	}
	writeVideo(t, tr2, 2, 500, 9000, spsPPS, true)
	if got, switched := queued(q); len(got) != 1 || !switched {
		t.Fatalf("second track: %d packets, switch marked %v", len(got), switched)
	}

	// A track the consumer cannot take is refused and the current one kept.
	if f.Attach(&Track{name: "trainer/video", kind: KindVideo, codec: Codec{MimeType: "video/VP8"}}) || refused != 1 || f.Track() != tr2 {
		t.Fatalf("VP8 track taken (refused %d)", refused)
	}

	stop()
	if f.Track() != nil || tr2.Sinks() != 0 {
		t.Fatalf("after stop: track %v, %d sinks", f.Track(), tr2.Sinks())
	}
	l2.End()
	l3, _ := s.Claim(TrainerPublication, nil)
	tr3, _ := l3.Track("video", KindVideo, h264, nil)
	if f.Attach(tr3) || tr3.Sinks() != 0 {
		t.Fatal("a stopped follower attached again")
	}
}

// FuzzWalkH264: any payload a publisher sends is walked without a panic, every unit
// lies inside the payload, and the keyframe and parameter-set answers agree with it.
func FuzzWalkH264(f *testing.F) {
	for _, seed := range [][]byte{spsPPS, idrStart, idrEnd, pFrame, {0x78, 0, 2, 0x67}, {0x7c}, {0x79, 0, 0}, nil} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		key, units := false, 0
		err := WalkH264(payload, func(n H264NALU) bool {
			units++
			if len(n.Data) > len(payload) || n.Type > 31 || !n.Fragment && (len(n.Data) == 0 || !n.Start || !n.End) {
				t.Fatalf("unit %+v out of payload %x", n, payload)
			}
			if !n.Fragment && mch264.NALUType(n.Data[0]&0x1f) != n.Type {
				t.Fatalf("unit type %v, header %x", n.Type, n.Data[0])
			}
			key = key || n.Start && (n.Type == mch264.NALUTypeIDR || n.Type == mch264.NALUTypeSPS)
			return true
		})
		if err != nil && !errors.Is(err, ErrH264Payload) && !errors.Is(err, ErrH264Packetization) {
			t.Fatalf("error %v", err)
		}
		if err == nil && units == 0 {
			t.Fatalf("no unit and no error for %x", payload)
		}
		if H264IsKeyframe(payload) != key {
			t.Fatalf("H264IsKeyframe(%x) = %v, walk says %v", payload, !key, key)
		}
		sps, pps := H264ParameterSets(payload)
		if sps != nil && mch264.NALUType(sps[0]&0x1f) != mch264.NALUTypeSPS || pps != nil && mch264.NALUType(pps[0]&0x1f) != mch264.NALUTypePPS {
			t.Fatalf("parameter sets %x %x", sps, pps)
		}
	})
}
