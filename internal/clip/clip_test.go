package clip

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// generate makes a clip with ffmpeg into dir, failing the test (with the
// install hint) when ffmpeg is missing.
func generate(t *testing.T, dir string, o Options) *Clip {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Generate(ctx, dir, o)
	if err != nil {
		t.Fatalf("Generate(%+v): %v", o, err)
	}
	return c
}

// smallClip is the 3 s 640x360 clip most tests use.
var smallClip = Options{Width: 640, Height: 360, FPS: 30, Bitrate: 1_000_000, Duration: 3 * time.Second, GOP: 30}

func TestGenerate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := generate(t, dir, smallClip)

	if len(c.Video) != 90 {
		t.Errorf("got %d access units, want 90", len(c.Video))
	}
	if c.FPS != 30 {
		t.Errorf("FPS = %d, want 30", c.FPS)
	}
	if c.Duration != 3*time.Second {
		t.Errorf("Duration = %v, want 3s", c.Duration)
	}
	for i, au := range c.Video {
		wantKey := i%smallClip.GOP == 0
		if au.Keyframe != wantKey {
			t.Errorf("AU %d: Keyframe = %v, want %v", i, au.Keyframe, wantKey)
		}
		if want := time.Duration(i) * time.Second / 30; au.PTS != want {
			t.Errorf("AU %d: PTS = %v, want %v", i, au.PTS, want)
		}
		if au.Keyframe {
			for _, typ := range []h264.NALUType{h264.NALUTypeSPS, h264.NALUTypePPS, h264.NALUTypeIDR} {
				if !slices.ContainsFunc(au.NALUs, func(n []byte) bool { return naluType(n) == typ }) {
					t.Errorf("keyframe AU %d has no %v NAL unit", i, typ)
				}
			}
		}
	}

	if len(c.Audio) < 148 || len(c.Audio) > 150 {
		t.Errorf("got %d Opus frames, want about 150", len(c.Audio))
	}
	var pts time.Duration
	for i, f := range c.Audio {
		if f.Duration != 20*time.Millisecond || f.PTS != pts || len(f.Data) == 0 {
			t.Fatalf("Opus frame %d: PTS %v Duration %v size %d, want PTS %v, 20ms, data", i, f.PTS, f.Duration, len(f.Data), pts)
		}
		pts += f.Duration
	}
	if d := pts - 3*time.Second; d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("audio lasts %v, want about 3s", pts)
	}

	t.Run("cached", func(t *testing.T) {
		files, err := filepath.Glob(filepath.Join(dir, "*"))
		if err != nil || len(files) != 2 {
			t.Fatalf("dir holds %v (%v), want the .h264 and .ogg files", files, err)
		}
		before := modTimes(t, files)
		again := generate(t, dir, smallClip)
		if !slices.Equal(before, modTimes(t, files)) {
			t.Error("second Generate rewrote the files")
		}
		if len(again.Video) != len(c.Video) || len(again.Audio) != len(c.Audio) {
			t.Error("cached clip differs")
		}
	})
}

func modTimes(t *testing.T, files []string) []time.Time {
	t.Helper()
	var out []time.Time
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, st.ModTime())
	}
	return out
}

func TestGenerateWithoutFFmpeg(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Generate(context.Background(), t.TempDir(), smallClip)
	if !errors.Is(err, ErrFFmpegNotFound) || !strings.Contains(err.Error(), "apt-get install ffmpeg") {
		t.Fatalf("err = %v, want ErrFFmpegNotFound with the install hint", err)
	}
}

// recorder collects copies of the packets a Player writes.
type recorder struct {
	mu           sync.Mutex
	video, audio []*rtp.Packet
	aus          []auEvent
}

type auEvent struct {
	seq      uint16
	ts       uint32
	keyframe bool
}

