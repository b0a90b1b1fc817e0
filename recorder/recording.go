package recorder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"lectern/sfu"
)

// Bounds of the wait for a first keyframe before a recording starts.
const (
	maxKeyframeWait = 10 * time.Second // then record what there is (audio)
	maxBuffered     = 4096             // access units per track held meanwhile
	muxTick         = 100 * time.Millisecond
)

// recording is one publication's live period being recorded. Its mux goroutine
// (run) owns everything but the fields marked otherwise.
type recording struct {
	r         *Recorder
	key       pubKey
	session   string
	pub       string
	log       *slog.Logger
	epoch     int64 // sfu.Nanotime when the recording was created
	epochWall time.Time
	in        chan *auBatch

	// Guarded by r.mu.
	live   int
	tracks []*recTrack
	ending atomic.Bool // every track ended: finish once the readers are done

	ctrlMu sync.Mutex
	added  []*recTrack
	wake   chan struct{}

	held      arena // the media of the access units held until the start
	states    map[*recTrack]*trackState
	order     []*trackState
	doneCount int
	started   bool
	zeroNanos int64
	rends     []*rendition
	main      *rendition

	// Set when the first rendition starts (begin).
	id, prefix, dir string
	jour            *journal
	up              *uploader
	failed          bool // the spool is unusable: media is discarded
	disc            map[*rendition]bool
	badInit         map[*rendition]bool
	drops           int

	// The timeline (marks), guarded by markMu: held until the recording begins,
	// then journaled and handed to the uploader until it finishes.
	markMu      sync.Mutex
	markPending []pendingMark
	markUp      *uploader
	markJour    *journal
	markStart   time.Time
	markDone    bool
	marks       int
}

// trackState is the mux's view of one track.
type trackState struct {
	rt      *recTrack
	buf     []accessUnit // before the recording starts
	mt      *muxTrack
	rend    *rendition
	done    bool
	ignored bool
}

// newRecording runs with r.mu held.
func newRecording(r *Recorder, session, pub string, key pubKey) *recording {
	return &recording{
		r: r, key: key, session: session, pub: pub,
		log:   r.log.With("session", session, "publication", pub),
		epoch: sfu.Nanotime(), epochWall: time.Now(),
		in: make(chan *auBatch, 64), wake: make(chan struct{}, 1),
		states: map[*recTrack]*trackState{}, disc: map[*rendition]bool{}, badInit: map[*rendition]bool{},
	}
}

// newTrack creates the sink of t and announces it to the mux. It runs with r.mu
// held.
func (rec *recording) newTrack(t *sfu.Track, local string) *recTrack {
	ctx, cancel := context.WithCancel(rec.r.hard)
	rt := &recTrack{rec: rec, t: t, local: local, ctx: ctx, cancel: cancel}
	if isAAC(t.Codec()) {
		rt.aac, _ = parseAACFormat(t.Codec()) // checked by recordable
	}
	rt.queue = sfu.NewQueue(sfu.QueueOptions{Size: queueSize, Kind: t.Kind(), Stats: t.Stats(), RequestKeyframe: t.RequestKeyframe})
	rec.live++
	rec.tracks = append(rec.tracks, rt)
	rec.ctrlMu.Lock()
	rec.added = append(rec.added, rt)
	rec.ctrlMu.Unlock()
	select {
	case rec.wake <- struct{}{}:
	default:
	}
	return rt
}

// run is the mux goroutine: it ends when every track ended and was consumed
// (finishing the recording) or at a hard stop (leaving it to crash recovery).
func (rec *recording) run() {
	tick := time.NewTicker(muxTick)
	defer tick.Stop()
	ticks := tick.C // until the recording has started
	for {
		select {
		case b := <-rec.in:
			rec.pullAdded()
			for _, au := range b.aus {
				rec.handle(au)
			}
			b.recycle()
		case <-rec.wake:
			rec.pullAdded()
		case <-ticks:
			if !rec.started {
				rec.tryStart(false)
			}
		case <-rec.r.hard.Done():
			return
		}
		if rec.started && ticks != nil {
			tick.Stop() // nothing to wait for any more: no wakeups for nothing
			ticks = nil
		}
		if rec.finished() {
			rec.finish()
			return
		}
	}
}

