package recorder

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// keyframeLead is how long before a segment reaches its target duration the
// recorder asks the publisher for a keyframe: WebRTC encoders send keyframes only
// when asked, and a segment can only end at one.
const keyframeLeadSeconds = 0.5

// segment is a finished media segment of a rendition: one moof+mdat.
type segment struct {
	N        int    // 1-based sequence number, also the mfhd sequence number
	Init     int    // the rendition's init segment it needs: 0 is init.mp4, k init-k.mp4
	Start    int64  // in primary-track ticks since the recording's zero
	Duration int64  // in primary-track ticks
	Data     []byte // the fMP4 fragment
}

// renditionSink receives what a rendition produces, on the mux goroutine.
type renditionSink interface {
	// initReady is called before the first segment with the init segment, and
	// again before the first segment of new video parameters (r.init counts
	// them: 0 is the first).
	initReady(r *rendition, data []byte) error
	// segmentReady is called for each finished segment, in order.
	segmentReady(r *rendition, s segment) error
}

// muxTrack is one track inside a rendition.
type muxTrack struct {
	name       string // sfu track name
	id         int    // MP4 track ID, stable per local name (see trackID)
	rate       int64  // timescale: the RTP clock rate
	video      bool
	channels   int
	zero       int64 // the recording's zero in this track's ticks
	requestKey func()

	codec mp4.Codec // nil until the parameter sets are known
	// next is a video codec whose parameter sets change the picture's shape
	// (sameShape) from codec's: the next keyframe of the primary track cuts a
	// segment there and writes a new init segment with it.
	next    mp4.Codec
	started bool
	dts     h264.DTSExtractor
	lastDTS int64

	sps   []byte   // the last SPS, kept for the DTS extractor (which holds on to it)
	nalus [][]byte // scratch list of NAL units

	pending     sample // video: waiting for the next one to know its duration
	pendingData []byte // its AVCC data; reused
	hasPending  bool
	pendingDTS  int64
	lastDur     int64
	nextDTS     int64 // audio: where the next packet goes

	// The current segment's samples and their data (this track's part of the
	// mdat, in order). The access units' memory belongs to the track readers and
	// is reused once the mux has handled them, so the data is copied here; both
	// are reused from segment to segment.
	samples []sample
	data    []byte
	base    int64 // decode time of samples[0]

	// What flush hands to mediacommon's fMP4 writer; reused.
	partTrack   fmp4.PartTrack
	partSamples []fmp4.Sample
	partPtrs    []*fmp4.Sample
}

// sample is one sample of the segment being collected; its data is in its
// track's data.
type sample struct {
	dur     uint32
	size    uint32
	cto     int32 // composition time offset: PTS - DTS
	nonSync bool
}

// rendition muxes a primary track (which decides where segments are cut) and
// optional other tracks into fMP4: an init segment and media segments cut at the
// first primary keyframe at least target after the segment start (audio-only:
// at the first packet after target).
type rendition struct {
	segBuf  seekablebuffer.Buffer // the segment being marshalled; reused
	part    fmp4.Part             // the segment's description; its slices reused
	name    string                // "main" or the video track's local name ("screen")
	dir     string                // key and spool subdirectory: "" or "screen/"
	primary *muxTrack
	tracks  []*muxTrack
	target  int64 // in primary ticks
	sink    renditionSink

	initDone bool
	init     int  // the current init segment: 0 is init.mp4, k is init-k.mp4
	open     bool // a segment is being collected
	seq      int
	first    int64 // start of the first segment, in primary ticks
	segStart int64
	end      int64 // end of the last primary sample
	gaps     []gap
	silences int // filler audio packets inserted in gaps
}

// gap is a stretch of the recording without media (a publisher reconnecting,
// lost packets, a timestamp jump).
type gap struct {
	At       float64 `json:"at"`       // seconds from the recording's start
	Duration float64 `json:"duration"` // seconds
	Track    string  `json:"track"`
}

// maxGaps bounds the gaps kept per rendition (meta.json stays small).
const maxGaps = 100

// minGapSeconds is the shortest pause reported as a gap.
const minGapSeconds = 0.5