func (r *recorder) options() PlayOptions {
	return PlayOptions{
		VideoSSRC: 1, AudioSSRC: 2,
		WriteVideo: func(p *rtp.Packet) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.video = append(r.video, p.Clone())
			return nil
		},
		WriteAudio: func(p *rtp.Packet) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.audio = append(r.audio, p.Clone())
			return nil
		},
		OnAccessUnit: func(seq uint16, ts uint32, keyframe bool, _ time.Time) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.aus = append(r.aus, auEvent{seq, ts, keyframe})
		},
	}
}

func TestPlay(t *testing.T) {
	t.Parallel()
	c := generate(t, t.TempDir(), smallClip)
	var r recorder
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := c.Play(ctx, r.options()); err != nil {
		t.Fatalf("Play: %v", err)
	}
	if wall := time.Since(start); wall < c.Duration*8/10 || wall > c.Duration*2 {
		t.Errorf("Play took %v for a %v clip", wall, c.Duration)
	}

	t.Run("video", func(t *testing.T) {
		checkStream(t, r.video, 1, 102)
		aus := splitAUs(t, r.video)
		if len(aus) != len(c.Video) {
			t.Fatalf("got %d marked access units, want %d", len(aus), len(c.Video))
		}
		for i, au := range aus {
			if i > 0 && au[0].Timestamp-aus[i-1][0].Timestamp != 3000 {
				t.Errorf("AU %d: timestamp step %d, want 3000", i, au[0].Timestamp-aus[i-1][0].Timestamp)
			}
		}
		if len(r.aus) != len(aus) {
			t.Fatalf("OnAccessUnit called %d times, want %d", len(r.aus), len(aus))
		}
		for i, ev := range r.aus {
			if ev.seq != aus[i][0].SequenceNumber || ev.ts != aus[i][0].Timestamp || ev.keyframe != c.Video[i].Keyframe {
				t.Errorf("OnAccessUnit %d = %+v, want seq %d ts %d keyframe %v",
					i, ev, aus[i][0].SequenceNumber, aus[i][0].Timestamp, c.Video[i].Keyframe)
			}
		}
	})

	t.Run("audio", func(t *testing.T) {
		checkStream(t, r.audio, 2, 111)
		if len(r.audio) != len(c.Audio) {
			t.Fatalf("got %d audio packets, want %d", len(r.audio), len(c.Audio))
		}
		for i, p := range r.audio {
			if i > 0 && p.Timestamp-r.audio[i-1].Timestamp != 960 {
				t.Errorf("audio packet %d: timestamp step %d, want 960", i, p.Timestamp-r.audio[i-1].Timestamp)
			}
			if !bytes.Equal(p.Payload, c.Audio[i].Data) {
				t.Errorf("audio packet %d: payload differs from Opus frame", i)
			}
		}
	})

	t.Run("decodable", func(t *testing.T) {
		stream := depacketize(t, r.video, c.Video)
		path := filepath.Join(t.TempDir(), "depacketized.h264")
		if err := os.WriteFile(path, stream, 0o644); err != nil {
			t.Fatal(err)
		}
		if n := ffprobeFrames(t, path); n != len(c.Video) {
			t.Errorf("ffprobe decoded %d frames, want %d", n, len(c.Video))
		}
	})
}

// checkStream checks the header fields common to all packets of one stream:
// version, SSRC, payload type, contiguous sequence numbers, payload size.
func checkStream(t *testing.T, pkts []*rtp.Packet, ssrc uint32, pt uint8) {
	t.Helper()
	if len(pkts) == 0 {
		t.Fatal("no packets")
	}
	for i, p := range pkts {
		if p.Version != 2 || p.SSRC != ssrc || p.PayloadType != pt {
			t.Fatalf("packet %d: version %d SSRC %d PT %d, want 2, %d, %d", i, p.Version, p.SSRC, p.PayloadType, ssrc, pt)
		}
		if i > 0 && p.SequenceNumber != pkts[i-1].SequenceNumber+1 {
			t.Fatalf("packet %d: sequence number %d after %d", i, p.SequenceNumber, pkts[i-1].SequenceNumber)
		}
		if len(p.Payload) > 1200 {
			t.Fatalf("packet %d: payload of %d bytes exceeds the MTU", i, len(p.Payload))
		}
	}
}

