package web

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"lectern/sfu"
	"lectern/sfu/peer"
)

// Collector exports the hub's counters as Prometheus metrics, read at scrape time
// (the packet path only increments atomics).
type Collector struct {
	reg        *sfu.Registry
	resources  func() int
	adaptation func() peer.AdaptationStats
	descs      map[string]*prometheus.Desc
}

// adaptationDescs are the metrics of the subscribers' layer adaptation.
var adaptationDescs = map[string]*prometheus.Desc{
	"layer":    prometheus.NewDesc("lectern_subscriber_layers", "WHEP connections by the simulcast layer of their main picture (high, medium, low, or paused: audio only).", []string{"layer"}, nil),
	"estimate": prometheus.NewDesc("lectern_subscriber_estimate_bps", "Bandwidth estimates of WHEP connections, bits/s.", nil, nil),
	"switches": prometheus.NewDesc("lectern_layer_switches_total", "Layer changes chosen for WHEP connections (by their estimate or a pin), pauses included.", nil, nil),
	"pauses":   prometheus.NewDesc("lectern_video_pauses_total", "Videos paused because a connection's estimate could not carry the lowest layer, or pinned to audio.", nil, nil),
	"refused":  prometheus.NewDesc("lectern_nacks_refused_total", "NACKed packets not resent: over the retransmission budget, resent 3 times already, again within a round trip, or too old.", nil, nil),
	"red":      prometheus.NewDesc("lectern_subscriber_red_distance", "WHEP connections with RED audio by the previous frames each audio packet repeats (2 in full; fewer when the estimate leaves no room).", []string{"distance"}, nil),
	"red_chg":  prometheus.NewDesc("lectern_red_distance_changes_total", "Changes of WHEP connections' RED distance chosen by their estimate.", nil, nil),
}

// estimateBuckets are the estimate histogram's upper bounds, bits/s.
var estimateBuckets = []float64{250e3, 500e3, 750e3, 1e6, 1.5e6, 2e6, 3e6, 5e6}

// WithAdaptation adds the metrics of the subscribers' layer adaptation
// (peer.Edge.AdaptationStats) and returns c.
func (c *Collector) WithAdaptation(stats func() peer.AdaptationStats) *Collector {
	c.adaptation = stats
	return c
}

// NewCollector returns a collector for reg; resources (may be nil) counts live
// WHIP/WHEP connections.
func NewCollector(reg *sfu.Registry, resources func() int) *Collector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc("lectern_"+name, help, nil, nil) }
	return &Collector{reg: reg, resources: resources, descs: map[string]*prometheus.Desc{
		"sessions":          d("sessions", "Live sessions (with at least one publication or subscriber seen)."),
		"publications":      d("publications", "Publications (trainer, classrooms with the floor, cameras), live or within their reconnect grace period."),
		"subscribers":       d("subscribers", "Consumers (WHEP classrooms, RTSP readers) across sessions."),
		"resources":         d("webrtc_connections", "Live WHIP/WHEP connections."),
		"packets_in":        d("rtp_packets_in_total", "RTP packets received from publishers."),
		"bytes_in":          d("rtp_bytes_in_total", "RTP payload bytes received from publishers."),
		"packets_out":       d("rtp_packets_out_total", "RTP packets sent to consumers."),
		"bytes_out":         d("rtp_bytes_out_total", "RTP payload bytes sent to consumers."),
		"rejected":          d("rtp_packets_rejected_total", "Malformed RTP packets refused."),
		"nacks_answered":    d("nacks_answered_total", "Packets retransmitted from track caches in answer to NACKs."),
		"nacks_missed":      d("nacks_missed_total", "NACKed packets no longer in the cache."),
		"keyframe_requests": d("keyframe_requests_total", "Keyframe requests sent upstream to publishers, after coalescing."),
		"queue_drops":       d("queue_drops_total", "Packets dropped by slow consumers' queues."),
	}}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	if c.adaptation != nil {
		for _, d := range adaptationDescs {
			ch <- d
		}
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	sessions, pubs, subs := c.reg.Counts()
	gauge := func(name string, v int) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, float64(v))
	}
	counter := func(name string, v uint64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, float64(v))
	}
	gauge("sessions", sessions)
	gauge("publications", pubs)
	gauge("subscribers", subs)
	if c.resources != nil {
		gauge("resources", c.resources())
	}
	st := c.reg.Stats()
	counter("packets_in", st.PacketsIn.Load())
	counter("bytes_in", st.BytesIn.Load())
	counter("packets_out", st.PacketsOut.Load())
	counter("bytes_out", st.BytesOut.Load())
	counter("rejected", st.PacketsRejected.Load())
	counter("nacks_answered", st.NACKsAnswered.Load())
	counter("nacks_missed", st.NACKsMissed.Load())
	counter("keyframe_requests", st.KeyframeRequests.Load())
	counter("queue_drops", st.QueueDrops.Load())
	if c.adaptation != nil {
		c.collectAdaptation(ch, c.adaptation())
	}
}