func (r *rendition) addGap(t *muxTrack, at, dur int64) {
	if float64(dur)/float64(t.rate) < minGapSeconds || len(r.gaps) >= maxGaps {
		return
	}
	r.gaps = append(r.gaps, gap{At: float64(at) / float64(t.rate), Duration: float64(dur) / float64(t.rate), Track: t.name})
}

// write adds one access unit of t, a track of r.
func (r *rendition) write(t *muxTrack, au accessUnit) error {
	pts := au.ticks - t.zero
	if pts < 0 {
		return nil // before the recording's zero
	}
	if t.video {
		return r.writeVideo(t, au, pts)
	}
	return r.writeAudio(t, au, pts)
}

func (r *rendition) writeVideo(t *muxTrack, au accessUnit, pts int64) error {
	if !t.started {
		if !au.key || !t.learnParams(au.nalus) {
			t.requestKey()
			return nil
		}
		t.started = true
		t.dts.Initialize()
		t.lastDTS = pts - 1
	} else if au.key {
		t.learnParams(au.nalus)
	}
	dts, err := t.dts.Extract(t.stableSPS(au.nalus), pts)
	if err != nil || dts > pts {
		dts = pts
	}
	if dts <= t.lastDTS {
		dts = t.lastDTS + 1
	}
	t.lastDTS = dts
	if t.hasPending {
		d := dts - t.pendingDTS
		if d > t.rate && t == r.primary {
			r.addGap(t, t.pendingDTS, d)
		}
		t.pending.dur = uint32(d)
		t.lastDur = d
		r.add(t, t.pending, t.pendingData, t.pendingDTS)
		t.hasPending = false
	}
	if t == r.primary && au.key && (!r.open || t.next != nil || dts-r.segStart >= r.target) {
		if err := r.cut(dts); err != nil {
			return err
		}
	}
	if !r.open {
		return nil // a secondary track before the first primary keyframe
	}
	t.pendingData = t.pendingData[:0]
	for _, nalu := range au.nalus { // AVCC: each NAL unit after its length
		t.pendingData = binary.BigEndian.AppendUint32(t.pendingData, uint32(len(nalu)))
		t.pendingData = append(t.pendingData, nalu...)
	}
	t.pending = sample{cto: int32(max(pts-dts, 0)), nonSync: !au.key}
	t.hasPending, t.pendingDTS = true, dts
	if t == r.primary && float64(dts-r.segStart)/float64(t.rate) >= float64(r.target)/float64(t.rate)-keyframeLeadSeconds {
		t.requestKey() // rate-limited by the track
	}
	return nil
}

// stableSPS returns nalus, with its SPS (if any) replaced by a copy that stays
// valid: the DTS extractor keeps the last SPS to compare it with the next one, and
// the access units' memory is reused.
func (t *muxTrack) stableSPS(nalus [][]byte) [][]byte {
	for i, n := range nalus {
		if h264.NALUType(n[0]&0x1f) != h264.NALUTypeSPS {
			continue
		}
		if !bytes.Equal(n, t.sps) {
			t.sps = bytes.Clone(n)
		}
		t.nalus = append(t.nalus[:0], nalus...)
		t.nalus[i] = t.sps
		return t.nalus
	}
	return nalus
}

// paramSets returns the (last) SPS and PPS among an access unit's NAL units;
// nil for those it has none of.
func paramSets(nalus [][]byte) (sps, pps []byte) {
	for _, n := range nalus {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = n
		case h264.NALUTypePPS:
			pps = n
		}
	}
	return sps, pps
}