// splitAUs groups video packets into access units at marker bits and checks
// that all packets of one access unit share its timestamp.
func splitAUs(t *testing.T, pkts []*rtp.Packet) [][]*rtp.Packet {
	t.Helper()
	var aus [][]*rtp.Packet
	var cur []*rtp.Packet
	for i, p := range pkts {
		if len(cur) > 0 && p.Timestamp != cur[0].Timestamp {
			t.Fatalf("packet %d: timestamp changes before a marker", i)
		}
		cur = append(cur, p)
		if p.Marker {
			aus = append(aus, cur)
			cur = nil
		}
	}
	if len(cur) > 0 {
		t.Fatalf("%d packets after the last marker", len(cur))
	}
	return aus
}

// depacketize turns RTP packets back into an Annex-B stream with pion's
// depacketizer and checks that each access unit carries the NAL units of
// the clip (less AUD and filler).
func depacketize(t *testing.T, pkts []*rtp.Packet, want []AccessUnit) []byte {
	t.Helper()
	var stream, au []byte
	var d codecs.H264Packet
	n := 0
	for i, p := range pkts {
		out, err := d.Unmarshal(p.Payload)
		if err != nil {
			t.Fatalf("packet %d: depacketize: %v", i, err)
		}
		au = append(au, out...)
		if !p.Marker {
			continue
		}
		got, err := annexBNALUs(au)
		if err != nil {
			t.Fatalf("AU %d: %v", n, err)
		}
		wantNALUs := slices.DeleteFunc(slices.Clone(want[n].NALUs), func(b []byte) bool {
			return naluType(b) == h264.NALUTypeAccessUnitDelimiter || naluType(b) == h264.NALUTypeFillerData
		})
		if !slices.EqualFunc(got, wantNALUs, bytes.Equal) {
			t.Errorf("AU %d: depacketized NAL units differ from the clip", n)
		}
		stream = append(stream, au...)
		au, n = au[:0], n+1
	}
	return stream
}

// ffprobeFrames decodes an H.264 file with ffprobe and returns its frame count.
func ffprobeFrames(t *testing.T, path string) int {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatalf("ffprobe not found (install it: apt-get install ffmpeg): %v", err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe: %v: %s", err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("ffprobe output %q: %v", out, err)
	}
	return n
}

func TestPlayLoop(t *testing.T) {
	t.Parallel()
	o := Options{Width: 320, Height: 180, FPS: 30, Bitrate: 300_000, Duration: time.Second, GOP: 15}
	c := generate(t, t.TempDir(), o)
	var r recorder
	ctx, cancel := context.WithTimeout(context.Background(), c.Duration*3/2)
	defer cancel()
	opts := r.options()
	opts.Loop = true
	if err := c.Play(ctx, opts); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Play = %v, want context.DeadlineExceeded", err)
	}

	checkStream(t, r.video, 1, 102)
	checkStream(t, r.audio, 2, 111)
	aus := splitAUs(t, r.video)
	if len(aus) < len(c.Video)+len(c.Video)/4 {
		t.Fatalf("got %d access units, want more than 1.25 passes of %d", len(aus), len(c.Video))
	}
	for i := 1; i < len(aus); i++ {
		if step := aus[i][0].Timestamp - aus[i-1][0].Timestamp; step != 3000 {
			t.Errorf("AU %d: timestamp step %d, want 3000", i, step)
		}
		if wantKey := i%len(c.Video)%o.GOP == 0; r.aus[i].keyframe != wantKey {
			t.Errorf("AU %d: keyframe %v, want %v", i, r.aus[i].keyframe, wantKey)
		}
	}
	if len(r.audio) < len(c.Audio)*5/4 {
		t.Fatalf("got %d audio packets, want more than 1.25 passes of %d", len(r.audio), len(c.Audio))
	}
	for i := 1; i < len(r.audio); i++ {
		if step := r.audio[i].Timestamp - r.audio[i-1].Timestamp; step != 960 {
			t.Errorf("audio packet %d: timestamp step %d, want 960", i, step)
		}
	}

}

