package rtsp

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/rtcpsender"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	psdp "github.com/pion/sdp/v3"

	"lectern/sfu"
)

// streamKey names what a reader URL serves: /{session} (publication "") or
// /{session}/{publication}.
type streamKey struct{ session, publication string }

// pubStream is the gortsplib ServerStream of one (session, publication) URL, shared
// by all its readers (gortsplib fans each packet out to their write queues). While
// it has readers, one feed per track follows the session track of its name (the
// first, then the same name's track of a later publication) through an sfu.Queue
// and writes the packets to the stream. When the publication's codecs change, the
// stream is closed (its readers are let go, to DESCRIBE again) and a new one made.
type pubStream struct {
	s      *Server
	key    streamKey
	hub    *sfu.Session
	tracks []readTrack
	stream *gortsplib.ServerStream
	// directStream is what TCP readers are set up on: gortsplib answers their
	// requests and sends their RTCP; their RTP is appended by the feeds (direct).
	directStream *gortsplib.ServerStream
	direct       atomic.Pointer[[]*directReader]
	feeds        []*trackFeed

	playing atomic.Int64 // readers that played: what each packet is sent to, for the stats
	// streamReaders counts the reader sessions set up on stream (not direct): the
	// feeds write to it only while there are some (each write costs gortsplib an
	// allocation, a marshal and its sender report's bookkeeping).
	streamReaders atomic.Int32

	mu            sync.Mutex
	readers       int
	closed        bool
	ctx           context.Context
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	stopFollowing func()
}

// streamFor returns the stream of t, making it (or remaking it, when the tracks or
// their codecs changed) from the publication's tracks.
func (s *Server) streamFor(hub *sfu.Session, t target) (*pubStream, error) {
	tracks, err := readPlan(hub, t)
	if err != nil {
		return nil, err
	}
	key := streamKey{t.session, t.publication}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	old := s.streams[key]
	if old != nil && old.hub == hub && sameTracks(old.tracks, tracks) {
		s.mu.Unlock()
		return old, nil
	}
	delete(s.streams, key)
	s.mu.Unlock()
	if old != nil {
		s.log.Info("rtsp stream changed; its readers start again", "session", t.session, "publication", t.publication)
		old.close()
	}
	ps, err := s.newPubStream(hub, key, tracks)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if cur := s.streams[key]; cur != nil || s.closed { // another request made one meanwhile
		s.mu.Unlock()
		ps.close()
		if cur == nil {
			return nil, ErrClosed
		}
		return cur, nil
	}
	s.streams[key] = ps
	s.mu.Unlock()
	return ps, nil
}

// sameTracks reports whether a and b declare the same tracks with the same codecs
// (parameter sets aside: they may be learnt later).
func sameTracks(a, b []readTrack) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i].codec, b[i].codec
		if a[i].name != b[i].name || x.MimeType != y.MimeType || x.ClockRate != y.ClockRate || x.Channels != y.Channels ||
			x.MimeType == sfu.MimeAAC && x.Fmtp != y.Fmtp {
			return false
		}
	}
	return true
}

func (s *Server) newPubStream(hub *sfu.Session, key streamKey, tracks []readTrack) (*pubStream, error) {
	desc := &description.Session{Title: "Lectern"}
	ps := &pubStream{s: s, key: key, hub: hub, tracks: tracks}
	for i, tr := range tracks {
		pt := payloadTypeFor(tr.codec, i)
		forma, err := formatOf(tr.codec, pt)
		if err != nil {
			return nil, fmt.Errorf("rtsp: track %s: %w", tr.name, err)
		}
		medi := &description.Media{Type: description.MediaType(tr.kind.String()), Formats: []format.Format{forma}}
		desc.Medias = append(desc.Medias, medi)
		f := &trackFeed{ps: ps, want: tr, media: medi, pt: pt, idx: i,
			queue: sfu.NewQueue(sfu.QueueOptions{Size: s.cfg.QueueSize, Kind: tr.kind, Stats: hub.Stats()})}
		f.follow = sfu.NewFollower(tr.name, f.queue, f.accepts)
		ps.feeds = append(ps.feeds, f)
	}
	ps.stream = &gortsplib.ServerStream{Server: s.gs, Desc: desc}
	if err := ps.stream.Initialize(); err != nil {
		return nil, fmt.Errorf("rtsp: stream: %w", err)
	}
	ps.directStream = &gortsplib.ServerStream{Server: s.gs, Desc: desc}
	if err := ps.directStream.Initialize(); err != nil {
		ps.stream.Close()
		return nil, fmt.Errorf("rtsp: stream: %w", err)
	}
	for _, f := range ps.feeds {
		f.sr = &rtcpsender.RTCPSender{ClockRate: int(f.want.codec.ClockRate), Period: 10 * time.Second, TimeNow: time.Now,
			WritePacketRTCP: func(pkt rtcp.Packet) { _ = ps.directStream.WritePacketRTCP(f.media, pkt) }}
		f.sr.Initialize()
	}
	return ps, nil
}