// learnParams takes the SPS and PPS of a keyframe access unit; false when it has
// none and none are known.
//
// Changes that keep the picture's shape travel in-band (WebRTC and the RTSP edge
// send SPS and PPS before every IDR). A change of coded size or profile (the
// programme switching to a classroom's camera, a reconnect at another
// resolution) becomes next: players size the picture, and set up their decoder,
// from the init segment's avc1 box, so Chromium would squeeze a 16:9 picture
// into the 4:3 box of the first init.
func (t *muxTrack) learnParams(nalus [][]byte) bool {
	sps, pps := paramSets(nalus)
	if sps == nil || pps == nil {
		return t.codec != nil
	}
	cur, _ := t.codec.(*mp4.CodecH264)
	if cur != nil && bytes.Equal(cur.SPS, sps) { // the usual case: nothing to parse
		t.next = nil
		return true
	}
	var p h264.SPS
	if p.Unmarshal(sps) != nil {
		return t.codec != nil
	}
	switch {
	case cur == nil:
		// Copies: the access units' memory is reused.
		t.codec = &mp4.CodecH264{SPS: bytes.Clone(sps), PPS: bytes.Clone(pps)}
	case sameShape(cur.SPS, &p):
		t.next = nil
	case t.next == nil || !bytes.Equal(t.next.(*mp4.CodecH264).SPS, sps):
		t.next = &mp4.CodecH264{SPS: bytes.Clone(sps), PPS: bytes.Clone(pps)}
	}
	return true
}

// sameShape tells whether an SPS describes pictures a decoder set up by the
// SPS old (an init segment's) shows the same way: same coded size and
// cropping, profile, chroma format and bit depths.
func sameShape(old []byte, p *h264.SPS) bool {
	var o h264.SPS
	if o.Unmarshal(old) != nil {
		return false
	}
	return o.Width() == p.Width() && o.Height() == p.Height() && o.ProfileIdc == p.ProfileIdc &&
		o.ChromaFormatIdc == p.ChromaFormatIdc && o.BitDepthLumaMinus8 == p.BitDepthLumaMinus8 &&
		o.BitDepthChromaMinus8 == p.BitDepthChromaMinus8
}

func (r *rendition) writeAudio(t *muxTrack, au accessUnit, pts int64) error {
	if !t.started {
		t.started, t.nextDTS = true, pts
	}
	dur := au.dur
	switch {
	case pts < t.nextDTS-dur: // overlaps what is written: a timestamp step back
		return nil
	case pts > t.nextDTS: // lost packets or a pause: fill with silence so players keep going
		if r.open {
			r.addGap(t, t.nextDTS, pts-t.nextDTS)
			r.fillGap(t, au.audio, pts)
		}
		t.nextDTS = pts
	}
	dts := t.nextDTS
	if t == r.primary && (!r.open || dts-r.segStart >= r.target) {
		if err := r.cut(dts); err != nil {
			return err
		}
	}
	t.nextDTS = dts + dur
	if !r.open {
		return nil
	}
	r.add(t, sample{dur: uint32(dur)}, au.audio, dts)
	return nil
}

// fillGap keeps an audio track continuous from t.nextDTS to until (lost packets,
// a pause): Opus gets silent packets; AAC, which has no codec-independent silent
// frame, gets its last sample stretched over the gap (players decode the frame and
// keep time by the sample durations). Without samples in the segment yet, the
// segment's decode time (tfdt) already skips the gap.
func (r *rendition) fillGap(t *muxTrack, next []byte, until int64) {
	if _, ok := t.codec.(*mp4.CodecOpus); ok {
		r.fillSilence(t, next[0], until)
		return
	}
	if n := len(t.samples); n > 0 {
		t.samples[n-1].dur += uint32(until - t.nextDTS)
		if t == r.primary {
			r.end = until
		}
	}
	t.nextDTS = until
}

// fillSilence adds Opus packets without frames (RFC 6716 §3.2.1: a zero-length
// frame is silence or packet loss to the decoder) from t.nextDTS to until.
func (r *rendition) fillSilence(t *muxTrack, toc byte, until int64) {
	const frame = 960                 // 20 ms at 48 kHz
	silent := []byte{0xf8 | toc&0x04} // CELT FB 20 ms, keep the stereo flag, one frame
	for t.nextDTS+frame <= until {
		r.add(t, sample{dur: frame}, silent, t.nextDTS)
		t.nextDTS += frame
		r.silences++
	}
	if rest := until - t.nextDTS; rest > 0 && len(t.samples) > 0 {
		t.samples[len(t.samples)-1].dur += uint32(rest)
		t.nextDTS = until
	}
}

