package rtsp

import (
	"log/slog"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtcp"
	"github.com/prometheus/client_golang/prometheus"

	"lectern/sfu"
)

// What RTSP readers report about their own loss. The server sends a UDP reader's
// packets into a network it cannot see: a kernel receive buffer that overflows or a
// lossy provincial link loses them silently. The reader's RTCP receiver reports
// (RFC 3550 §6.4.2, every few seconds from gortsplib, ffmpeg, GStreamer and VLC)
// are how the server learns of it: the new loss they report is counted
// (lectern_rtsp_reader_lost_packets_total) and, for video, a keyframe is asked for
// so the reader's picture recovers before the next scheduled one.

// Transports of lectern_rtsp_reader_lost_packets_total, the index of
// Server.readerLost.
const (
	lossUDP = iota
	lossTCP
)

// maxReportedLoss bounds the loss one report may add: a sequence number cycle,
// more than any lecture stream sends between two reports (a few seconds) and a
// bound on what a forged or broken report may add to the counter.
const maxReportedLoss = 1 << 16

// readerLogEvery is how often at most a reader's loss is logged.
const readerLogEvery = time.Minute

// readerReports reads one reader's receiver reports. Its state changes only in
// gortsplib's RTCP callbacks (a UDP listener's goroutine or the reader's TCP
// connection), a report every few seconds: a mutex is enough.
type readerReports struct {
	s     *Server
	rs    *readSession
	log   *slog.Logger
	label string // "udp" or "tcp"
	tr    int    // lossUDP or lossTCP
	// ssrc is the SSRC this reader was given per stream media (0: not set up):
	// the only sources whose report blocks count.
	ssrc []uint32

	mu       sync.Mutex
	last     []lossState // per stream media
	logged   bool
	logAt    int64  // sfu.Nanotime of the last log line
	unlogged uint64 // loss reported since the last log line
}

// lossState is what a reader's previous report said of one source.
type lossState struct {
	seen bool
	lost int32  // cumulative number of packets lost (RFC 3550: signed 24 bits)
	ext  uint32 // extended highest sequence number received
}

// watchReports starts reading the receiver reports of a reader's session. Called
// once, from OnPlay: gortsplib starts the session's RTCP reception after OnPlay
// returns, so the callbacks are in place before the first report can arrive.
func (h *handler) watchReports(ss *gortsplib.ServerSession, rs *readSession, log *slog.Logger) {
	r := &readerReports{s: h.s, rs: rs, log: log, label: "udp", tr: lossUDP,
		ssrc: make([]uint32, len(rs.ps.feeds)), last: make([]lossState, len(rs.ps.feeds))}
	if *ss.SetuppedTransport() == gortsplib.TransportTCP {
		r.label, r.tr = "tcp", lossTCP
	}
	// The SSRCs of the stream the reader was set up on (for a direct reader, its
	// feeds' directSSRC): what its SETUP answers gave.
	stats := rs.setupOn.Stats()
	for _, m := range ss.SetuppedMedias() {
		i := rs.ps.mediaIndex(m)
		if i < 0 {
			continue
		}
		for _, f := range stats.Medias[m].Formats { // one format per media
			r.ssrc[i] = f.LocalSSRC
		}
	}
	ss.OnPacketRTCPAny(r.handle)
}

// mediaIndex is the index of m among the stream's medias (its feeds), -1 if none.
func (ps *pubStream) mediaIndex(m *description.Media) int {
	for i, f := range ps.feeds {
		if f.media == m {
			return i
		}
	}
	return -1
}

// handle takes one RTCP packet from the reader. Only the report blocks about a
// source this reader was given count (a block may be about any of its medias,
// whichever RTCP channel it came on); anything else is ignored.
func (r *readerReports) handle(_ *description.Media, pkt rtcp.Packet) {
	var blocks []rtcp.ReceptionReport
	switch p := pkt.(type) {
	case *rtcp.ReceiverReport:
		blocks = p.Reports
	case *rtcp.SenderReport: // a reader that also sends (a back channel) reports in its SR
		blocks = p.Reports
	default:
		return
	}
	for _, b := range blocks {
		i := r.sourceIndex(b.SSRC)
		if i < 0 {
			continue
		}
		r.report(i, b)
	}
}