func (rec *recording) pullAdded() {
	rec.ctrlMu.Lock()
	added := rec.added
	rec.added = nil
	rec.ctrlMu.Unlock()
	for _, rt := range added {
		ts := &trackState{rt: rt}
		rec.states[rt] = ts
		rec.order = append(rec.order, ts)
	}
}

func (rec *recording) finished() bool {
	if !rec.ending.Load() || rec.doneCount < len(rec.order) {
		return false
	}
	rec.ctrlMu.Lock()
	defer rec.ctrlMu.Unlock()
	return len(rec.added) == 0
}

func (rec *recording) handle(au accessUnit) {
	ts := rec.states[au.track]
	if au.done {
		ts.done = true
		rec.doneCount++
		return
	}
	if !rec.started {
		if len(ts.buf) >= maxBuffered {
			ts.buf = append(ts.buf[:0], ts.buf[maxBuffered/2:]...)
		}
		ts.buf = append(ts.buf, rec.keep(au))
		rec.tryStart(false)
		return
	}
	rec.write(ts, au)
}

// keep returns au with its media copied out of its batch (which is reused), for
// the access units held until the recording starts.
func (rec *recording) keep(au accessUnit) accessUnit {
	if au.nalus != nil {
		nalus := make([][]byte, len(au.nalus))
		for i, n := range au.nalus {
			nalus[i] = rec.held.copy(n)
		}
		au.nalus = nalus
	}
	if au.audio != nil {
		au.audio = rec.held.copy(au.audio)
	}
	return au
}

// tryStart decides the renditions once the publication's tracks had time to
// appear and the camera (or another video track) sent a keyframe; at the end
// (final) it records whatever was buffered.
func (rec *recording) tryStart(final bool) {
	age := time.Duration(sfu.Nanotime() - rec.epoch)
	if age < rec.r.cfg.Settle && !final {
		return
	}
	primary, at := rec.pickPrimary()
	if primary == nil {
		hasVideo := false
		for _, ts := range rec.order {
			if ts.rt.t.Kind() == sfu.KindVideo {
				hasVideo = true
				ts.rt.t.RequestKeyframe()
			}
		}
		if hasVideo && age < maxKeyframeWait && !final {
			return
		}
		primary, at = rec.firstAudio()
		if primary == nil {
			return
		}
	}
	rate := int64(primary.rt.t.Codec().ClockRate)
	rec.zeroNanos = primary.buf[at].ticks * int64(time.Second) / rate
	rec.started = true
	rec.begin()
	mainTracks := []*trackState{primary}
	if audio, _ := rec.firstAudio(); audio != nil && audio != primary {
		mainTracks = append(mainTracks, audio)
	}
	rec.main = rec.newRendition(MainRendition, "", mainTracks)
	rec.replay()
}

// pickPrimary returns the video track whose buffer holds a keyframe with
// parameter sets, preferring the camera, and the keyframe's position.
func (rec *recording) pickPrimary() (*trackState, int) {
	var best *trackState
	bestAt := 0
	for _, ts := range rec.order {
		if ts.rt.t.Kind() != sfu.KindVideo {
			continue
		}
		for i, au := range ts.buf {
			if au.key && hasParams(au.nalus) {
				if best == nil || ts.rt.local == "video" {
					best, bestAt = ts, i
				}
				break
			}
		}
	}
	return best, bestAt
}

func (rec *recording) firstAudio() (*trackState, int) {
	for _, ts := range rec.order {
		if ts.rt.t.Kind() == sfu.KindAudio && len(ts.buf) > 0 {
			return ts, 0
		}
	}
	return nil, 0
}

// hasParams tells whether an access unit carries both an SPS and a PPS.
func hasParams(nalus [][]byte) bool {
	sps, pps := paramSets(nalus)
	return sps != nil && pps != nil
}

