package rtsp

import (
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"

	"lectern/sfu"
)

// directReader is a reader whose RTP the feeds send themselves, instead of
// through gortsplib's per-reader write queue and goroutine (a closure, a queue
// push and a goroutine wake-up per packet and reader, and for UDP a write
// deadline and a system call): over TCP, they append it to its connection as
// interleaved frames; over UDP, one sendmmsg per batch carries it to every UDP
// reader. gortsplib still answers its requests and sends its RTCP: it is set up
// on the publication's directStream, to which no RTP is written.
type directReader struct {
	c       *lecternConn   // TCP
	ch      []int          // TCP: interleaved RTP channel per stream media; -1: not set up
	needKey []bool         // per media: video dropped until a keyframe (TCP: under c.wmu; UDP: its feed only)
	udp     []*net.UDPAddr // UDP: RTP address per stream media; nil: not set up
	udpTo   udpDests       // UDP: the same, in the kernel's form
	rs      *readSession
}

// maxDirectPending is what may wait for a direct reader before its packets are
// dropped (about gortsplib's write queue of 1024 packets).
const maxDirectPending = 1 << 20

// mediaOfSetup returns the media index a SETUP URL names (…/trackID=N, the
// controls gortsplib gives and Lectern's absolute ones end so); a URL without one
// names the first media, as gortsplib takes it (findMediaByTrackID).
func mediaOfSetup(req *base.Request, medias int) int {
	if req.URL == nil || medias == 0 {
		return -1
	}
	u := req.URL.String()
	i := strings.LastIndex(u, "trackID=")
	if i < 0 {
		return 0
	}
	n, err := strconv.Atoi(u[i+len("trackID="):])
	if err != nil {
		return -1
	}
	return n
}

// learnSetup records the interleaved channel (TCP) or the client's RTP address
// (UDP: its client_port on the address of its RTSP connection, where gortsplib
// sends too) and the SSRC a reader's SETUP was answered with.
func (rs *readSession) learnSetup(media int, res *base.Response, remote net.Addr) {
	if media < 0 || media >= len(rs.ps.feeds) || rs.setupOn != rs.ps.directStream {
		return // a reader gortsplib writes (stream): its SSRCs are not the feeds' own
	}
	var th headers.Transport
	if err := th.Unmarshal(res.Header["Transport"]); err != nil {
		return
	}
	if th.SSRC != nil {
		rs.ps.feeds[media].directSSRC.Store(*th.SSRC)
	}
	if th.Protocol == headers.TransportProtocolUDP {
		ra, ok := remote.(*net.TCPAddr)
		if !ok || th.ClientPorts == nil || th.Delivery == nil || *th.Delivery != headers.TransportDeliveryUnicast {
			return
		}
		if rs.udpDst == nil {
			rs.udpDst = make([]*net.UDPAddr, len(rs.ps.feeds))
		}
		rs.udpDst[media] = &net.UDPAddr{IP: ra.IP, Zone: ra.Zone, Port: th.ClientPorts[0]}
		return
	}
	if th.InterleavedIDs == nil {
		return
	}
	if rs.channels == nil {
		rs.channels = make([]int, len(rs.ps.feeds))
		for i := range rs.channels {
			rs.channels[i] = -1
		}
	}
	rs.channels[media] = th.InterleavedIDs[0]
}

// addDirect makes a playing reader direct.
func (ps *pubStream) addDirect(d *directReader) {
	if d.udp != nil {
		d.udpTo = newUDPDests(d.udp)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var l []*directReader
	if old := ps.direct.Load(); old != nil {
		l = append(l, *old...)
	}
	l = append(l, d)
	ps.direct.Store(&l)
}

func (ps *pubStream) removeDirect(d *directReader) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	old := ps.direct.Load()
	if old == nil {
		return
	}
	l := make([]*directReader, 0, len(*old))
	for _, x := range *old {
		if x != d {
			l = append(l, x)
		}
	}
	ps.direct.Store(&l)
}

// udpBatchBytes bounds the packets a feed gathers for its UDP readers before it
// sends them (it sends sooner, once its queue is empty).
const udpBatchBytes = 64 << 10

