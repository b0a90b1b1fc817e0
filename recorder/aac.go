package recorder

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/bits"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"

	"lectern/sfu"
)

var errBadAAC = errors.New("malformed MPEG4-GENERIC RTP payload")

// aacFormat is an MPEG4-GENERIC (RFC 3640) AAC stream's description, from the
// publisher's SDP fmtp: the AudioSpecificConfig and the layout of the AU headers.
type aacFormat struct {
	config mpeg4audio.AudioSpecificConfig
	// Bit lengths of the AU-header fields (RFC 3640 §3.2.1.1, §4.1). The AAC-hbr
	// mode has sizeLength 13, indexLength 3, indexDeltaLength 3.
	sizeLength, indexLength, indexDeltaLength int
	// auDuration is one access unit (1024 or 960 samples at the core sample rate)
	// in ticks of the RTP clock.
	auDuration int64
}

// isAAC reports whether c is MPEG-4 Audio in RFC 3640 framing.
func isAAC(c sfu.Codec) bool { return strings.EqualFold(c.MimeType, sfu.MimeAAC) }

// parseAACFormat reads the fmtp of an MPEG4-GENERIC track ("streamtype=5;
// mode=AAC-hbr; config=1190; sizelength=13; indexlength=3; indexdeltalength=3").
func parseAACFormat(c sfu.Codec) (*aacFormat, error) {
	f := &aacFormat{}
	config := c.FmtpParam("config")
	raw, err := hex.DecodeString(config)
	if err != nil || len(raw) == 0 {
		return nil, fmt.Errorf("%w: AAC: missing or bad config %q", ErrUnsupportedCodec, config)
	}
	if err := f.config.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("%w: AAC: config %q: %v", ErrUnsupportedCodec, config, err)
	}
	fields := []struct {
		name string
		dst  *int
		max  int
	}{
		{"sizelength", &f.sizeLength, 16}, {"indexlength", &f.indexLength, 16}, {"indexdeltalength", &f.indexDeltaLength, 16},
	}
	for _, fd := range fields {
		v := c.FmtpParam(fd.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > fd.max {
			return nil, fmt.Errorf("%w: AAC: %s=%q", ErrUnsupportedCodec, fd.name, v)
		}
		*fd.dst = n
	}
	if f.sizeLength == 0 {
		return nil, fmt.Errorf("%w: AAC: no sizelength (only AU-header framing, as in AAC-hbr and AAC-lbr, is supported)", ErrUnsupportedCodec)
	}
	// The AU-header fields of RFC 3640's generic mode, which its AAC modes
	// (AAC-lbr, AAC-hbr: what encoders and cameras send) leave out, and which
	// gortsplib's decoder does not read.
	for _, name := range []string{"ctsdeltalength", "dtsdeltalength", "randomaccessindication",
		"streamstateindication", "auxiliarydatasizelength"} {
		if v := c.FmtpParam(name); v != "" && v != "0" {
			return nil, fmt.Errorf("%w: AAC: %s=%q (only the AU headers of AAC-hbr and AAC-lbr are supported)", ErrUnsupportedCodec, name, v)
		}
	}
	samples := int64(mpeg4audio.SamplesPerAccessUnit)
	if f.config.FrameLengthFlag {
		samples = 960
	}
	if c.ClockRate == 0 || f.config.SampleRate <= 0 {
		return nil, fmt.Errorf("%w: AAC: clock rate %d, sample rate %d", ErrUnsupportedCodec, c.ClockRate, f.config.SampleRate)
	}
	f.auDuration = samples * int64(c.ClockRate) / int64(f.config.SampleRate)
	if f.auDuration <= 0 {
		return nil, fmt.Errorf("%w: AAC: clock rate %d too low for %d Hz", ErrUnsupportedCodec, c.ClockRate, f.config.SampleRate)
	}
	return f, nil
}

// aacDepacketizer extracts AAC access units from MPEG4-GENERIC RTP packets in
// order (RFC 3640 §3.2: AU headers, then the AUs; several AUs per packet, or one
// AU fragmented over packets), with gortsplib's decoder. After a loss it drops the
// AU being reassembled. It is used by one goroutine.
//
// gortsplib v4's decoder reads a fragment's AU-size as the fragment's size (what
// its encoder writes, and gortsplib-based servers send), where RFC 3640 §3.2.3.2
// has every fragment carry the whole AU's size (what ffmpeg and GStreamer send;
// gortsplib fixed it after v4): fragments of that kind, recognised by an AU-size
// beyond the packet, are reassembled here.
type aacDepacketizer struct {
	f   *aacFormat
	dec rtpmpeg4audio.Decoder
	pkt rtp.Packet // what dec reads: the sfu packet's header and payload, not a copy

	held  []*sfu.Packet // packets whose payloads dec refers to (the fragments of an AU)
	spent []*sfu.Packet // released at the next call: the last AUs out refer to them

	frag     []byte // AU being reassembled from RFC 3640 fragments (a copy)
	fragSize int    // its size, from the AU header of every fragment
	fragTS   uint32
	inFrag   bool
}

// newAACDepacketizer returns the depacketizer of a stream of format f.
func newAACDepacketizer(f *aacFormat) *aacDepacketizer {
	d := &aacDepacketizer{f: f}
	d.reset()
	return d
}

