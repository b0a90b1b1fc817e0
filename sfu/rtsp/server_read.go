package rtsp

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"lectern/auth"
	"lectern/sfu"
)

// readTrack is one session track offered to an RTSP reader.
type readTrack struct {
	name  string
	kind  sfu.Kind
	codec sfu.Codec // as declared to the reader (H.264 with its parameter sets)
}

// describedOffer is what DESCRIBE told a client, kept for its SETUPs.
type describedOffer struct {
	session, publication string
	tracks               []readTrack
}

// readPlan lists the tracks a reader of t gets: the trainer's camera and audio for
// /{session}, every track of the publication (camera, screen, audio) for
// /{session}/{publication}.
func readPlan(hub *sfu.Session, t target) ([]readTrack, error) {
	pub, locals := t.publication, []string{"video", "screen", "audio"}
	if pub == "" {
		pub, locals = sfu.TrainerPublication, []string{"video", "audio"}
	}
	p, ok := hub.Publication(pub)
	if !ok {
		return nil, fmt.Errorf("%w: publication %q is not live in session %q", errNotFound, pub, t.session)
	}
	tracks := p.Tracks()
	var out []readTrack
	for _, local := range locals {
		for _, tr := range tracks {
			if tr.Name() == pub+"/"+local && !tr.Closed() {
				out = append(out, readTrack{name: tr.Name(), kind: tr.Kind(), codec: readerCodec(tr)})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: publication %q of session %q has no tracks yet", errNotFound, pub, t.session)
	}
	return out, nil
}

// readerCodec is the codec a reader is told: for H.264, with the parameter sets
// (sprop-parameter-sets) from the publisher's SDP or, failing that, from the track's
// last keyframe, so decoders can start before the first in-band SPS.
func readerCodec(t *sfu.Track) sfu.Codec {
	c := t.Codec()
	if c.MimeType != sfu.MimeH264 {
		return c
	}
	sps, pps := parseSprop(fmtpParam(c.Fmtp, "sprop-parameter-sets"))
	if sps == nil || pps == nil {
		sps, pps = probeParams(t)
	}
	c.Fmtp = h264Fmtp(fmtpParam(c.Fmtp, "profile-level-id"), sps, pps)
	return c
}

// paramProbe is a sink attached for a moment to read the SPS and PPS out of a
// track's keyframe cache (the fast start replays it synchronously in AddSink).
type paramProbe struct{ sps, pps []byte }

// errProbeDone stops the cache replay once both parameter sets were seen.
var errProbeDone = errors.New("parameter sets found")

func (p *paramProbe) WriteRTP(pkt *sfu.Packet) error {
	sps, pps := paramsIn(pkt.Payload)
	if sps != nil && p.sps == nil {
		p.sps = append([]byte(nil), sps...)
	}
	if pps != nil && p.pps == nil {
		p.pps = append([]byte(nil), pps...)
	}
	if p.sps != nil && p.pps != nil {
		return errProbeDone
	}
	return nil
}

func probeParams(t *sfu.Track) (sps, pps []byte) {
	p := &paramProbe{}
	remove := t.AddSink(p)
	remove()
	if p.sps == nil || p.pps == nil {
		return nil, nil
	}
	return p.sps, p.pps
}

// handleDescribe answers DESCRIBE: the SDP of the tracks the URL names.
func (c *serverConn) handleDescribe(req *request) reply {
	pq, err := urlPathQuery(req.url)
	if err != nil {
		return errorReply(req, err)
	}
	t, err := parseTarget(pq)
	if err != nil {
		return errorReply(req, err)
	}
	if err := c.check(req, t, "read", auth.LiveWatchRoles()...); err != nil {
		return errorReply(req, err)
	}
	hub, err := c.resolve(t)
	if err != nil {
		return errorReply(req, err)
	}
	tracks, err := readPlan(hub, t)
	if err != nil {
		return errorReply(req, err)
	}
	base := strings.TrimSuffix(req.url, "/") + "/"
	desc := make([]sdpTrack, len(tracks))
	for i, tr := range tracks {
		desc[i] = sdpTrack{codec: tr.codec, kind: tr.kind, pt: payloadTypeFor(tr.codec, i), control: base + "trackID=" + strconv.Itoa(i)}
	}
	c.offer = &describedOffer{session: t.session, publication: t.publication, tracks: tracks}
	res := &response{status: statusOK, body: buildSDP("Lectern", "", desc)}
	res.add("Content-Base", base)
	res.add("Content-Type", "application/sdp")
	return reply{res: res}
}

// splitTrackControl cuts the "/trackID=N" our SDP's control URLs end with from a
// SETUP URL's path and query: clients put it at the end of the path, or append it
// to the whole URL, after the query.
func splitTrackControl(pq string) (base string, idx int) {
	path, query, hasQuery := strings.Cut(pq, "?")
	if p, n, ok := cutTrackID(path); ok {
		if hasQuery {
			return p + "?" + query, n
		}
		return p, n
	}
	if q, n, ok := cutTrackID(query); ok && hasQuery {
		return path + "?" + q, n
	}
	return pq, -1
}

func cutTrackID(s string) (string, int, bool) {
	i := strings.LastIndex(s, "/trackID=")
	if i < 0 {
		return s, -1, false
	}
	n, err := strconv.Atoi(s[i+len("/trackID="):])
	if err != nil || n < 0 {
		return s, -1, false
	}
	return s[:i], n, true
}

// handleSetupPlay answers a reader's SETUP of one track.
func (c *serverConn) handleSetupPlay(req *request) reply {
	pq, err := urlPathQuery(req.url)
	if err != nil {
		return errorReply(req, err)
	}
	base, idx := splitTrackControl(pq)
	t, err := parseTarget(base)
	if err != nil {
		return errorReply(req, err)
	}
	if err := c.check(req, t, "read", auth.LiveWatchRoles()...); err != nil {
		return errorReply(req, err)
	}
	ss := c.sess
	if ss != nil && (ss.playing || ss.target.session != t.session || ss.target.publication != t.publication) {
		return errorReply(req, fmt.Errorf("%w: SETUP of another stream while this session plays or reads another one", errState))
	}
	hub, err := c.resolve(t)
	if err != nil {
		return errorReply(req, err)
	}
	tracks, err := c.offerFor(hub, t)
	if err != nil {
		return errorReply(req, err)
	}
	if idx < 0 && len(tracks) == 1 {
		idx = 0
	}
	if idx < 0 || idx >= len(tracks) {
		return errorReply(req, fmt.Errorf("%w: no track %d (the SDP lists %d)", errNotFound, idx, len(tracks)))
	}
	tr, err := c.chooseTransport(req, false)
	if err != nil {
		return errorReply(req, err)
	}
	if ss == nil {
		ss = newConnSession(c, t, hub, false)
		ss.offer = tracks
		ss.readers = make([]*readerStream, len(tracks))
		c.sess = ss
	}
	if ss.readers[idx] != nil {
		return errorReply(req, fmt.Errorf("%w: track %d is set up already", errState, idx))
	}
	if !tr.tcp {
		ss.anyUDP = true
	} else if tr.interleaved[0] < 0 {
		tr.interleaved = [2]int{2 * idx, 2*idx + 1}
	}
	rs := newReaderStream(c, tracks[idx], payloadTypeFor(tracks[idx].codec, idx), tr, hub.Stats())
	ss.readers[idx] = rs
	tr.ssrc, tr.hasSSRC = rs.ssrc, true
	res := c.sessionResponse(statusOK)
	res.add("Transport", tr.String())
	return reply{res: res}
}

// offerFor returns the tracks DESCRIBE offered on this connection for t, or what it
// would offer now (a client may SETUP without DESCRIBE).
func (c *serverConn) offerFor(hub *sfu.Session, t target) ([]readTrack, error) {
	if o := c.offer; o != nil && o.session == t.session && o.publication == t.publication {
		return o.tracks, nil
	}
	if c.sess != nil && c.sess.offer != nil {
		return c.sess.offer, nil
	}
	return readPlan(hub, t)
}

// chooseTransport picks the first transport of the client's list the server can do
// and fills in the server's side.
func (c *serverConn) chooseTransport(req *request, record bool) (transport, error) {
	list, err := parseTransports(req.header.get("Transport"))
	if err != nil {
		return transport{}, err
	}
	for _, tr := range list {
		if tr.tcp {
			return transport{tcp: true, interleaved: tr.interleaved, record: record}, nil
		}
		if c.s.udp != nil && tr.clientPorts[0] > 0 {
			rtpPort, rtcpPort := c.s.udp.ports()
			return transport{interleaved: [2]int{-1, -1}, clientPorts: tr.clientPorts, serverPorts: [2]int{rtpPort, rtcpPort}, record: record}, nil
		}
	}
	if c.s.udp == nil {
		return transport{}, fmt.Errorf("%w: this server takes RTP/AVP/TCP (interleaved) only", errTransport)
	}
	return transport{}, fmt.Errorf("%w: want RTP/AVP/TCP, or RTP/AVP with client_port", errTransport)
}

// handlePlay starts the reader's streams, after the response is written.
func (c *serverConn) handlePlay(req *request) reply {
	ss := c.sess
	if ss == nil || ss.record {
		return errorReply(req, fmt.Errorf("%w: PLAY before SETUP", errState))
	}
	if ss.playing {
		return reply{res: c.sessionResponse(statusOK)}
	}
	release, err := ss.hub.AddSubscriber()
	if err != nil {
		return errorReply(req, err)
	}
	ss.releaseSub, ss.playing = release, true
	res := c.sessionResponse(statusOK)
	res.add("Range", "npt=0.000-")
	c.log.Info("rtsp reader playing", "session", ss.target.session, "publication", ss.target.publication, "udp", ss.anyUDP)
	return reply{res: res, after: ss.startReaders}
}

// udpDest returns the reader's UDP destination for a client port.
func (c *serverConn) udpDest(port int) *net.UDPAddr {
	return &net.UDPAddr{IP: c.remote.Addr().AsSlice(), Port: port}
}