func (c *Collector) collectAdaptation(ch chan<- prometheus.Metric, st peer.AdaptationStats) {
	for layer, n := range st.ByLayer {
		ch <- prometheus.MustNewConstMetric(adaptationDescs["layer"], prometheus.GaugeValue, float64(n), layer)
	}
	buckets := make(map[float64]uint64, len(estimateBuckets))
	sum := 0.0
	for _, e := range st.Estimates {
		sum += e
		for _, b := range estimateBuckets {
			if e <= b {
				buckets[b]++
			}
		}
	}
	ch <- prometheus.MustNewConstHistogram(adaptationDescs["estimate"], uint64(len(st.Estimates)), sum, buckets)
	ch <- prometheus.MustNewConstMetric(adaptationDescs["switches"], prometheus.CounterValue, float64(st.Switches))
	ch <- prometheus.MustNewConstMetric(adaptationDescs["pauses"], prometheus.CounterValue, float64(st.Pauses))
	ch <- prometheus.MustNewConstMetric(adaptationDescs["refused"], prometheus.CounterValue, float64(st.NACKsRefused))
	for d, n := range st.ByREDDistance {
		ch <- prometheus.MustNewConstMetric(adaptationDescs["red"], prometheus.GaugeValue, float64(n), strconv.Itoa(d))
	}
	ch <- prometheus.MustNewConstMetric(adaptationDescs["red_chg"], prometheus.CounterValue, float64(st.REDChanges))
}

// replayCacheDescs are the metrics of a ReplayCache.
var replayCacheDescs = func() map[string]*prometheus.Desc {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("lectern_replay_cache_"+name, help, nil, nil)
	}
	return map[string]*prometheus.Desc{
		"hits":      d("hits_total", "Replay segment requests answered from memory."),
		"misses":    d("misses_total", "Replay segment requests that read the store (the segment was not in memory)."),
		"served":    d("served_bytes_total", "Bytes of replay segments sent from memory."),
		"fills":     d("fills_total", "Replay segments kept in memory after a request read them whole."),
		"evictions": d("evictions_total", "Replay segments dropped from memory to make room (least recently used first)."),
		"objects":   d("objects", "Replay segments held in memory."),
		"bytes":     d("bytes", "Bytes of replay segments held in memory."),
		"limit":     d("limit_bytes", "Configured bound of the replay segment memory."),
	}
}()

// Describe implements prometheus.Collector.
func (c *ReplayCache) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range replayCacheDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *ReplayCache) Collect(ch chan<- prometheus.Metric) {
	gauge := func(name string, v int64) {
		ch <- prometheus.MustNewConstMetric(replayCacheDescs[name], prometheus.GaugeValue, float64(v))
	}
	counter := func(name string, v uint64) {
		ch <- prometheus.MustNewConstMetric(replayCacheDescs[name], prometheus.CounterValue, float64(v))
	}
	objects, bytes := c.stats()
	counter("hits", c.hits.Load())
	counter("misses", c.misses.Load())
	counter("served", c.served.Load())
	counter("fills", c.fills.Load())
	counter("evictions", c.evictions.Load())
	gauge("objects", int64(objects))
	gauge("bytes", bytes)
	gauge("limit", c.maxBytes)
}
