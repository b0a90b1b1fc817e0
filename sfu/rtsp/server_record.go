package rtsp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"lectern/auth"
	"lectern/sfu"
)

// handleAnnounce takes a publisher's SDP. It only checks and remembers it: nothing
// is created in the session before RECORD, so a publisher that fails half-way
// leaves nothing behind.
func (c *serverConn) handleAnnounce(req *request) reply {
	pq, err := urlPathQuery(req.url)
	if err != nil {
		return errorReply(req, err)
	}
	t, err := parseTarget(pq)
	if err != nil {
		return errorReply(req, err)
	}
	if t.publication != "" {
		return errorReply(req, fmt.Errorf("%w: publish to rtsp://host/%s (the encoder becomes the session's trainer)", errNotFound, t.session))
	}
	if err := c.check(req, t, "publish", auth.RoleTrainer); err != nil {
		return errorReply(req, err)
	}
	if c.sess != nil {
		return errorReply(req, fmt.Errorf("%w: this connection already has an RTSP session", errState))
	}
	if ct := req.header.get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/sdp") {
		return errorReply(req, fmt.Errorf("%w: ANNOUNCE body is %q, want application/sdp", ErrBadSDP, truncate(ct, 40)))
	}
	hub, err := c.resolve(t)
	if err != nil {
		return errorReply(req, err)
	}
	desc, err := parseSDP(req.body)
	if err != nil {
		return errorReply(req, err)
	}
	plans, skipped, err := planMedias(desc)
	if err != nil {
		c.log.Info("rtsp publisher refused", "session", t.session, "err", err)
		return errorReply(req, err)
	}
	ss := newConnSession(c, t, hub, true)
	ss.desc, ss.skipped, ss.plans = desc, skipped, map[int]mediaPlan{}
	for _, p := range plans {
		ss.plans[p.index] = p
	}
	c.sess = ss
	if len(skipped) > 0 {
		c.log.Info("rtsp publisher: media not forwarded", "session", t.session, "skipped", skipped)
	}
	return reply{res: c.sessionResponse(statusOK)}
}

// matchControl returns the index of the announced media section a SETUP URL names.
func (ss *connSession) matchControl(pq string) int {
	path, _, _ := strings.Cut(pq, "?")
	for i, m := range ss.desc.medias {
		ctl := m.control
		switch {
		case ctl == "" || ctl == "*":
			if len(ss.desc.medias) == 1 {
				return i
			}
		case strings.Contains(ctl, "://"):
			cpq, err := urlPathQuery(ctl)
			cpath, _, _ := strings.Cut(cpq, "?")
			if err == nil && (cpq == pq || cpath == path) {
				return i
			}
		default:
			if strings.HasSuffix(pq, "/"+ctl) || strings.HasSuffix(path, "/"+ctl) {
				return i
			}
		}
	}
	return -1
}

// handleSetupRecord answers a publisher's SETUP of one announced media section. A
// section Lectern does not forward may be set up too (the encoder insists on
// sending it): its packets are dropped.
func (c *serverConn) handleSetupRecord(req *request) reply {
	ss := c.sess
	if ss.recording {
		return errorReply(req, fmt.Errorf("%w: SETUP while recording", errState))
	}
	pq, err := urlPathQuery(req.url)
	if err != nil {
		return errorReply(req, err)
	}
	idx := ss.matchControl(pq)
	if idx < 0 {
		return errorReply(req, fmt.Errorf("%w: no announced media section has that control URL", errNotFound))
	}
	if _, ok := ss.setup[idx]; ok {
		return errorReply(req, fmt.Errorf("%w: media section %d is set up already", errState, idx))
	}
	tr, err := c.chooseTransport(req, true)
	if err != nil {
		return errorReply(req, err)
	}
	if tr.tcp {
		if tr.interleaved[0] < 0 {
			tr.interleaved = [2]int{2 * idx, 2*idx + 1}
		}
		for _, other := range ss.setup {
			if other.tcp && (other.interleaved[0] == tr.interleaved[0] || other.interleaved[1] == tr.interleaved[0]) {
				return errorReply(req, fmt.Errorf("%w: interleaved channel %d is taken", errTransport, tr.interleaved[0]))
			}
		}
	} else {
		ss.anyUDP = true
	}
	ss.setup[idx] = tr
	res := c.sessionResponse(statusOK)
	res.add("Transport", tr.String())
	return reply{res: res}
}

// handleRecord makes the publisher the session's trainer: it claims the
// publication (replacing a previous source) and creates or continues its tracks.
func (c *serverConn) handleRecord(req *request) reply {
	ss := c.sess
	if ss == nil || !ss.record || ss.recording {
		return errorReply(req, fmt.Errorf("%w: RECORD before ANNOUNCE and SETUP", errState))
	}
	var idxs []int
	for idx := range ss.setup {
		if _, ok := ss.plans[idx]; ok {
			idxs = append(idxs, idx)
		}
	}
	if len(idxs) == 0 {
		return errorReply(req, fmt.Errorf("%w: none of the media set up is forwarded (%s)", ErrUnsupportedCodec, strings.Join(ss.skipped, "; ")))
	}
	slices.Sort(idxs)
	lease, err := ss.hub.Claim(sfu.TrainerPublication, c.close)
	if err != nil {
		return errorReply(req, err)
	}
	for _, idx := range idxs {
		plan := ss.plans[idx]
		track, err := lease.Track(plan.local, plan.kind, plan.codec, nil)
		if err != nil {
			lease.Release()
			return errorReply(req, err)
		}
		m := newIngestMedia(plan, track, c.close)
		ss.media = append(ss.media, m)
		tr := ss.setup[idx]
		if tr.tcp {
			ss.channels[byte(tr.interleaved[0])] = m
		} else {
			from := netip.AddrPortFrom(c.remote.Addr(), uint16(tr.clientPorts[0]))
			ss.udpUnreg = append(ss.udpUnreg, c.s.udp.register(from, m))
		}
	}
	for idx, tr := range ss.setup { // set up but not forwarded, and RTCP: dropped quietly
		if tr.tcp {
			if _, ok := ss.plans[idx]; !ok {
				ss.channels[byte(tr.interleaved[0])] = nil
			}
			ss.channels[byte(tr.interleaved[1])] = nil
		}
	}
	ss.lease, ss.recording = lease, true
	if ss.anyUDP {
		ss.wg.Add(1)
		go func() {
			defer ss.wg.Done()
			ss.watchUDP()
		}()
	}
	c.log.Info("rtsp publisher recording", "session", ss.target.session, "tracks", len(ss.media), "udp", ss.anyUDP)
	return reply{res: c.sessionResponse(statusOK)}
}

// watchUDP closes the connection of a UDP publisher whose media stopped: its TCP
// connection may stay silent, so the media is its sign of life.
func (ss *connSession) watchUDP() {
	timeout := int64(ss.c.s.cfg.ReadTimeout)
	tick := time.NewTicker(ss.c.s.cfg.ReadTimeout / 4)
	defer tick.Stop()
	for {
		select {
		case <-ss.ctx.Done():
			return
		case <-tick.C:
		}
		var last int64
		for _, m := range ss.media {
			last = max(last, m.last.Load())
		}
		if sfu.Nanotime()-last > timeout {
			ss.c.log.Info("rtsp publisher sent no media; closing", "session", ss.target.session, "timeout", ss.c.s.cfg.ReadTimeout)
			ss.c.close()
			return
		}
	}
}