// reset drops what is being reassembled.
func (d *aacDepacketizer) reset() {
	d.dec = rtpmpeg4audio.Decoder{SizeLength: d.f.sizeLength, IndexLength: d.f.indexLength, IndexDeltaLength: d.f.indexDeltaLength}
	d.spent = append(d.spent, d.held...)
	clear(d.held)
	d.held = d.held[:0]
	d.frag, d.inFrag = nil, false
}

// lost tells the depacketizer that packets were lost before the next one.
func (d *aacDepacketizer) lost() { d.reset() }

// release gives back every packet the depacketizer retains (at the end of the track).
func (d *aacDepacketizer) release() {
	d.reset()
	d.spent = releasePackets(d.spent)
}

// push takes one packet and returns the access units it completes, in order: the
// first has the packet's timestamp, each next one f.auDuration later. They are
// valid until the next call. A malformed packet returns an error (and, when it
// ended an unfinished AU, the AUs of the packet).
func (d *aacDepacketizer) push(p *sfu.Packet) ([][]byte, error) {
	d.spent = releasePackets(d.spent)
	ts := p.Header.Timestamp
	size, data, isFrag := d.fragment(p.Payload)
	var stale error
	if d.inFrag {
		if ts == d.fragTS && isFrag && size == d.fragSize {
			return d.continueFragment(data, p.Header.Marker)
		}
		if ts == d.fragTS {
			d.reset()
			return nil, fmt.Errorf("%w: packet does not continue the fragmented AU of %d bytes", errBadAAC, d.fragSize)
		}
		d.reset() // its last fragment never came
		stale = fmt.Errorf("%w: fragmented AU of %d bytes left incomplete", errBadAAC, d.fragSize)
	}
	if len(d.held) > 0 && d.held[0].Header.Timestamp != ts {
		// The decoder does not look at timestamps: a fragment of another AU would
		// be taken for the next one.
		d.reset()
		stale = fmt.Errorf("%w: fragmented AU left incomplete", errBadAAC)
	}
	if isFrag && !p.Header.Marker {
		d.reset()
		d.frag = append(make([]byte, 0, size), data...)
		d.fragSize, d.fragTS, d.inFrag = size, ts, true
		return nil, stale
	}
	aus, err := d.decode(p)
	return aus, errors.Join(stale, err)
}

// decode hands p to gortsplib's decoder.
func (d *aacDepacketizer) decode(p *sfu.Packet) ([][]byte, error) {
	if len(p.Payload) >= 2 && int(binary.BigEndian.Uint16(p.Payload)) > 8*(len(p.Payload)-2) {
		// The decoder would make room for AU headers the packet cannot hold.
		d.reset()
		return nil, fmt.Errorf("%w: AU-headers-length of %d bits in %d bytes", errBadAAC, binary.BigEndian.Uint16(p.Payload), len(p.Payload))
	}
	d.pkt.Header, d.pkt.Payload = p.Header, p.Payload
	aus, err := d.dec.Decode(&d.pkt)
	d.pkt = rtp.Packet{}
	p.Retain() // the AUs out, or the decoder's fragments, refer to its payload
	d.held = append(d.held, p)
	switch {
	case errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded):
		if len(d.held) > maxAACFragments {
			d.reset()
			return nil, fmt.Errorf("%w: AU fragmented over more than %d packets", errBadAAC, maxAACFragments)
		}
		return nil, nil
	case err != nil:
		d.reset()
		return nil, fmt.Errorf("%w: %w", errBadAAC, err)
	}
	d.spent = append(d.spent, d.held...)
	clear(d.held)
	d.held = d.held[:0]
	for _, au := range aus {
		if len(au) == 0 || len(au) > mpeg4audio.MaxAccessUnitSize {
			return nil, fmt.Errorf("%w: AU of %d bytes", errBadAAC, len(au))
		}
	}
	return aus, nil
}

// maxAACFragments bounds the packets of a fragmented AU: an AU is at most
// mpeg4audio.MaxAccessUnitSize (5 KiB) bytes.
const maxAACFragments = 64

// fragment reports whether payload is an RFC 3640 fragment: one AU header whose
// AU-size is beyond the packet's data; it returns that size and the data.
func (d *aacDepacketizer) fragment(payload []byte) (size int, data []byte, ok bool) {
	headerBits := d.f.sizeLength + d.f.indexLength
	headerBytes := (headerBits + 7) / 8
	if len(payload) < 2+headerBytes || int(binary.BigEndian.Uint16(payload)) != headerBits {
		return 0, nil, false
	}
	pos := 0
	n, err := bits.ReadBits(payload[2:], &pos, d.f.sizeLength)
	data = payload[2+headerBytes:]
	if err != nil || int(n) <= len(data) || n > mpeg4audio.MaxAccessUnitSize {
		return 0, nil, false
	}
	return int(n), data, true
}

// continueFragment adds the next RFC 3640 fragment of the AU being reassembled.
func (d *aacDepacketizer) continueFragment(data []byte, marker bool) ([][]byte, error) {
	if len(d.frag)+len(data) > d.fragSize {
		d.reset()
		return nil, fmt.Errorf("%w: fragments overrun the AU of %d bytes", errBadAAC, d.fragSize)
	}
	d.frag = append(d.frag, data...)
	if !marker {
		return nil, nil
	}
	if len(d.frag) < d.fragSize {
		d.reset()
		return nil, fmt.Errorf("%w: last fragment leaves the AU short", errBadAAC)
	}
	au := d.frag
	d.frag, d.inFrag = nil, false
	return [][]byte{au}, nil
}