// syntheticClip returns a clip of synthetic (non-decodable) video and fake
// Opus frames, for tests that need no real media.
func syntheticClip(fps int, d time.Duration, gop, size int) *Clip {
	c := &Clip{FPS: fps, Duration: d}
	for i := 0; time.Duration(i)*time.Second < d*time.Duration(fps); i++ {
		au := AccessUnit{NALUs: SyntheticDelta(size), PTS: time.Duration(i) * time.Second / time.Duration(fps)}
		if i%gop == 0 {
			au.NALUs, au.Keyframe = SyntheticKeyframe(4*size), true
		}
		c.Video = append(c.Video, au)
	}
	for pts := time.Duration(0); pts < d; pts += 20 * time.Millisecond {
		c.Audio = append(c.Audio, OpusFrame{Data: []byte{0xfc, 1, 2, 3}, PTS: pts, Duration: 20 * time.Millisecond})
	}
	return c
}

func TestPlayerNoAllocationsPerPacket(t *testing.T) {
	var packets int
	count := func(*rtp.Packet) error { packets++; return nil }
	c := syntheticClip(30, 300*time.Millisecond, 5, 1000)
	p, err := NewPlayer(c, PlayOptions{MTU: 200, Loop: true, WriteVideo: count, WriteAudio: count})
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_ = p.Run(ctx)
	})
	if packets < 300 || allocs > 30 {
		t.Errorf("%v allocations per run for %d packets in 2 runs", allocs, packets)
	}
}

func TestPacketize(t *testing.T) {
	aud := []byte{0x09, 0xf0}
	tests := []struct {
		name  string
		nalus [][]byte
		mtu   int
		want  []byte // NAL unit type (or 24 STAP-A, 28 FU-A) of each packet
	}{
		{"keyframe aggregates SPS and PPS", SyntheticKeyframe(500), 1200, []byte{24, 5}},
		{"AUD dropped", append([][]byte{aud}, SyntheticDelta(100)...), 1200, []byte{1}},
		{"large IDR fragmented", SyntheticKeyframe(3000), 1200, []byte{24, 28, 28, 28}},
		{"exact fit", SyntheticDelta(1200), 1200, []byte{1}},
		{"one byte over", SyntheticDelta(1201), 1200, []byte{28, 28}},
		{"parameter sets too big to aggregate", SyntheticKeyframe(10), 30, []byte{7, 8, 5}},
		{"two slices", append(SyntheticDelta(50), SyntheticDelta(60)...), 1200, []byte{1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pkts := AccessUnit{NALUs: tc.nalus}.Packetize(tc.mtu)
			var types []byte
			for i, p := range pkts {
				types = append(types, p.Payload[0]&0x1f)
				if len(p.Payload) > tc.mtu {
					t.Errorf("packet %d: %d bytes exceed MTU %d", i, len(p.Payload), tc.mtu)
				}
				if p.Marker != (i == len(pkts)-1) {
					t.Errorf("packet %d: marker %v", i, p.Marker)
				}
			}
			if !bytes.Equal(types, tc.want) {
				t.Fatalf("packet types %v, want %v", types, tc.want)
			}
			var d codecs.H264Packet
			var annexB []byte
			for _, p := range pkts {
				out, err := d.Unmarshal(p.Payload)
				if err != nil {
					t.Fatal(err)
				}
				annexB = append(annexB, out...)
			}
			got, err := annexBNALUs(annexB)
			if err != nil {
				t.Fatal(err)
			}
			want := slices.DeleteFunc(slices.Clone(tc.nalus), func(b []byte) bool { return naluType(b) == h264.NALUTypeAccessUnitDelimiter })
			if !slices.EqualFunc(got, want, bytes.Equal) {
				t.Error("round trip through pion's depacketizer changed the NAL units")
			}
		})
	}
}