// replay feeds the buffered access units of every track, in time order.
func (rec *recording) replay() {
	for {
		var next *trackState
		var nextT float64
		for _, ts := range rec.order {
			if len(ts.buf) == 0 {
				continue
			}
			t := float64(ts.buf[0].ticks) / float64(ts.rt.t.Codec().ClockRate)
			if next == nil || t < nextT {
				next, nextT = ts, t
			}
		}
		if next == nil {
			for _, ts := range rec.order {
				ts.buf = nil
			}
			rec.held = arena{} // nothing refers to it any more
			return
		}
		au := next.buf[0]
		next.buf = next.buf[1:]
		rec.write(next, au)
	}
}

// write routes an access unit to its rendition, creating renditions for video
// tracks that appear after the start.
func (rec *recording) write(ts *trackState, au accessUnit) {
	if ts.ignored {
		return
	}
	if ts.rend == nil {
		if ts.rt.t.Kind() != sfu.KindVideo {
			rec.log.Warn("audio track appeared after the recording started; not recorded", "track", ts.rt.t.Name())
			ts.ignored = true
			return
		}
		name := sanitize(ts.rt.local)
		if name == MainRendition {
			name = "video-" + name
		}
		rec.newRendition(name, name+"/", []*trackState{ts})
	}
	if err := ts.rend.write(ts.mt, au); err != nil {
		rec.log.Error("mux", "track", ts.rt.t.Name(), "err", err)
	}
}

// newRendition creates a rendition whose first track is its primary.
func (rec *recording) newRendition(name, dir string, tracks []*trackState) *rendition {
	rend := &rendition{name: name, dir: dir, sink: rec}
	for i, ts := range tracks {
		mt := rec.newMuxTrack(ts, i)
		ts.mt, ts.rend = mt, rend
		rend.tracks = append(rend.tracks, mt)
	}
	rend.primary = rend.tracks[0]
	rend.target = int64(rec.r.cfg.SegmentDuration) * rend.primary.rate / int64(time.Second)
	rec.rends = append(rec.rends, rend)
	return rend
}

func (rec *recording) newMuxTrack(ts *trackState, n int) *muxTrack {
	c := ts.rt.t.Codec()
	mt := &muxTrack{
		name: ts.rt.t.Name(), id: trackID(ts.rt.local, n), rate: int64(c.ClockRate),
		video: ts.rt.t.Kind() == sfu.KindVideo, requestKey: ts.rt.t.RequestKeyframe,
	}
	mt.zero = rec.zeroNanos * mt.rate / int64(time.Second)
	switch {
	case ts.rt.aac != nil:
		mt.channels = ts.rt.aac.config.ChannelCount
		mt.codec = &mp4.CodecMPEG4Audio{Config: ts.rt.aac.config}
	case !mt.video:
		mt.channels = int(c.Channels)
		if mt.channels <= 0 {
			mt.channels = 2
		}
		mt.codec = &mp4.CodecOpus{ChannelCount: mt.channels}
	}
	return mt
}

// trackID gives each local track name a stable MP4 track ID.
func trackID(local string, n int) int {
	switch local {
	case "video":
		return 1
	case "screen":
		return 2
	case "audio":
		return 3
	}
	return 10 + n
}

// finish writes the last segments and queues the finalisation.
func (rec *recording) finish() {
	if !rec.started {
		rec.tryStart(true)
	}
	if !rec.started {
		rec.log.Info("publication ended before any media could be recorded")
		return
	}
	var gaps []gap
	for _, rend := range rec.rends {
		if err := rend.finish(); err != nil {
			rec.log.Error("mux", "rendition", rend.name, "err", err)
		}
		gaps = append(gaps, rend.gaps...)
	}
	if rec.up == nil {
		return
	}
	end := time.Now()
	rec.endMarks()
	if err := rec.jour.append(journalEntry{Op: opEnd, Time: end, Gaps: gaps}); err != nil {
		rec.log.Warn("journal", "err", err)
	}
	rec.up.enqueue(upItem{kind: upFinal, end: end, gaps: gaps})
	rec.r.metrics.active.Add(-1)
}

