package transcode

import "math"

// upFactor is the ratio from G.711's 8 kHz to Opus' 48 kHz.
const upFactor = 6

// upTaps is the number of input samples each output sample is interpolated from
// (the filter has upFactor*upTaps coefficients): 1 ms of history at 8 kHz, a
// transition band of about 500 Hz below 4 kHz.
const upTaps = 16

// upKernel is the interpolation filter, in polyphase order: upKernel[k][j] weighs
// input sample n-j for output sample upFactor*n+k. It is a windowed sinc (Blackman)
// cutting at 3.6 kHz, scaled so that each phase has unity gain at DC: upsampling
// inserts upFactor-1 zeros between samples, whose spectrum repeats the band at 8k,
// 16k, 24k Hz; the filter keeps the first copy only.
var upKernel = func() (k [upFactor][upTaps]float32) {
	const n = upFactor * upTaps
	const cutoff = 3600.0 / 48000 // of the output rate
	center := float64(n-1) / 2
	var h [n]float64
	for i := range n {
		x := float64(i) - center
		sinc := 2 * cutoff
		if x != 0 {
			sinc = math.Sin(2*math.Pi*cutoff*x) / (math.Pi * x)
		}
		w := 0.42 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n-1)) + 0.08*math.Cos(4*math.Pi*float64(i)/float64(n-1))
		h[i] = sinc * w
	}
	for p := range upFactor {
		sum := 0.0
		for j := range upTaps {
			sum += h[j*upFactor+p]
		}
		for j := range upTaps {
			k[p][j] = float32(h[j*upFactor+p] / sum)
		}
	}
	return k
}()

// upsampler turns 8 kHz mono into 48 kHz mono, keeping its history across calls so
// consecutive packets make one continuous signal. Not safe for concurrent use.
type upsampler struct {
	hist [upTaps]float32 // the last upTaps input samples, newest at hist[upTaps-1]
}

// reset forgets the history (after a gap in the input).
func (u *upsampler) reset() { u.hist = [upTaps]float32{} }

// process writes upFactor*len(in) samples to out, which must be that long.
func (u *upsampler) process(in []int16, out []int16) {
	for n, s := range in {
		copy(u.hist[:], u.hist[1:])
		u.hist[upTaps-1] = float32(s)
		for p := range upFactor {
			var acc float32
			k := &upKernel[p]
			for j := range upTaps {
				acc += k[j] * u.hist[upTaps-1-j]
			}
			out[n*upFactor+p] = clamp16(acc)
		}
	}
}

func clamp16(v float32) int16 {
	switch {
	case v > math.MaxInt16:
		return math.MaxInt16
	case v < math.MinInt16:
		return math.MinInt16
	}
	return int16(math.Round(float64(v)))
}