// writeDirect sends f.out to the direct readers: marshalled once, appended to each
// TCP reader's connection, and kept for the UDP readers' batch (flushUDP). Every
// packet counts in the sender reports (so a reader's RTP-Info can be told from the
// first). Feed goroutine only.
func (f *trackFeed) writeDirect(keyStart bool, ntp time.Time) {
	f.out.SSRC = f.directSSRC.Load()
	f.sr.ProcessPacket(&f.out, ntp, true)
	lp := f.ps.direct.Load()
	if lp == nil || len(*lp) == 0 {
		return
	}
	l := *lp
	n := f.out.MarshalSize()
	if cap(f.frame) < 4+n {
		f.frame = make([]byte, 4+n, 4+max(n, 1500))
	}
	f.frame = f.frame[:4+n]
	f.frame[0], f.frame[2], f.frame[3] = '$', byte(n>>8), byte(n)
	if _, err := f.out.MarshalTo(f.frame[4:]); err != nil {
		return
	}
	video := f.want.kind == sfu.KindVideo
	udp := false
	for _, d := range l {
		if d.udp != nil {
			udp = udp || d.udp[f.idx] != nil
			continue
		}
		if f.idx >= len(d.ch) || d.ch[f.idx] < 0 {
			continue
		}
		f.frame[1] = byte(d.ch[f.idx])
		ok, notify := d.c.appendFrame(f.frame, d, f.idx, video, keyStart)
		if !ok {
			d.rs.slowReader()
		}
		if notify {
			f.notify = append(f.notify, d.c)
		}
	}
	if len(f.notify) > 0 {
		if f.notifyBytes += len(f.frame); f.notifyBytes >= tcpBatchBytes {
			f.notifyWriters() // a long backlog: the readers need not wait for all of it
		}
	}
	if !udp {
		return
	}
	if keyStart && f.udpWaiting {
		f.flushUDP() // a reader waiting for a keyframe resumes at a batch's start
	}
	if f.udpArena == nil {
		f.udpArena = make([]byte, 0, udpBatchBytes)
	}
	if len(f.udpArena)+n > cap(f.udpArena) {
		f.flushUDP()
	}
	if len(f.udpPkts) == 0 {
		f.udpKeyFirst = keyStart
	}
	if n > cap(f.udpArena) { // larger than any batch: on its own
		f.udpPkts = append(f.udpPkts, f.frame[4:])
		f.flushUDP()
		return
	}
	start := len(f.udpArena)
	f.udpArena = append(f.udpArena, f.frame[4:]...)
	f.udpPkts = append(f.udpPkts, f.udpArena[start:])
}

// udpSkips reports whether the batch is not sent to d: its video waits for a
// keyframe (udpLost) and the batch does not start with one. A batch that does
// resumes it (writeDirect starts a batch at a keyframe while a reader waits).
// Feed goroutine only.
func (f *trackFeed) udpSkips(d *directReader) bool {
	if !d.needKey[f.idx] {
		return false
	}
	if !f.udpKeyFirst {
		f.udpWaiting = true
		return true
	}
	d.needKey[f.idx] = false
	return false
}

// udpRefusals handles the readers whose messages of the batch the kernel refused
// (udpOut.refused), per messages each, in the order of l without the readers the
// batch skipped (as flushUDP built them). Called only when a message was refused.
// Feed goroutine only.
func (f *trackFeed) udpRefusals(l []*directReader, per int) {
	k := 0
	for _, d := range l {
		if d.udp == nil || d.udp[f.idx] == nil || d.needKey[f.idx] {
			continue // not in the batch
		}
		lost := false
		for i := k; i < k+per && !lost; i++ {
			lost = f.udpOut.refused(i)
		}
		k += per
		if lost {
			f.udpLost(d)
		}
	}
}

// udpLost: the kernel refused some of a UDP reader's packets of the batch (the
// sendmmsg error for its address: unreachable, refused by a firewall), so its
// picture is broken until the next keyframe, which is what it gets next; a
// keyframe is asked for, as for a TCP reader that fell behind. Packets the kernel
// accepted and dropped later (a full receive buffer, a full device queue) are
// not known here: UDP reports no such loss to the sender. Feed goroutine only.
func (f *trackFeed) udpLost(d *directReader) {
	if f.want.kind != sfu.KindVideo {
		return // audio has no keyframes to wait for: it goes on
	}
	d.needKey[f.idx] = true
	f.udpWaiting = true
	if d.rs.requestKeyframe() {
		f.ps.s.log.Warn("rtsp reader: the kernel refused its video packets; it waits for a keyframe",
			"session", d.rs.t.session, "publication", d.rs.t.publication, "to", d.udp[f.idx].String())
	}
}