// begin creates the recording's identity, spool directory, journal and uploader.
func (rec *recording) begin() {
	start := rec.epochWall.Add(time.Duration(rec.zeroNanos))
	rec.id = newRecordingID(rec.session, rec.pub, start)
	rec.prefix = "recordings/" + sanitize(rec.session) + "/" + rec.id + "/"
	rec.dir = filepath.Join(rec.r.cfg.SpoolDir, rec.id)
	rec.log = rec.log.With("recording", rec.id)
	title := ""
	if rec.r.cfg.Title != nil {
		title = rec.r.cfg.Title(rec.session)
	}
	meta := Meta{ID: rec.id, Session: rec.session, Title: title, Publication: rec.pub, Role: roleOf(rec.pub), Status: StatusRecording,
		StartedAt: start, Prefix: rec.prefix, Renditions: []RenditionInfo{}, Codecs: []string{}}
	if err := os.MkdirAll(rec.dir, 0o755); err != nil {
		rec.fail(err)
		return
	}
	j, err := openJournal(filepath.Join(rec.dir, journalName))
	if err == nil {
		err = j.append(journalEntry{Op: opStart, Meta: &meta})
		if err != nil {
			j.close()
		}
	}
	if err != nil {
		rec.fail(err)
		return
	}
	rec.jour = j
	rec.up = newUploader(rec.r, rec.dir, j, meta)
	rec.r.startUploader(rec.id, rec.up)
	rec.r.index.put(meta.summary())
	rec.up.enqueue(upItem{kind: upMeta})
	rec.beginMarks(start)
	rec.r.metrics.active.Add(1)
	rec.log.Info("recording started")
}

func (rec *recording) fail(err error) {
	rec.failed = true
	rec.r.noteSpoolError(0, err)
	rec.r.metrics.segmentsDropped.Add(1)
	rec.log.Error("recording impossible: the spool directory is unusable; media is discarded", "err", err)
}

