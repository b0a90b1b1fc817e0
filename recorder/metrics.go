package recorder

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the recorder's counters. The hot paths only touch atomics; the
// collector reads them at scrape time.
type metrics struct {
	active          atomic.Int64
	segmentsWritten atomic.Uint64 // to the spool
	segmentsStored  atomic.Uint64 // confirmed by the store
	segmentsDropped atomic.Uint64 // lost: spool full or spool write error
	spoolFull       atomic.Uint64 // segments refused because the spool was full
	uploadErrors    atomic.Uint64 // failed upload attempts (each is retried)
	decodeErrors    atomic.Uint64 // malformed RTP payloads
	spoolBytes      atomic.Int64
	pending         atomic.Int64 // uploads queued or in progress
	uploadLatency   prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{uploadLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "lectern_recording_upload_seconds",
		Help:    "Time to store one recording object (segment, init, playlist), per successful attempt.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})}
}

// Collector exports the recorder's metrics. Register it with a Prometheus
// registry; it reads atomics at scrape time.
type Collector struct {
	r     *Recorder
	descs map[string]*prometheus.Desc
}

// Collector returns the recorder's Prometheus collector.
func (r *Recorder) Collector() *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("lectern_recording_"+name, help, labels, nil)
	}
	return &Collector{r: r, descs: map[string]*prometheus.Desc{
		"active":      d("active", "Recordings in progress (one per live publication)."),
		"written":     d("segments_written_total", "Media segments written to the local spool."),
		"uploaded":    d("segments_uploaded_total", "Media segments confirmed stored in the object store."),
		"failed":      d("segments_failed_total", "Media segments lost before reaching the store, by reason.", "reason"),
		"upload_errs": d("upload_errors_total", "Failed attempts to store an object (each is retried with backoff)."),
		"decode_errs": d("decode_errors_total", "Malformed RTP payloads skipped by the recorder."),
		"spool_bytes": d("spool_bytes", "Bytes of recording data waiting in the local spool."),
		"spool_limit": d("spool_limit_bytes", "Configured spool size limit."),
		"pending":     d("upload_queue", "Objects waiting to be stored."),
	}}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	c.r.metrics.uploadLatency.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	m := c.r.metrics
	gauge := func(name string, v int64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, float64(v))
	}
	counter := func(name string, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, float64(v), labels...)
	}
	gauge("active", m.active.Load())
	counter("written", m.segmentsWritten.Load())
	counter("uploaded", m.segmentsStored.Load())
	counter("failed", m.spoolFull.Load(), "spool_full")
	counter("failed", m.segmentsDropped.Load()-m.spoolFull.Load(), "spool_error")
	counter("upload_errs", m.uploadErrors.Load())
	counter("decode_errs", m.decodeErrors.Load())
	gauge("spool_bytes", m.spoolBytes.Load())
	gauge("spool_limit", c.r.cfg.MaxSpoolBytes)
	gauge("pending", m.pending.Load())
	m.uploadLatency.Collect(ch)
}
