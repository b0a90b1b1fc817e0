package recorder

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"lectern/internal/clip"
	"lectern/internal/testenv"
	"lectern/internal/testrec"
	"lectern/sfu"
)

// shapeClips returns a 320x240 and a 640x360 clip (constrained baseline, a
// keyframe every second with its parameter sets), as the programme's video is
// when it switches from the trainer's camera to a classroom's.
func shapeClips(t *testing.T) (small, wide *clip.Clip) {
	small = testenv.ToneClip(t, testenv.ToneClipOptions{Pattern: "testsrc", Width: 320, Height: 240, FPS: 30, GOP: 30, Tone: 440, Duration: 5 * time.Second})
	wide = testenv.ToneClip(t, testenv.ToneClipOptions{Pattern: "smptebars", Width: 640, Height: 360, FPS: 30, GOP: 30, Tone: 1000, Duration: 5 * time.Second})
	return small, wide
}

// wantShapes are the pictures of a recording fed 320x240, 640x360, 320x240.
var wantShapes = []string{"320x240", "640x360", "320x240"}

// TestResolutionChangeNewInit: a publication whose video changes size
// mid-recording (320x240 → 640x360 → 320x240) gets a new init segment at each
// change, announced in the playlist by EXT-X-DISCONTINUITY and EXT-X-MAP, each
// init describing its pictures; ffmpeg plays the playlist through at each size,
// and the download (the largest picture's init) too.
func TestResolutionChangeNewInit(t *testing.T) {
	t.Parallel()
	small, wide := shapeClips(t)
	store := testrec.DirStore(t)
	r, sess, ctx := recordSession(t, store, "reinit0001", -1, time.Minute, nil)
	p := newPublisher(t, sess, sfu.TrainerPublication)
	for _, c := range []*clip.Clip{small, wide, small} {
		p.feed(t, ctx, c, feedOptions{speed: 4})
	}
	p.lease.End()
	m := waitComplete(t, r, 1, 30*time.Second)[0]
	full, err := readMeta(context.Background(), store, m.Prefix+metaFile)
	if err != nil {
		t.Fatal(err)
	}
	checkReinit(t, store, full)

	hls := store.Root() + "/" + m.Prefix + playlistFile
	if errs := ffmpegDecodeErrors(t, hls); errs != "" {
		t.Errorf("decode errors: %s", errs)
	}
	frames := 2*len(small.Video) + len(wide.Video)
	if got := testrec.FFprobe(t, hls); got.VideoFrames != frames {
		t.Errorf("HLS: %+v, want %d frames", got, frames)
	}
	if got := frameShapes(t, hls); strings.Join(got, " ") != strings.Join(wantShapes, " ") {
		t.Errorf("HLS pictures: %v, want %v", got, wantShapes)
	}

	// The download: one file, the largest picture's init, the others' parameter
	// sets in-band.
	dl := writeDownload(t, r, m.ID, MainRendition)
	d, err := r.Download(context.Background(), m.ID, MainRendition)
	if err != nil {
		t.Fatal(err)
	}
	if got := headerShapes(t, d.Header); got != "640x360 opus" {
		t.Errorf("the download's header describes %s, want the largest picture, 640x360, and opus", got)
	}
	if errs := ffmpegDecodeErrors(t, dl); errs != "" {
		t.Errorf("download decode errors: %s", errs)
	}
	if got := testrec.FFprobe(t, dl); got.VideoFrames != frames || !near(got.Duration, m.Duration, 0.1) {
		t.Errorf("download: %+v, want %d frames over %.2f s", got, frames, m.Duration)
	}
	if got := frameShapes(t, dl); strings.Join(got, " ") != strings.Join(wantShapes, " ") {
		t.Errorf("download pictures: %v, want %v", got, wantShapes)
	}
}