// newRecordingID returns an id that is unique, sortable within a session and safe
// in URLs, file names and object keys: {session}-{publication}-{yyyymmdd}-{hhmmss}-{random}.
func newRecordingID(session, pub string, start time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return sanitize(session) + "-" + sanitize(pub) + "-" + start.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// sanitize keeps [a-z0-9_-] and replaces anything else with '-'.
func sanitize(s string) string {
	s = strings.ToLower(s)
	out := []byte(s)
	for i := range out {
		c := out[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			out[i] = '-'
		}
	}
	if len(out) == 0 {
		return "x"
	}
	return string(out)
}

// header describes a rendition for the journal and meta.json.
func (rec *recording) header(rend *rendition) *RenditionInfo {
	info := &RenditionInfo{Name: rend.name, Dir: rend.dir, Timescale: rend.primary.rate, PrimaryID: rend.primary.id,
		Offset: float64(rend.first) / float64(rend.primary.rate), Tracks: []TrackInfo{}}
	for _, t := range rend.tracks {
		if t.codec == nil {
			continue
		}
		ti := TrackInfo{ID: t.id, Name: t.name, Kind: "audio", Codec: codecString(t.codec), Channels: t.channels}
		if c, ok := t.codec.(*mp4.CodecH264); ok {
			ti.Kind = "video"
			var sps h264.SPS
			if sps.Unmarshal(c.SPS) == nil {
				ti.Width, ti.Height = sps.Width(), sps.Height()
			}
		}
		info.Tracks = append(info.Tracks, ti)
	}
	return info
}

// initReady implements renditionSink.
func (rec *recording) initReady(rend *rendition, data []byte) error {
	if rec.failed {
		return nil
	}
	hdr := rec.header(rend)
	if err := rec.spoolWrite(rend.dir+initName(rend.init), data, journalEntry{Op: opInit, Rendition: hdr, Init: rend.init}); err != nil {
		rec.badInit[rend] = true
		rec.dropped(rend, 0, err)
		return nil
	}
	rec.badInit[rend] = false
	rec.up.enqueue(upItem{kind: upInit, rend: hdr, init: rend.init})
	return nil
}

// segmentReady implements renditionSink.
func (rec *recording) segmentReady(rend *rendition, s segment) error {
	if rec.failed {
		rec.r.metrics.segmentsDropped.Add(1)
		return nil
	}
	sr := segmentRecord{N: s.N, Init: s.Init, Start: s.Start, Duration: s.Duration, Size: int64(len(s.Data)), Discontinuity: rec.disc[rend]}
	if rec.badInit[rend] { // nothing could play it
		rec.r.metrics.segmentsDropped.Add(1)
		if rend.init > 0 { // the segments of the earlier inits are listed: this one keeps its place
			rec.disc[rend] = true
			rec.keepPlace(rend, sr)
		}
		return nil
	}
	if err := rec.spoolWrite(rend.dir+segmentFile(s.N), s.Data, journalEntry{Op: opSegment, Name: rend.name, Segment: &sr}); err != nil {
		rec.disc[rend] = true
		rec.dropped(rend, s.N, err)
		rec.keepPlace(rend, sr)
		return nil
	}
	rec.disc[rend] = false
	rec.r.metrics.segmentsWritten.Add(1)
	rec.up.enqueue(upItem{kind: upSegment, name: rend.name, seg: sr})
	return nil
}

// keepPlace records a lost segment in the timeline: the playlist gets a gap of
// its duration (replay time stays wall-clock time) and meta.json counts it. The
// journal line is best effort: the spool may be the very thing that fails.
func (rec *recording) keepPlace(rend *rendition, sr segmentRecord) {
	sr.Size, sr.Lost, sr.Discontinuity = 0, true, false
	if err := rec.jour.append(journalEntry{Op: opLost, Name: rend.name, Segment: &sr}); err != nil {
		rec.log.Warn("journal", "err", err)
	}
	rec.up.enqueue(upItem{kind: upLost, name: rend.name, seg: sr})
}

// spoolWrite writes a file of the recording to the spool, journaling entry once
// the data is durable and before the file appears under its name.
func (rec *recording) spoolWrite(rel string, data []byte, entry journalEntry) error {
	n := int64(len(data))
	if err := rec.r.spool.reserve(n); err != nil {
		rec.r.noteSpoolError(n, err)
		return err
	}
	path := filepath.Join(rec.dir, filepath.FromSlash(rel))
	if err := writeFile(path, data, func() error { return rec.jour.append(entry) }); err != nil {
		rec.r.spool.release(n)
		err = fmt.Errorf("spool %s: %w", rel, err)
		rec.r.noteSpoolError(n, err)
		return err
	}
	rec.r.health.spoolWrote()
	return nil
}

// dropped accounts a segment (or init, n = 0) lost before the spool; the live
// stream goes on.
func (rec *recording) dropped(rend *rendition, n int, err error) {
	rec.r.metrics.segmentsDropped.Add(1)
	if errors.Is(err, ErrSpoolFull) {
		rec.r.metrics.spoolFull.Add(1)
	}
	rec.drops++
	if rec.drops == 1 || rec.drops%10 == 0 {
		rec.log.Error("recording segment lost", "rendition", rend.name, "segment", n, "lost_so_far", rec.drops, "err", err)
	}
}

// startUploader runs an uploader goroutine for the recording id until its
// finalisation (or a hard stop).
func (r *Recorder) startUploader(id string, up *uploader) {
	r.mu.Lock()
	r.uploaders[id] = up
	r.mu.Unlock()
	r.recWG.Add(1)
	go func() {
		defer r.recWG.Done()
		up.run(r.hard)
		up.jour.close()
		r.mu.Lock()
		delete(r.uploaders, id)
		r.mu.Unlock()
	}()
}
