package transcode

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"github.com/pion/rtp"
	"gopkg.in/hraban/opus.v2"

	"lectern/sfu"
)

// Opus framing of the variants: 20 ms frames at 48 kHz (what browsers send).
const (
	opusRate        = 48000
	frameSamples    = opusRate / 50 // per channel
	opusPayloadType = 111           // as the WebRTC edge registers Opus; the track rewrites nothing else
	maxOpusPacket   = 1275          // RFC 6716 §3.2.1: the largest frame
)

// OpusCodec is the codec of every Opus variant: Opus at 48 kHz, declared stereo
// as RFC 7587 requires (a mono source is encoded mono: decoders play it on both
// channels), with in-band FEC.
var OpusCodec = sfu.Codec{MimeType: sfu.MimeOpus, ClockRate: opusRate, Channels: 2, Fmtp: "minptime=10;useinbandfec=1"}

// opusOut encodes 20 ms PCM frames to Opus and writes them, as RTP packets with
// their own SSRC, sequence numbers and timestamps, to a variant track. One goroutine
// uses it.
type opusOut struct {
	enc      *opus.Encoder
	channels int
	track    *sfu.Track
	pkt      rtp.Packet
	buf      [maxOpusPacket]byte
	tsBase   uint32
	started  bool
}

// newOpusOut returns an encoder of channels-channel PCM writing to track.
func newOpusOut(track *sfu.Track, channels int) (*opusOut, error) {
	enc, err := opus.NewEncoder(opusRate, channels, opus.AppAudio)
	if err != nil {
		return nil, fmt.Errorf("opus encoder: %w", err)
	}
	// 32 kbit/s per channel is transparent for speech and good for music at
	// lecture quality; in-band FEC lets a classroom's decoder restore one lost
	// frame from the next.
	if err := enc.SetBitrate(32000 * channels); err != nil {
		return nil, fmt.Errorf("opus bitrate: %w", err)
	}
	if err := enc.SetInBandFEC(true); err != nil {
		return nil, fmt.Errorf("opus fec: %w", err)
	}
	if err := enc.SetPacketLossPerc(5); err != nil {
		return nil, fmt.Errorf("opus loss: %w", err)
	}
	o := &opusOut{enc: enc, channels: channels, track: track}
	var r [10]byte
	_, _ = rand.Read(r[:])
	o.pkt.Header = rtp.Header{Version: 2, PayloadType: opusPayloadType,
		SSRC: binary.BigEndian.Uint32(r[0:]), SequenceNumber: binary.BigEndian.Uint16(r[4:])}
	o.tsBase = binary.BigEndian.Uint32(r[6:])
	return o, nil
}

// frameLen is the number of interleaved samples of one frame.
func (o *opusOut) frameLen() int { return frameSamples * o.channels }

// write encodes one frame (frameLen samples) whose first sample is at ts (48 kHz
// ticks from the stream's start) and sends it. An error means the encoder refused
// the frame; a closed track is not an error (the job ends by its context).
func (o *opusOut) write(pcm []int16, ts uint32) error {
	n, err := o.enc.Encode(pcm, o.buf[:])
	if err != nil {
		return fmt.Errorf("opus encode: %w", err)
	}
	o.pkt.Header.Timestamp = o.tsBase + ts
	o.pkt.Header.Marker = !o.started // the first packet of a talkspurt (RFC 3551 §4.1)
	o.started = true
	o.pkt.Payload = o.buf[:n]
	_ = o.track.WriteRTP(&o.pkt)
	o.pkt.Header.SequenceNumber++
	return nil
}

// resync makes the next packet start a new stream for the track (a new SSRC): the
// track then places it by its arrival time, after a gap in the source or a restart
// of the decoder.
func (o *opusOut) resync() {
	o.pkt.Header.SSRC++
	o.started = false
}