// TestResolutionChangeSurvivesCrash: the inits of a recording whose video
// changed size, still in the spool at a crash (the store was down), are stored
// by the next start, which rebuilds the same playlist.
func TestResolutionChangeSurvivesCrash(t *testing.T) {
	t.Parallel()
	small, wide := shapeClips(t)
	store := &flakyStore{Store: testrec.DirStore(t)}
	spoolDir := t.TempDir()
	r1 := newRecorder(t, store, spoolDir, nil)
	reg := sfu.NewRegistry(sfu.RegistryConfig{Grace: -1, Logger: testLogger()})
	sess := reg.Session("reinit0002")
	r1.Attach(sess)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := newPublisher(t, sess, sfu.TrainerPublication)
	p.feed(t, ctx, small, feedOptions{speed: 4})
	store.down.Store(true) // init.mp4 is stored; what follows stays in the spool
	p.feed(t, ctx, wide, feedOptions{speed: 4})
	p.feed(t, ctx, small, feedOptions{speed: 4})
	p.feed(t, ctx, small, feedOptions{speed: 4}) // the segment cut at the crash is lost: not the last 320x240
	r1.crash()
	p.lease.End()

	store.down.Store(false)
	r2 := newRecorder(t, store, spoolDir, nil)
	defer closeRecorder(t, r2)
	m := waitComplete(t, r2, 1, time.Minute)[0]
	if !m.Interrupted {
		t.Errorf("recovered recording %+v: want interrupted", m)
	}
	full, err := readMeta(context.Background(), store.Store, m.Prefix+metaFile)
	if err != nil {
		t.Fatal(err)
	}
	checkReinit(t, store.Store, full)
	hls := dirRoot(store.Store) + "/" + m.Prefix + playlistFile
	if errs := ffmpegDecodeErrors(t, hls); errs != "" {
		t.Errorf("decode errors: %s", errs)
	}
	if got := frameShapes(t, hls); strings.Join(got, " ") != strings.Join(wantShapes, " ") {
		t.Errorf("HLS pictures after recovery: %v, want %v", got, wantShapes)
	}
}

// checkReinit checks a finished recording fed 320x240, 640x360, 320x240: its
// meta lists three inits of those sizes, its playlist maps each at the first
// segment that needs it after a discontinuity, and each stored init's avc1
// describes its pictures.
func checkReinit(t *testing.T, st Store, m Meta) {
	t.Helper()
	rd, ok := m.rendition(MainRendition)
	if !ok {
		t.Fatalf("no main rendition: %+v", m)
	}
	var inits []string
	for _, in := range rd.Inits {
		inits = append(inits, fmt.Sprintf("%s:%dx%d", in.File, in.Width, in.Height))
	}
	if want := "init.mp4:320x240 init-1.mp4:640x360 init-2.mp4:320x240"; strings.Join(inits, " ") != want {
		t.Errorf("meta's inits %v, want %s", inits, want)
	}
	if tr := rd.Tracks[0]; tr.Width != 320 || tr.Height != 240 || len(rd.Tracks) != 2 {
		t.Errorf("meta's tracks %+v: want the first init's, 320x240 and the audio", rd.Tracks)
	}
	pl := readStored(t, st, m.Prefix+playlistFile)
	lines := strings.Split(pl, "\n")
	var maps []string
	init, segs := 0, 0
	for i, line := range lines {
		switch {
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			maps = append(maps, line)
			if len(maps) > 1 && (i == 0 || lines[i-1] != "#EXT-X-DISCONTINUITY") {
				t.Errorf("%s without a discontinuity before it:\n%s", line, pl)
			}
			fmt.Sscanf(line, `#EXT-X-MAP:URI="init-%d.mp4"`, &init)
		case strings.HasPrefix(line, "seg-"):
			n := 0
			fmt.Sscanf(line, "seg-%d.m4s", &n)
			segs++
			if s := rd.SegmentList[segs-1]; s.N != n || s.Init != init {
				t.Errorf("playlist entry %s after init %d; meta says segment %d of init %d", line, init, s.N, s.Init)
			}
		}
	}
	want := []string{`#EXT-X-MAP:URI="init.mp4"`, `#EXT-X-MAP:URI="init-1.mp4"`, `#EXT-X-MAP:URI="init-2.mp4"`}
	if strings.Join(maps, " ") != strings.Join(want, " ") || strings.Count(pl, "#EXT-X-DISCONTINUITY") != 2 || segs != len(rd.SegmentList) {
		t.Errorf("playlist maps %v (want %v), %d discontinuities (want 2), %d segments (meta: %d):\n%s",
			maps, want, strings.Count(pl, "#EXT-X-DISCONTINUITY"), segs, len(rd.SegmentList), pl)
	}
	for i, size := range wantShapes {
		data := readStored(t, st, m.Prefix+initName(i))
		if got := headerShapes(t, []byte(data)); got != size+" opus" {
			t.Errorf("%s holds %v, want %s and opus", initName(i), got, size)
		}
		if got := initShape(t, dirRoot(st)+"/"+m.Prefix+initName(i)); got != size {
			t.Errorf("ffprobe: %s's video is %s, want %s", initName(i), got, size)
		}
	}
}

