package peer

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/pion/webrtc/v4"
)

// RED (RFC 2198, audio/red) for subscribers that offer it. Every audio packet to
// such a subscriber carries the current Opus frame and copies of the previous
// redDistance frames, so a classroom on a lossy provincial link rebuilds a lost
// frame from either of the next two packets, with no round trip (a NACK costs one,
// and audio that waits for it is late). Opus in-band FEC (useinbandfec=1) recovers
// only a lower-quality version of the previous frame, and only once the publisher's
// encoder, which sees the loss of its own link and not a classroom's, turns it on
// (Chromium does some 15 s after its link starts losing, TestBrowserPublisherOpusFEC):
// RED is what protects the server-to-classroom hop. Measured at 10 % random loss
// (TestREDRecoversLoss): 10 % of the frames lost without RED, 1.1 % with one copy,
// 0.07 % with two; Chromium conceals 0.4-0.7 % of the samples with RED, 9 % without
// (TestBrowserAudioREDUnderLoss).
//
// Publishers keep sending plain Opus (RED is registered on the subscribers' media
// engine only): the SFU makes the RED packets per subscriber, so one classroom's
// redundancy costs no other anything.

const (
	// redPayloadType is the one Chromium uses for red/48000/2; pion answers with
	// the offer's payload type anyway.
	redPayloadType = 63
	// redDistance is how many previous frames each packet repeats while the
	// subscriber's link has room for them (adapter.chooseRED). Two: at 10 %
	// random loss a frame is then lost only when three packets in a row are
	// (~0.1 %, against ~1 % with one copy), and a burst of two lost packets, common
	// on shared links, is fully recovered (10 % lost in bursts of two on average:
	// 2.8 % of the frames lost, 5.5 % with one copy; TestREDRecoversLoss). It
	// costs two more copies of a voice frame (about 2 x 32 kbit/s at Chromium's
	// default Opus rate), small beside even the lowest video layer, and audio is
	// what must never stop.
	redDistance = 2
	// redMaxDistance bounds redDistance and the encoders' fixed history.
	redMaxDistance = 2
	// redMaxBlock is the longest block a RED header can describe (10-bit length).
	redMaxBlock = 1<<10 - 1
	// redMaxTSOffset is the largest timestamp offset a RED header can carry (14 bits).
	redMaxTSOffset = 1<<14 - 1
	// redMaxPayload bounds a RED payload with its redundant blocks: with the RTP
	// header, SRTP tag and UDP/IP it stays well under 1200 bytes, the size WebRTC
	// stacks assume every path carries. A primary frame alone may be larger.
	redMaxPayload = 1100
	// redOutSize is the encoder's output buffer: room for the largest payload the
	// edge receives (its receive MTU) plus the one-byte primary header.
	redOutSize = 1500 + 1
)

// opusFmtp is Opus's fmtp in Lectern's media engines and answers: in-band FEC
// wanted (RFC 7587 §6.1: an encoder adds it only when the receiver's fmtp says
// useinbandfec=1, so this is what turns it on in a browser publisher), 10 ms
// frames the shortest; no stereo=1, so a browser sends its microphone mono, as
// voice needs. An answer's fmtp says what the answerer wants to receive.
const opusFmtp = "minptime=10;useinbandfec=1"

// answerOpusFmtp makes the coming answer of pc (its remote offer applied) carry
// opusFmtp for Opus in every audio section. pion's answer would repeat the offer's
// fmtp, which from an encoder that does not offer useinbandfec=1 (GStreamer's
// webrtcbin, some hardware encoders) or that offers stereo would not ask for FEC.
func answerOpusFmtp(pc *webrtc.PeerConnection) error {
	for _, tr := range pc.GetTransceivers() {
		if tr.Kind() != webrtc.RTPCodecTypeAudio || tr.Receiver() == nil {
			continue
		}
		codecs := tr.Receiver().GetParameters().Codecs
		changed := false
		for i, c := range codecs {
			if strings.EqualFold(c.MimeType, webrtc.MimeTypeOpus) && c.SDPFmtpLine != opusFmtp {
				codecs[i].SDPFmtpLine = opusFmtp
				changed = true
			}
		}
		if !changed {
			continue
		}
		if err := tr.SetCodecPreferences(codecs); err != nil {
			return fmt.Errorf("opus fmtp of the answer: %w", err)
		}
	}
	return nil
}

// registerRED offers audio/red on a subscribers' media engine, its blocks Opus
// (payload type 111, as registerCodecs registers it).
func registerRED(m *webrtc.MediaEngine) error {
	err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: "audio/red", ClockRate: 48000, Channels: 2, SDPFmtpLine: "111/111",
		},
		PayloadType: redPayloadType,
	}, webrtc.RTPCodecTypeAudio)
	if err != nil {
		return fmt.Errorf("register RED: %w", err)
	}
	return nil
}

// isRED reports whether mime is audio/red.
func isRED(mime string) bool { return strings.EqualFold(mime, "audio/red") }

// bindRED is an audio downtrack's choice at Bind: when the subscriber accepted
// audio/red whose blocks are its Opus (the fmtp names opus's payload type for
// every block, e.g. "111/111"), it returns the RED codec to report to pion and an
// encoder; otherwise opus and nil.
func bindRED(codecs []webrtc.RTPCodecParameters, opus webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, *redEncoder) {
	for _, c := range codecs {
		if !isRED(c.MimeType) || c.ClockRate != 48000 || !redBlocksAre(c.SDPFmtpLine, uint8(opus.PayloadType)) {
			continue
		}
		return c, newREDEncoder(uint8(c.PayloadType), uint8(opus.PayloadType), redDistance)
	}
	return opus, nil
}

