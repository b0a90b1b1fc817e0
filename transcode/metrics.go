package transcode

import "github.com/prometheus/client_golang/prometheus"

// metrics are the transcoder's Prometheus series.
type metrics struct {
	streams *prometheus.GaugeVec   // transcodings running, by source codec
	errors  *prometheus.CounterVec // by reason
}

// Error reasons counted in lectern_transcode_errors_total.
const (
	reasonNoFFmpeg = "no_ffmpeg"  // AAC could not be transcoded: ffmpeg is missing
	reasonDecoder  = "decoder"    // the decoder failed or exited
	reasonEncoder  = "encoder"    // libopus refused a frame
	reasonDropped  = "queue_full" // a packet dropped: the transcoder fell behind
	reasonBadInput = "bad_input"  // a packet that could not be depacketized
	reasonFormat   = "bad_format" // a track whose format cannot be transcoded
)

func newMetrics() *metrics {
	return &metrics{
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lectern_transcode_streams",
			Help: "Audio tracks being transcoded to Opus, by source codec (aac, pcmu, pcma).",
		}, []string{"codec"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lectern_transcode_errors_total",
			Help: "Audio transcoding failures and drops, by reason.",
		}, []string{"reason"}),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.streams.Describe(ch)
	m.errors.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.streams.Collect(ch)
	m.errors.Collect(ch)
}