// add appends a sample with decode time dts and a copy of its data to the
// current segment.
func (r *rendition) add(t *muxTrack, s sample, data []byte, dts int64) {
	if !r.open {
		return
	}
	if len(t.samples) == 0 {
		t.base = dts
	}
	s.size = uint32(len(data))
	t.samples = append(t.samples, s)
	t.data = append(t.data, data...)
	if t == r.primary {
		r.end = dts + int64(s.dur)
	}
}

// cut ends the current segment at primary time at and opens the next one. The
// first cut writes the init segment; a cut at new video parameters (the
// primary's next) writes another one, which the segments from there on need.
func (r *rendition) cut(at int64) error {
	if r.open {
		if err := r.flush(at); err != nil {
			return err
		}
	}
	if p := r.primary; p.next != nil {
		p.codec, p.next = p.next, nil
		if r.initDone {
			r.init++
			r.initDone = false
		}
	}
	if !r.initDone {
		if r.init == 0 {
			r.first = at
		}
		data, err := r.initSegment()
		if err != nil {
			return err
		}
		if err := r.sink.initReady(r, data); err != nil {
			return err
		}
		r.initDone = true
	}
	r.open, r.segStart = true, at
	return nil
}

// flush emits the collected samples as segment r.seq+1 ending at end.
func (r *rendition) flush(end int64) error {
	r.part.Tracks = r.part.Tracks[:0]
	for _, t := range r.tracks {
		if len(t.samples) > 0 {
			r.part.Tracks = append(r.part.Tracks, t.partTrackOf())
		}
	}
	if len(r.part.Tracks) == 0 {
		return nil
	}
	r.seq++
	r.part.SequenceNumber = uint32(r.seq)
	// One buffer per rendition, reused: a segment is written to the spool before
	// segmentReady returns, and a 2.5 Mbit/s segment is over a megabyte to clear and
	// collect each time otherwise.
	r.segBuf.Reset()
	err := r.part.Marshal(&r.segBuf)
	for _, t := range r.tracks {
		t.samples, t.data = t.samples[:0], t.data[:0]
	}
	if err != nil {
		return fmt.Errorf("rendition %s: segment %d: %w", r.name, r.seq, err)
	}
	return r.sink.segmentReady(r, segment{N: r.seq, Init: r.init, Start: r.segStart, Duration: end - r.segStart, Data: r.segBuf.Bytes()})
}

// partTrackOf describes the track's samples of the current segment for
// mediacommon's fMP4 writer; the payloads are slices of t.data.
func (t *muxTrack) partTrackOf() *fmp4.PartTrack {
	t.partSamples = t.partSamples[:0]
	t.partPtrs = t.partPtrs[:0]
	off := uint32(0)
	for _, s := range t.samples {
		t.partSamples = append(t.partSamples, fmp4.Sample{
			Duration: s.dur, PTSOffset: s.cto, IsNonSyncSample: s.nonSync,
			Payload: t.data[off : off+s.size : off+s.size],
		})
		off += s.size
	}
	for i := range t.partSamples {
		t.partPtrs = append(t.partPtrs, &t.partSamples[i])
	}
	t.partTrack = fmp4.PartTrack{ID: t.id, BaseTime: uint64(t.base), Samples: t.partPtrs}
	return &t.partTrack
}

// finish writes what is left: the pending video samples (with the previous
// duration) and the last segment.
func (r *rendition) finish() error {
	if !r.open {
		return nil
	}
	for _, t := range r.tracks {
		if t.hasPending {
			d := t.lastDur
			if d <= 0 {
				d = t.rate / 30
			}
			t.pending.dur = uint32(d)
			r.add(t, t.pending, t.pendingData, t.pendingDTS)
			t.hasPending = false
		}
	}
	err := r.flush(r.end)
	r.open = false
	return err
}

// initSegment marshals the init segment (ftyp+moov) of the rendition's tracks.
func (r *rendition) initSegment() ([]byte, error) {
	var init fmp4.Init
	for _, t := range r.tracks {
		if t.codec == nil {
			continue
		}
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: t.id, TimeScale: uint32(t.rate), Codec: t.codec})
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("rendition %s: init: %w", r.name, err)
	}
	return buf.Bytes(), nil
}