// redBlocksAre reports whether a RED fmtp line ("111/111") names only payload
// type pt, so that blocks of pt are what the subscriber expects.
func redBlocksAre(fmtp string, pt uint8) bool {
	fields := strings.Split(strings.TrimSpace(fmtp), "/")
	for _, f := range fields {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 8)
		if err != nil || uint8(n) != pt {
			return false
		}
	}
	return len(fields) > 0
}

// redFrame is a previous primary frame kept for redundancy.
type redFrame struct {
	ts   uint32
	n    int // bytes in data; 0 = nothing to repeat (none yet, empty or too long)
	data [redMaxBlock]byte
}

// redEncoder builds the RED payloads of one downtrack, on its egress worker. It
// keeps the previous frames and its output in fixed buffers: nothing is allocated
// per packet.
type redEncoder struct {
	pt      uint8 // the subscriber's payload type for audio/red
	blockPT uint8 // its payload type for Opus: every block's
	// distance is how many previous frames are repeated, 0..redMaxDistance: the
	// subscriber's adapter lowers it when the link's estimate leaves no room for
	// the copies after the lowest video layer (adapter.chooseRED), the egress
	// worker reads it per packet. 0 still sends RED (the primary alone), the
	// payload format the subscriber negotiated.
	distance atomic.Int32
	// hist keeps the last redMaxDistance frames whatever the distance, so that a
	// distance raised again repeats frames at once.
	hist [redMaxDistance]redFrame
	next int  // hist slot of the oldest frame, overwritten next
	any  bool // a frame was recorded
	last uint32
	out  [redOutSize]byte
}

func newREDEncoder(pt, blockPT uint8, distance int) *redEncoder {
	e := &redEncoder{pt: pt, blockPT: blockPT}
	e.setDistance(distance)
	return e
}

// setDistance sets how many previous frames the next packets repeat, clamped to
// 0..redMaxDistance. Any goroutine.
func (e *redEncoder) setDistance(distance int) {
	e.distance.Store(int32(min(max(distance, 0), redMaxDistance)))
}

// encode returns the RED payload for the frame primary at RTP timestamp ts: a
// header per redundant block (F=1, block PT, ts offset, length), the primary's
// one-byte header (F=0, block PT), the redundant blocks oldest first, then the
// primary. A previous frame is left out when it is empty, its offset does not fit
// 14 bits (or is not positive: a gap, a reordering), or it would take the payload
// over redMaxPayload (the newest are kept first). With record, primary is kept
// for the next packets, unless it is not newer than the last frame kept (a
// retransmission or a late packet).
// encode returns nil when primary cannot fit the output buffer at all; the caller
// then sends it as plain Opus. The result is valid until the next call.
func (e *redEncoder) encode(ts uint32, primary []byte, record bool) []byte {
	if 1+len(primary) > len(e.out) {
		return nil
	}
	// The newest previous frames are chosen first (one copy of the last frame
	// recovers any single loss), written oldest first.
	budget := redMaxPayload - 1 - len(primary)
	var chosen [redMaxDistance]*redFrame
	k := redMaxDistance
	for i := range int(e.distance.Load()) {
		// The i-th newest frame kept.
		f := &e.hist[(e.next+redMaxDistance-1-i)%redMaxDistance]
		off := ts - f.ts
		if f.n == 0 || off == 0 || off > redMaxTSOffset || 4+f.n > budget {
			continue
		}
		budget -= 4 + f.n
		k--
		chosen[k] = f
	}
	p := 0
	for _, f := range chosen[k:] {
		off := ts - f.ts
		e.out[p] = 0x80 | e.blockPT
		e.out[p+1] = byte(off >> 6)
		e.out[p+2] = byte(off<<2) | byte(f.n>>8)
		e.out[p+3] = byte(f.n)
		p += 4
	}
	e.out[p] = e.blockPT & 0x7f
	p++
	for _, f := range chosen[k:] {
		p += copy(e.out[p:], f.data[:f.n])
	}
	p += copy(e.out[p:], primary)
	if record && (!e.any || int32(ts-e.last) > 0) {
		f := &e.hist[e.next]
		f.ts, f.n = ts, 0
		if len(primary) <= redMaxBlock {
			f.n = copy(f.data[:], primary)
		}
		e.next = (e.next + 1) % redMaxDistance
		e.any, e.last = true, ts
	}
	return e.out[:p]
}

// encodeRED returns what an audio downtrack sends for payload: to a subscriber
// that accepted RED, while the source is Opus, a RED packet (d.hdr's payload type
// becomes RED's); otherwise payload unchanged (PCMU/PCMA from a camera, or no
// RED). Retransmissions go out as RED with their frame alone and are not kept as
// redundancy. The egress worker only.
func (d *downTrack) encodeRED(payload []byte, retransmission bool) []byte {
	e := d.red
	if e == nil || d.pt != e.blockPT {
		return payload
	}
	out := e.encode(d.hdr.Timestamp, payload, !retransmission)
	if out == nil {
		return payload
	}
	d.hdr.PayloadType = e.pt
	return out
}