// headerShapes returns what the init segment (ftyp, moov) at the start of data
// holds: each H.264 track's picture size (from its avcC's SPS), "opus" for
// Opus tracks.
func headerShapes(t *testing.T, data []byte) string {
	t.Helper()
	end := 0
	for end < len(data) { // up to the moov (a download's header has a sidx next)
		size, typ, err := boxHeader(data[end:])
		if err != nil {
			t.Fatal(err)
		}
		end += size
		if typ == "moov" {
			break
		}
	}
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(data[:end])); err != nil {
		t.Fatalf("init segment: %v", err)
	}
	var got []string
	for _, tr := range in.Tracks {
		switch c := tr.Codec.(type) {
		case *mp4.CodecH264:
			var sps h264.SPS
			if err := sps.Unmarshal(c.SPS); err != nil {
				t.Fatalf("SPS: %v", err)
			}
			got = append(got, fmt.Sprintf("%dx%d", sps.Width(), sps.Height()))
		case *mp4.CodecOpus:
			got = append(got, "opus")
		}
	}
	return strings.Join(got, " ")
}

// dirRoot returns the root directory of a Dir store.
func dirRoot(st Store) string { return st.(interface{ Root() string }).Root() }

// initShape returns the picture size ffprobe reads from a file's header (the
// avc1 sample entry and its avcC).
func initShape(t *testing.T, path string) string {
	t.Helper()
	bin := testenv.RequireTool(t, "ffprobe", "apt-get install ffmpeg")
	out, err := exec.Command(bin, "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0:s=x", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

// frameShapes decodes the video of url and returns the sizes of its pictures,
// one per run of pictures of the same size.
func frameShapes(t *testing.T, url string) []string {
	t.Helper()
	bin := testenv.RequireTool(t, "ffprobe", "apt-get install ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=width,height", "-of", "csv=p=0:s=x", url).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", url, err)
	}
	var runs []string
	for _, line := range strings.Fields(string(out)) {
		line = strings.TrimRight(line, "x") // a frame with side data has an empty field more
		if len(runs) == 0 || runs[len(runs)-1] != line {
			runs = append(runs, line)
		}
	}
	return runs
}

// TestPlaylistInits: a playlist maps each init segment before the first segment
// that needs it, after a discontinuity, and reads back (a recording finalised
// from the store alone) with each segment's init.
func TestPlaylistInits(t *testing.T) {
	start := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	info := &RenditionInfo{Timescale: 90000, SegmentList: []segmentRecord{
		{N: 1, Start: 0, Duration: 360000, Size: 10},
		{N: 2, Start: 360000, Duration: 90000, Size: 20, Init: 1},
		{N: 3, Start: 450000, Duration: 360000, Init: 1, Lost: true},
		{N: 4, Start: 810000, Duration: 360000, Size: 40, Init: 1, Discontinuity: true},
		{N: 5, Start: 1170000, Duration: 360000, Size: 50, Init: 2}}}
	pl := string(playlist(start, info, true))
	var tags []string
	for _, line := range strings.Split(pl, "\n") {
		if strings.HasPrefix(line, "#EXT-X-MAP") || strings.HasPrefix(line, "#EXT-X-DISCONTINUITY") || strings.HasPrefix(line, "seg-") {
			tags = append(tags, line)
		}
	}
	want := `#EXT-X-MAP:URI="init.mp4" seg-000001.m4s #EXT-X-DISCONTINUITY #EXT-X-MAP:URI="init-1.mp4" seg-000002.m4s seg-000003.m4s ` +
		`#EXT-X-DISCONTINUITY seg-000004.m4s #EXT-X-DISCONTINUITY #EXT-X-MAP:URI="init-2.mp4" seg-000005.m4s`
	if strings.Join(tags, " ") != want {
		t.Errorf("playlist:\n%s\nwant the tags %s", pl, want)
	}
	got := parsePlaylist(pl, start, 90000, func(name string) int64 {
		return map[string]int64{"seg-000001.m4s": 10, "seg-000002.m4s": 20, "seg-000004.m4s": 40, "seg-000005.m4s": 50}[name]
	})
	if fmt.Sprint(got) != fmt.Sprint(info.SegmentList) {
		t.Errorf("read back %v, want %v", got, info.SegmentList)
	}

	// A rendition whose first init could not be spooled starts with its next.
	late := &RenditionInfo{Timescale: 90000, SegmentList: []segmentRecord{{N: 3, Start: 0, Duration: 90000, Size: 5, Init: 1}}}
	if pl := string(playlist(start, late, true)); !strings.Contains(pl, `#EXT-X-MAP:URI="init-1.mp4"`) || strings.Contains(pl, "DISCONTINUITY") {
		t.Errorf("playlist of a rendition starting at init-1:\n%s", pl)
	}

	for name, ok := range map[string]bool{"init.mp4": true, "init-1.mp4": true, "init-12.mp4": true,
		"init-0.mp4": false, "init-01.mp4": false, "init-.mp4": false, "init-1x.mp4": false, "init-1234567.mp4": false} {
		if validFile.MatchString(name) != ok {
			t.Errorf("a replay may fetch %q: %v, want %v", name, !ok, ok)
		}
	}
}

// initsSink keeps every init segment a rendition writes, by number.
type initsSink struct {
	inits map[int][]byte
	segs  []segment
}

func (c *initsSink) initReady(r *rendition, data []byte) error {
	c.inits[r.init] = bytes.Clone(data)
	return nil
}

func (c *initsSink) segmentReady(_ *rendition, s segment) error {
	s.Data = nil
	c.segs = append(c.segs, s)
	return nil
}

// TestRenditionShapeChange: the muxer cuts a segment at the first keyframe of
// another picture size (before the segment's target duration) and writes an
// init segment for it; an SPS that changes but keeps the shape (another
// level) travels in-band, without a cut.
func TestRenditionShapeChange(t *testing.T) {
	small, wide := shapeClips(t)
	otherLevel := func(au clip.AccessUnit) [][]byte { // the same pictures, another level_idc
		nalus := append([][]byte(nil), au.NALUs...)
		for i, n := range nalus {
			if h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
				n = bytes.Clone(n)
				n[3]++
				nalus[i] = n
			}
		}
		return nalus
	}
	sink := &initsSink{inits: map[int][]byte{}}
	mt := &muxTrack{name: "trainer/video", id: 1, rate: 90000, video: true, requestKey: func() {}}
	r := &rendition{name: MainRendition, primary: mt, tracks: []*muxTrack{mt}, target: 4 * 90000, sink: sink}
	pts := int64(0)
	feed := func(c *clip.Clip, frames int, change func(clip.AccessUnit) [][]byte) int64 {
		start := pts
		for _, au := range c.Video[:frames] {
			nalus := au.NALUs
			if change != nil {
				nalus = change(au)
			}
			if err := r.write(mt, accessUnit{ticks: pts, nalus: nalus, key: au.Keyframe}); err != nil {
				t.Fatal(err)
			}
			pts += 3000
		}
		return start
	}
	feed(small, 30, nil)
	feed(small, 30, otherLevel) // 2 s in: no cut, no init
	wideAt := feed(wide, 45, nil)
	smallAt := feed(small, 60, nil)
	if err := r.finish(); err != nil {
		t.Fatal(err)
	}
	var shapes []string
	for k := range len(sink.inits) {
		shapes = append(shapes, headerShapes(t, sink.inits[k]))
	}
	if strings.Join(shapes, " ") != strings.Join(wantShapes, " ") {
		t.Errorf("inits describe %v, want %v", shapes, wantShapes)
	}
	var got []string
	for _, s := range sink.segs {
		got = append(got, fmt.Sprintf("%d@%d+%d", s.Init, s.Start, s.Duration))
	}
	want := []string{fmt.Sprintf("0@0+%d", wideAt), fmt.Sprintf("1@%d+%d", wideAt, smallAt-wideAt), fmt.Sprintf("2@%d+%d", smallAt, pts-smallAt)}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("segments (init@start+duration) %v, want %v", got, want)
	}
}