// formatOf returns the gortsplib format of a Lectern codec, through the SDP lines
// that declare it (gortsplib's own parser fills in the rest).
func formatOf(c sfu.Codec, pt uint8) (format.Format, error) {
	pts := strconv.Itoa(int(pt))
	md := &psdp.MediaDescription{MediaName: psdp.MediaName{Formats: []string{pts}}}
	if c.MimeType == sfu.MimeH264 || strings.HasPrefix(c.MimeType, "video/") {
		md.MediaName.Media = "video"
	} else {
		md.MediaName.Media = "audio"
	}
	md.Attributes = append(md.Attributes, psdp.Attribute{Key: "rtpmap", Value: pts + " " + rtpmap(c)})
	if c.Fmtp != "" {
		md.Attributes = append(md.Attributes, psdp.Attribute{Key: "fmtp", Value: pts + " " + c.Fmtp})
	}
	return format.Unmarshal(md, pts)
}

// payloadTypeFor returns the payload type readers see for a codec.
func payloadTypeFor(c sfu.Codec, i int) uint8 {
	switch c.MimeType {
	case sfu.MimePCMU:
		return 0
	case sfu.MimePCMA:
		return 8
	}
	return uint8(96 + i)
}

// rtpmap returns the a=rtpmap encoding of c, e.g. "H264/90000", "opus/48000/2".
func rtpmap(c sfu.Codec) string {
	_, name, _ := strings.Cut(c.MimeType, "/")
	s := fmt.Sprintf("%s/%d", name, c.ClockRate)
	if c.MimeType == sfu.MimeOpus {
		return s + "/2"
	}
	if c.Channels > 1 {
		s += "/" + strconv.Itoa(int(c.Channels))
	}
	return s
}

// addReader counts a reader session in; the first starts the feeds. It returns
// false when the stream was closed meanwhile.
func (ps *pubStream) addReader() bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		return false
	}
	ps.readers++
	if ps.readers == 1 {
		ps.startFeeds()
	}
	return true
}

// removeReader counts a reader session out; the last one closes the stream (the
// next reader makes a new one, from the tracks live then).
func (ps *pubStream) removeReader() {
	ps.mu.Lock()
	ps.readers--
	last := ps.readers == 0
	ps.mu.Unlock()
	if last {
		ps.remove()
	}
}

// remove takes the stream out of the server's (if it is still there, not
// already replaced by a newer one) and closes it.
func (ps *pubStream) remove() {
	ps.s.mu.Lock()
	if ps.s.streams[ps.key] == ps {
		delete(ps.s.streams, ps.key)
	}
	ps.s.mu.Unlock()
	ps.close()
}

// startFeeds starts one goroutine per track and follows the tracks by name. Called
// with mu held.
func (ps *pubStream) startFeeds() {
	ps.ctx, ps.cancel = context.WithCancel(ps.s.ctx)
	for _, f := range ps.feeds {
		ps.wg.Add(1)
		ps.s.wg.Add(1)
		go func() {
			defer ps.s.wg.Done()
			defer ps.wg.Done()
			f.run(ps.ctx)
		}()
	}
	followers := make([]*sfu.Follower, len(ps.feeds))
	for i, f := range ps.feeds {
		followers[i] = f.follow
	}
	ps.stopFollowing = sfu.Follow(ps.hub, followers...)
}

// closeChanged closes the stream because track t's codec differs from the
// declared one: readers cannot change codec mid-session.
func (ps *pubStream) closeChanged(t *sfu.Track) {
	ps.s.log.Info("rtsp reader: track changed codec; its readers start again", "track", t.Name(), "codec", t.Codec().MimeType)
	ps.remove()
}

// close stops the feeds and closes the gortsplib stream, which closes its readers'
// sessions. Idempotent.
func (ps *pubStream) close() {
	ps.mu.Lock()
	if ps.closed {
		ps.mu.Unlock()
		return
	}
	ps.closed = true
	cancel, stopFollowing := ps.cancel, ps.stopFollowing
	ps.mu.Unlock()
	if stopFollowing != nil {
		stopFollowing()
	}
	if cancel != nil {
		cancel()
	}
	ps.wg.Wait()
	for _, f := range ps.feeds {
		f.queue.Drain()
	}
	ps.stream.Close()
	ps.directStream.Close()
	for _, f := range ps.feeds {
		f.sr.Close()
	}
}