// sourceIndex is the media whose SSRC this reader was given is ssrc, -1 if none.
func (r *readerReports) sourceIndex(ssrc uint32) int {
	for i, s := range r.ssrc {
		if s != 0 && s == ssrc {
			return i
		}
	}
	return -1
}

// report counts the new loss one report block tells of media i.
func (r *readerReports) report(i int, b rtcp.ReceptionReport) {
	r.mu.Lock()
	n := r.last[i].update(cumulativeLost(b.TotalLost), b.LastSequenceNumber)
	if n == 0 {
		r.mu.Unlock()
		return
	}
	r.unlogged += n
	now := sfu.Nanotime()
	var logLost uint64
	if !r.logged || now-r.logAt >= int64(readerLogEvery) {
		r.logged, r.logAt, logLost, r.unlogged = true, now, r.unlogged, 0
	}
	r.mu.Unlock()

	r.s.readerLost[r.tr].Add(n)
	if r.rs.ps.feeds[i].want.kind == sfu.KindVideo {
		r.rs.requestKeyframe() // at most once a second per reader, coalesced by the track
	}
	if logLost > 0 {
		r.log.Info("rtsp reader reports lost packets", "session", r.rs.t.session, "publication", r.rs.t.publication,
			"transport", r.label, "lost", logLost)
	}
}

// cumulativeLost is a report block's cumulative number of packets lost: a
// signed 24-bit field (RFC 3550 §6.4.1), which pion/rtcp keeps in a uint32.
func cumulativeLost(field uint32) int32 { return int32(field<<8) >> 8 }

// update takes a report's cumulative loss and extended highest sequence number
// and returns the new loss to count. The first report counts what was lost since
// the reader started. Later ones count the increase, at most the packets the
// reader expected meanwhile (the increase of its highest sequence number); a
// report whose loss went down (duplicates count negative, RFC 3550 §6.4.1) or
// whose sequence jumped back (a client that started over) is a new baseline; one
// slightly behind the previous (reordered on the way) is ignored.
func (st *lossState) update(lost int32, ext uint32) uint64 {
	if !st.seen {
		st.seen, st.lost, st.ext = true, lost, ext
		return min(uint64(max(lost, 0)), maxReportedLoss)
	}
	dExt := int64(int32(ext - st.ext))
	if dExt < 0 && dExt > -(1<<15) {
		return 0 // an older report, arriving late
	}
	dLost := int64(lost) - int64(st.lost)
	st.lost, st.ext = lost, ext
	if dLost <= 0 || dExt <= 0 {
		return 0
	}
	return uint64(min(dLost, dExt, maxReportedLoss))
}

// readerLostDesc describes lectern_rtsp_reader_lost_packets_total.
var readerLostDesc = prometheus.NewDesc("lectern_rtsp_reader_lost_packets_total",
	"Packets RTSP readers report lost in their RTCP receiver reports (what reached them, not what the server sent), by transport.",
	[]string{"transport"}, nil)

// readerCollector exports a Server's reader loss, read at scrape time.
type readerCollector struct{ s *Server }

// Collector returns the server's Prometheus metrics (the loss its readers report).
func (s *Server) Collector() prometheus.Collector { return readerCollector{s} }

// Describe implements prometheus.Collector.
func (c readerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- readerLostDesc }

// Collect implements prometheus.Collector.
func (c readerCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(readerLostDesc, prometheus.CounterValue, float64(c.s.readerLost[lossUDP].Load()), "udp")
	ch <- prometheus.MustNewConstMetric(readerLostDesc, prometheus.CounterValue, float64(c.s.readerLost[lossTCP].Load()), "tcp")
}

// ReaderLostPackets returns the packets the server's readers reported lost over
// UDP and over TCP.
func (s *Server) ReaderLostPackets() (udp, tcp uint64) {
	return s.readerLost[lossUDP].Load(), s.readerLost[lossTCP].Load()
}
