package clip

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// Ogg page layout (RFC 3533 §6): a 27-byte header whose last byte is the
// number of lacing values, then the lacing values, then the segments.
const (
	oggHeaderLen       = 27
	oggContinuedPacket = 0x01
)

var errBadOpusHead = errors.New("clip: Ogg stream does not start with an OpusHead packet")

// oggPackets returns the packets of the first logical stream of an Ogg file,
// reassembled from lacing values: a packet may span pages and a page may
// hold several packets. Pages are framed and checksummed by pion's
// oggreader; the lacing values are read from the same bytes.
func oggPackets(data []byte) ([][]byte, error) {
	src := bytes.NewReader(data)
	r, err := oggreader.NewWithOptions(src)
	if err != nil {
		return nil, err
	}
	var packets [][]byte
	var partial []byte
	var serial uint32
	for page := 0; ; page++ {
		start := len(data) - src.Len()
		payload, hdr, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("clip: Ogg page %d: %w", page, err)
		}
		if page == 0 {
			serial = hdr.Serial
		} else if hdr.Serial != serial {
			continue
		}
		raw := data[start:]
		lacing := raw[oggHeaderLen : oggHeaderLen+int(raw[oggHeaderLen-1])]
		if raw[5]&oggContinuedPacket == 0 {
			partial = partial[:0]
		}
		for _, l := range lacing {
			partial = append(partial, payload[:l]...)
			payload = payload[l:]
			if l < 255 {
				packets = append(packets, partial)
				partial = nil
			}
		}
	}
	return packets, nil
}

// parseOpus parses an Ogg Opus file (RFC 7845) into Opus frames, skipping the
// OpusHead and OpusTags header packets.
func parseOpus(data []byte) ([]OpusFrame, error) {
	packets, err := oggPackets(data)
	if err != nil {
		return nil, err
	}
	if len(packets) < 2 || !bytes.HasPrefix(packets[0], []byte(oggreader.HeaderOpusID)) {
		return nil, errBadOpusHead
	}
	if _, err := oggreader.ParseOpusHead(packets[0]); err != nil {
		return nil, fmt.Errorf("clip: OpusHead: %w", err)
	}
	frames := make([]OpusFrame, 0, len(packets)-2)
	var pts time.Duration
	for i, p := range packets[2:] {
		d, err := opusPacketDuration(p)
		if err != nil {
			return nil, fmt.Errorf("clip: Opus packet %d: %w", i, err)
		}
		frames = append(frames, OpusFrame{Data: p, PTS: pts, Duration: d})
		pts += d
	}
	return frames, nil
}

// opusPacketDuration returns the audio length of an Opus packet from its TOC
// byte (RFC 6716 §3.1).
func opusPacketDuration(p []byte) (time.Duration, error) {
	if len(p) == 0 {
		return 0, errors.New("empty packet")
	}
	config := p[0] >> 3
	var frame time.Duration
	switch {
	case config < 12: // SILK-only: 10, 20, 40, 60 ms
		frame = [4]time.Duration{10, 20, 40, 60}[config%4] * time.Millisecond
	case config < 16: // Hybrid: 10, 20 ms
		frame = [2]time.Duration{10, 20}[config%2] * time.Millisecond
	default: // CELT-only: 2.5, 5, 10, 20 ms
		frame = [4]time.Duration{2500, 5000, 10000, 20000}[config%4] * time.Microsecond
	}
	count := 1
	switch p[0] & 0x03 {
	case 1, 2:
		count = 2
	case 3:
		if len(p) < 2 {
			return 0, errors.New("code 3 packet without frame count")
		}
		count = int(p[1] & 0x3f)
	}
	return time.Duration(count) * frame, nil
}