// requestKeyframes asks the video tracks for a keyframe.
func (ps *pubStream) requestKeyframes() {
	for _, f := range ps.feeds {
		if t := f.follow.Track(); t != nil && f.want.kind == sfu.KindVideo {
			t.RequestKeyframe()
		}
	}
}

// trackFeed writes one session track to a pubStream. Its sfu.Queue is the track's
// sink (never blocks the publisher; drops video until the next keyframe when the
// feed falls behind); its goroutine rewrites the header (the declared payload type;
// sequence numbers and timestamps continuous across drops and a change of source
// track) and hands the packet to gortsplib, which copies it into each reader's
// queue before WritePacketRTP returns (so the pooled packet is released then).
type trackFeed struct {
	ps     *pubStream
	want   readTrack
	media  *description.Media
	pt     uint8
	queue  *sfu.Queue
	follow *sfu.Follower // the session track feeding queue

	idx        int                    // of media in the stream
	directSSRC atomic.Uint32          // of directStream's format, learnt from a SETUP answer
	sr         *rtcpsender.RTCPSender // TCP readers' sender reports, and their RTP-Info
	frame      []byte                 // the interleaved frame of out (feed goroutine only)
	// The UDP readers' batch (feed goroutine only): the packets taken since the
	// last flush, marshalled into udpArena, and the messages that send them.
	udpPkts  [][]byte
	udpArena []byte
	udpOut   udpOut
	// udpKeyFirst: the batch starts with a keyframe's first packet, where a UDP
	// reader waiting for one resumes; udpWaiting: one waited at the last flush.
	udpKeyFirst bool
	udpWaiting  bool
	// The TCP readers' connections appended to and not yet handed to their
	// writers, and the bytes appended since (feed goroutine only).
	notify      []*lecternConn
	notifyBytes int

	rw  sfu.Rewriter // feed goroutine only
	out rtp.Packet
}

// accepts is the follower's vetting of a source track: one whose codec is not the
// declared one closes the stream, since readers cannot change codec mid-session.
func (f *trackFeed) accepts(t *sfu.Track) bool {
	if c := t.Codec(); c.MimeType != f.want.codec.MimeType || c.ClockRate != f.want.codec.ClockRate {
		ps := f.ps
		ps.s.mu.Lock()
		if !ps.s.closed { // Close closes the stream itself, after this goroutine
			ps.s.wg.Add(1)
			go func() { // not from inside the session's Watch callback
				defer ps.s.wg.Done()
				ps.closeChanged(t)
			}()
		}
		ps.s.mu.Unlock()
		return false
	}
	return true
}

// run writes queued packets to the stream until ctx is done. It takes every
// packet already queued before it flushes the direct readers' batch: never
// waiting for more, so batching adds no delay.
func (f *trackFeed) run(ctx context.Context) {
	defer f.queue.Drain()
	for {
		item, ok := f.queue.Next(ctx)
		if !ok {
			return
		}
		for ok {
			if !f.write(item) {
				f.flush()
				return // the stream is closed
			}
			item, ok = f.queue.TryNext()
		}
		f.flush()
	}
}

// write sends one queued packet to the stream and the direct readers (UDP ones:
// into the batch); false when the stream is closed.
func (f *trackFeed) write(item sfu.QueueItem) bool {
	clock := f.want.codec.ClockRate
	p := item.Packet
	switch item.Resync {
	case sfu.ResyncDrop:
		f.rw.ResyncSeq()
	case sfu.ResyncSwitch:
		f.rw.Resync()
	}
	seq, ts := f.rw.Rewrite(p.Header.SequenceNumber, p.Header.Timestamp, clock, p.ArrivalNanos)
	// A copy: gortsplib sets its own SSRC in the packet it is given.
	f.out.Header = rtp.Header{Version: 2, Marker: p.Header.Marker, PayloadType: f.pt, SequenceNumber: seq, Timestamp: ts}
	f.out.Payload = p.Payload
	n := len(p.Payload)
	ntp := time.Now().Add(-time.Duration(sfu.Nanotime() - p.ArrivalNanos))
	var err error
	if f.ps.streamReaders.Load() > 0 {
		err = f.ps.stream.WritePacketRTPWithNTP(f.media, &f.out, ntp)
	}
	if err == nil {
		f.writeDirect(p.KeyframeStart, ntp)
	}
	f.out.Payload = nil
	p.Release()
	if err != nil {
		return false
	}
	if readers := uint64(f.ps.playing.Load()); readers > 0 {
		stats := f.ps.hub.Stats()
		stats.PacketsOut.Add(readers)
		stats.BytesOut.Add(readers * uint64(n))
	}
	return true
}