// tcpBatchBytes bounds what a feed appends to its TCP readers' connections
// before it hands them to their writers (it does sooner, once its queue is empty).
const tcpBatchBytes = 32 << 10

// notifyWriters hands the connections the feed appended to since it last did to
// their writers. Deferred to the end of the feed's batch, rather than at a
// connection's first frame, a writer's system call carries the whole batch: a
// writer notified at once would often send the first packet alone while the feed
// appends the next ones. Feed goroutine only.
func (f *trackFeed) notifyWriters() {
	for _, c := range f.notify {
		c.writer.Notify(c)
	}
	clear(f.notify) // readers come and go
	f.notify = f.notify[:0]
	f.notifyBytes = 0
}

// flush sends the feed's batch: its TCP readers' connections to their writers,
// its UDP readers' packets. Feed goroutine only.
func (f *trackFeed) flush() {
	f.notifyWriters()
	f.flushUDP()
}

// appendFrame appends one frame for the shared writers; ok is false when it was
// dropped because too much waits (video then waits for a keyframe). notify: the
// connection was idle and is now queued, and the caller must notify its writer
// (c.writer.Notify) once it has appended the rest of its batch.
func (c *lecternConn) appendFrame(frame []byte, d *directReader, media int, video, keyStart bool) (ok, notify bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil || !c.played {
		return true, false
	}
	if d.needKey[media] {
		if !keyStart {
			return true, false
		}
		d.needKey[media] = false
	}
	if len(c.pending)+len(frame) > maxDirectPending {
		d.needKey[media] = video
		return false, false
	}
	c.pending = append(c.pending, frame...)
	switch {
	case c.queued || c.blocking:
	case c.raw == nil || c.writer == nil:
		c.blocking = true
		go c.sendBlocking(nil, 0)
	default:
		c.queued, notify = true, true
	}
	return true, notify
}

// slowReader counts a direct reader's drop and asks for a keyframe (as
// OnStreamWriteError does for gortsplib's queue).
func (rs *readSession) slowReader() {
	rs.ps.hub.Stats().QueueDrops.Add(1)
	rs.requestKeyframe()
}

// requestKeyframe asks the stream's video for a keyframe for a reader that lost
// some, at most once a second per reader (the tracks coalesce every reader's
// requests too); false when it did not ask.
func (rs *readSession) requestKeyframe() bool {
	now := sfu.Nanotime()
	if last := rs.kfAt.Load(); last != 0 && now-last < int64(time.Second) || !rs.kfAt.CompareAndSwap(last, now) {
		return false
	}
	rs.ps.requestKeyframes()
	return true
}

// fillRTPInfo completes the RTP-Info of a reader's PLAY answer: gortsplib knows
// no packet of directStream, so it gives only the URLs, and what it knows of
// stream is stale when it had no reader for a while (the feeds write to it only
// while it has some); the sequence number and RTP time each stream starts at let
// clients line audio and video up from the first packet.
func (rs *readSession) fillRTPInfo(res *base.Response) {
	var ri headers.RTPInfo
	if err := ri.Unmarshal(res.Header["RTP-Info"]); err != nil {
		return
	}
	now := time.Now()
	for _, e := range ri {
		i := strings.LastIndex(e.URL, "trackID=")
		if i < 0 {
			continue
		}
		n, err := strconv.Atoi(e.URL[i+len("trackID="):])
		if err != nil || n < 0 || n >= len(rs.ps.feeds) {
			continue
		}
		f := rs.ps.feeds[n]
		st := f.sr.Stats()
		if st == nil {
			continue
		}
		clock := uint64(f.want.codec.ClockRate)
		seq := st.LastSequenceNumber + 1
		ts := uint32(uint64(st.LastRTP) + uint64(now.Sub(st.LastNTP).Seconds()*float64(clock)) - clock/10)
		e.SequenceNumber, e.Timestamp = &seq, &ts
	}
	res.Header["RTP-Info"] = ri.Marshal()
}