func TestParseH264(t *testing.T) {
	key := SyntheticKeyframe(40)
	delta := SyntheticDelta(30)
	// A second slice of the same picture: first_mb_in_slice != 0.
	slice2 := append([]byte{0x41, 0x40}, bytes.Repeat([]byte{7}, 10)...)
	annexB := func(prefixes [][]byte, nalus ...[]byte) []byte {
		var b []byte
		for i, n := range nalus {
			b = append(b, prefixes[i%len(prefixes)]...)
			b = append(b, n...)
		}
		return b
	}
	long, short := []byte{0, 0, 0, 1}, []byte{0, 0, 1}
	tests := []struct {
		name    string
		stream  []byte
		wantAUs []int // NAL unit count of each access unit
		wantKey []bool
	}{
		{"4-byte start codes", annexB([][]byte{long}, key[0], key[1], key[2], delta[0]), []int{3, 1}, []bool{true, false}},
		{"mixed start codes", annexB([][]byte{long, short}, key[0], key[1], key[2], delta[0], delta[0]), []int{3, 1, 1}, []bool{true, false, false}},
		{"AUD starts an AU", annexB([][]byte{long}, []byte{0x09, 0xf0}, delta[0], []byte{0x09, 0xf0}, delta[0]), []int{2, 2}, []bool{false, false}},
		{"multi-slice picture", annexB([][]byte{short}, delta[0], slice2, delta[0], slice2), []int{2, 2}, []bool{false, false}},
		{"trailing zeros", append(annexB([][]byte{long}, delta[0], delta[0]), 0, 0, 0), []int{1, 1}, []bool{false, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			aus, err := parseH264(tc.stream, 25)
			if err != nil {
				t.Fatal(err)
			}
			var counts []int
			var keys []bool
			for i, au := range aus {
				counts = append(counts, len(au.NALUs))
				keys = append(keys, au.Keyframe)
				if au.PTS != time.Duration(i)*40*time.Millisecond {
					t.Errorf("AU %d: PTS %v", i, au.PTS)
				}
			}
			if !slices.Equal(counts, tc.wantAUs) || !slices.Equal(keys, tc.wantKey) {
				t.Errorf("got AUs %v keyframes %v, want %v %v", counts, keys, tc.wantAUs, tc.wantKey)
			}
		})
	}

	t.Run("no start code", func(t *testing.T) {
		if _, err := parseH264([]byte{1, 2, 3, 0, 0, 1, 0x41, 0x80}, 25); !errors.Is(err, h264.ErrAnnexBNoInitialDelimiter) {
			t.Errorf("err = %v, want h264.ErrAnnexBNoInitialDelimiter", err)
		}
	})

	// mediacommon parses at most h264.MaxAccessUnitSize at once; a long clip is more.
	t.Run("longer than an access unit's limit", func(t *testing.T) {
		slice := append([]byte{0x41, 0x9a}, bytes.Repeat([]byte{7}, 64<<10)...)
		var stream []byte
		n := 0
		for len(stream) <= h264.MaxAccessUnitSize+len(slice) {
			stream = append(append(stream, long...), slice...)
			n++
		}
		aus, err := parseH264(stream, 25)
		if err != nil {
			t.Fatal(err)
		}
		if len(aus) != n {
			t.Fatalf("%d access units, want %d", len(aus), n)
		}
		for i, au := range aus {
			if len(au.NALUs) != 1 || !bytes.Equal(au.NALUs[0], slice) {
				t.Fatalf("AU %d: %d NAL units of %d bytes, want 1 of %d", i, len(au.NALUs), len(au.NALUs[0]), len(slice))
			}
		}
	})
}

