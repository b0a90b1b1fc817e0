package transcode

import (
	"context"

	"lectern/sfu"
)

// maxG711Gap is the longest gap in a G.711 stream filled with silence, keeping the
// Opus frames contiguous; after a longer one (the camera paused, or jumped in
// time) the variant starts over as a new stream placed by arrival time.
const maxG711Gap = 200 * opusRate / 1000

// g711Decoder expands G.711 (8 kHz mono, the only rate of its static payload types,
// RFC 3551 §4.5.14; the transcoder refuses others), resamples it to 48 kHz and cuts 20 ms
// frames for Opus, keeping them on the source's timeline.
type g711Decoder struct {
	table *[256]int16
	up    upsampler

	pcm8   [sfu.MaxPayloadSize]int16
	pcm48  [sfu.MaxPayloadSize * upFactor]int16
	frame  [frameSamples]int16
	filled int    // samples in frame
	next   uint32 // 48 kHz timestamp of the sample after the last one taken
	base   uint32 // source timestamp at next == 0 (the stream's start or last resync)
	began  bool
}

func (d *g711Decoder) channels() int { return 1 }

func (d *g711Decoder) run(ctx context.Context, in <-chan *sfu.Packet, out *opusOut, relayed func() bool) error {
	for {
		p, err := receive(ctx, in, relayed)
		if p == nil {
			return err
		}
		err = d.packet(p, out)
		p.Release()
		if err != nil {
			return err
		}
	}
}

// packet takes one G.711 packet.
func (d *g711Decoder) packet(p *sfu.Packet, out *opusOut) error {
	n := len(p.Payload)
	if !d.began {
		d.began = true
		d.base = p.Header.Timestamp
		d.next = 0
	}
	// Where this packet's first sample falls on the 48 kHz timeline.
	at := (p.Header.Timestamp - d.base) * upFactor
	switch gap := int32(at - d.next); {
	case gap < 0 && gap > -int32(n*upFactor):
		return nil // a duplicate or a late packet: its place was taken
	case gap > 0 && gap <= maxG711Gap:
		// Lost packets: silence in their place, the history reset.
		d.up.reset()
		for range gap {
			if err := d.take(0, out); err != nil {
				return err
			}
		}
	case gap != 0:
		// Start over: flush the partial frame with silence, then a new stream.
		for d.filled > 0 {
			if err := d.take(0, out); err != nil {
				return err
			}
		}
		d.up.reset()
		out.resync()
		d.base, d.next = p.Header.Timestamp, 0
	}
	expandG711(d.table, p.Payload, d.pcm8[:n])
	d.up.process(d.pcm8[:n], d.pcm48[:n*upFactor])
	for _, s := range d.pcm48[:n*upFactor] {
		if err := d.take(s, out); err != nil {
			return err
		}
	}
	return nil
}

// take appends one 48 kHz sample, sending the frame it completes.
func (d *g711Decoder) take(s int16, out *opusOut) error {
	d.frame[d.filled] = s
	d.filled++
	d.next++
	if d.filled < frameSamples {
		return nil
	}
	d.filled = 0
	return out.write(d.frame[:], d.next-frameSamples)
}
