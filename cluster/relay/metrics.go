package relay

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the relays' metrics: lectern_relays{direction} (relays now) and
// lectern_relay_bytes_total{direction} (payload bytes). Either side may be nil (a
// node without one). It reads counters at scrape time.
type Collector struct {
	h      *Handler
	m      *Manager
	relays *prometheus.Desc
	bytes  *prometheus.Desc
	nacks  *prometheus.Desc
}

// NewCollector returns the collector of an origin handler and an edge manager.
func NewCollector(h *Handler, m *Manager) *Collector {
	return &Collector{h: h, m: m,
		relays: prometheus.NewDesc("lectern_relays", "Node-to-node relays: in (pulled from an origin), out (served to an edge).", []string{"direction"}, nil),
		bytes:  prometheus.NewDesc("lectern_relay_bytes_total", "RTP payload bytes carried by node-to-node relays, by direction.", []string{"direction"}, nil),
		nacks:  prometheus.NewDesc("lectern_relay_nacks_total", "Packets edges asked this origin to send again.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.relays
	ch <- c.bytes
	ch <- c.nacks
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.h != nil {
		c.h.mu.Lock()
		n := len(c.h.outs)
		c.h.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(c.relays, prometheus.GaugeValue, float64(n), "out")
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(c.h.bytes.Load()), "out")
		ch <- prometheus.MustNewConstMetric(c.nacks, prometheus.CounterValue, float64(c.h.nacks.Load()))
	}
	if c.m != nil {
		ch <- prometheus.MustNewConstMetric(c.relays, prometheus.GaugeValue, float64(len(c.m.Relays())), "in")
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(c.m.bytes.Load()), "in")
	}
}