func TestOpusPacketDuration(t *testing.T) {
	tests := []struct {
		name   string
		packet []byte
		want   time.Duration
	}{
		{"CELT 20 ms", []byte{0xfc, 1}, 20 * time.Millisecond},
		{"CELT 2.5 ms", []byte{0x80}, 2500 * time.Microsecond},
		{"SILK 60 ms", []byte{0x18}, 60 * time.Millisecond},
		{"hybrid 10 ms two frames", []byte{0x61}, 20 * time.Millisecond},
		{"code 3 with 3 frames of 20 ms", []byte{0xfb, 0x03}, 60 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := opusPacketDuration(tc.packet)
			if err != nil || got != tc.want {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := opusPacketDuration(nil); err == nil {
		t.Error("empty packet: no error")
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name    string
		in      Options
		wantErr bool
		want    Options
	}{
		{"defaults", Options{}, false, Options{Width: 1280, Height: 720, FPS: 30, Bitrate: 2_500_000, Duration: 10 * time.Second, GOP: 60}},
		{"GOP follows FPS", Options{FPS: 25}, false, Options{Width: 1280, Height: 720, FPS: 25, Bitrate: 2_500_000, Duration: 10 * time.Second, GOP: 50}},
		{"odd width", Options{Width: 641, Height: 360}, true, Options{}},
		{"negative duration", Options{Duration: -time.Second}, true, Options{}},
		{"shorter than a frame", Options{Duration: time.Millisecond}, true, Options{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.withDefaults()
			err := got.validate()
			if (err != nil) != tc.wantErr {
				t.Fatalf("validate() = %v, wantErr %v", err, tc.wantErr)
			}
			if !tc.wantErr && got != tc.want {
				t.Errorf("withDefaults() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSynthetic(t *testing.T) {
	key := SyntheticKeyframe(100)
	var sps h264.SPS
	if err := sps.Unmarshal(key[0]); err != nil {
		t.Fatalf("SPS: %v", err)
	}
	if sps.Width() != 640 || sps.Height() != 360 {
		t.Errorf("SPS size %dx%d, want 640x360", sps.Width(), sps.Height())
	}
	types := []h264.NALUType{naluType(key[0]), naluType(key[1]), naluType(key[2])}
	if !slices.Equal(types, []h264.NALUType{h264.NALUTypeSPS, h264.NALUTypePPS, h264.NALUTypeIDR}) || len(key[2]) != 100 {
		t.Errorf("keyframe NAL types %v, IDR size %d", types, len(key[2]))
	}
	delta := SyntheticDelta(50)
	if len(delta) != 1 || naluType(delta[0]) != h264.NALUTypeNonIDR || len(delta[0]) != 50 {
		t.Errorf("delta = %d NAL units, type %v, size %d", len(delta), naluType(delta[0]), len(delta[0]))
	}
	if h264.IsRandomAccess(delta) || !h264.IsRandomAccess(key) {
		t.Error("h264.IsRandomAccess disagrees with the synthetic NAL types")
	}
}

func TestNewPlayerErrors(t *testing.T) {
	write := func(*rtp.Packet) error { return nil }
	c := syntheticClip(30, 100*time.Millisecond, 30, 100)
	tests := []struct {
		name string
		clip *Clip
		opts PlayOptions
	}{
		{"no write funcs", c, PlayOptions{}},
		{"empty clip", &Clip{}, PlayOptions{WriteVideo: write, WriteAudio: write}},
		{"MTU too small", c, PlayOptions{MTU: 10, WriteVideo: write}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewPlayer(tc.clip, tc.opts); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestPlayStopsOnWriteError(t *testing.T) {
	errBoom := errors.New("boom")
	c := syntheticClip(30, 100*time.Millisecond, 30, 100)
	err := c.Play(context.Background(), PlayOptions{WriteVideo: func(*rtp.Packet) error { return errBoom }})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Play = %v, want the write error", err)
	}
}
