package programme

import "github.com/prometheus/client_golang/prometheus"

// Labels of lectern_programme_switches_total and lectern_programme_excluded_total.
const (
	switchAudio = "audio" // forwarding ↔ mixing
	switchVideo = "video" // the programme picture moved to another camera

	excludedCodec      = "codec"       // not Opus and no Opus variant
	excludedDecode     = "decode"      // repeated Opus decode errors
	excludedVideoCodec = "video_codec" // speaker mode: its camera is not in the programme's video codec
)

// metrics are the programme's Prometheus series.
type metrics struct {
	mixing     prometheus.Gauge
	mixSeconds prometheus.Counter
	switches   *prometheus.CounterVec
	excluded   *prometheus.CounterVec
	// inboxDrops counts source packets dropped because a programme's inbox was
	// full (its goroutine fell behind); incremented on the sources' packet path,
	// an atomic add.
	inboxDrops prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		mixing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lectern_programme_mixing_sessions",
			Help: "Sessions whose programme audio is being mixed (someone with the floor speaks).",
		}),
		mixSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lectern_programme_mix_seconds_total",
			Help: "Time spent decoding, mixing and encoding programme audio.",
		}),
		switches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lectern_programme_switches_total",
			Help: "Programme switches: audio between forwarding and mixing, video between cameras.",
		}, []string{"kind"}),
		excluded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lectern_programme_excluded_total",
			Help: "Floor holders left out of the programme, by reason: codec and decode (left out of the audio mix), video_codec (in speaker mode, a camera the programme's picture cannot show).",
		}, []string{"reason"}),
		inboxDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lectern_programme_inbox_drops_total",
			Help: "Source packets (audio, video, screen) not handed to a programme because its inbox was full: the programme fell behind its sources.",
		}),
	}
	// Every label value present from the start, so rates work from zero.
	m.switches.WithLabelValues(switchAudio)
	m.switches.WithLabelValues(switchVideo)
	m.excluded.WithLabelValues(excludedCodec)
	m.excluded.WithLabelValues(excludedDecode)
	m.excluded.WithLabelValues(excludedVideoCodec)
	return m
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.mixing.Describe(ch)
	m.mixSeconds.Describe(ch)
	m.switches.Describe(ch)
	m.excluded.Describe(ch)
	m.inboxDrops.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.mixing.Collect(ch)
	m.mixSeconds.Collect(ch)
	m.switches.Collect(ch)
	m.excluded.Collect(ch)
	m.inboxDrops.Collect(ch)
}
