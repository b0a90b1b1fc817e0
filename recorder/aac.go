package recorder

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/bluenviron/mediacommon/v2/pkg/bits"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"lectern/sfu"
)

// maxAUsPerPacket bounds the access units one RTP packet may announce: a 1500-byte
// packet holds a few dozen AAC frames at most.
const maxAUsPerPacket = 128

var errBadAAC = errors.New("malformed MPEG4-GENERIC RTP payload")

// aacFormat is an MPEG4-GENERIC (RFC 3640) AAC stream's description, from the
// publisher's SDP fmtp: the AudioSpecificConfig and the layout of the AU headers.
type aacFormat struct {
	config mpeg4audio.AudioSpecificConfig
	// Bit lengths of the AU-header fields (RFC 3640 §3.2.1.1, §4.1). The AAC-hbr
	// mode has sizeLength 13, indexLength 3, indexDeltaLength 3.
	sizeLength, indexLength, indexDeltaLength int
	ctsDeltaLength, dtsDeltaLength            int
	randomAccess                              bool
	streamStateLength                         int
	auxSizeLength                             int // auxiliary section (§3.2.2); 0: absent
	// auDuration is one access unit (1024 or 960 samples at the core sample rate)
	// in ticks of the RTP clock.
	auDuration int64
}

// isAAC reports whether c is MPEG-4 Audio in RFC 3640 framing.
func isAAC(c sfu.Codec) bool { return strings.EqualFold(c.MimeType, sfu.MimeAAC) }

// parseAACFormat reads the fmtp of an MPEG4-GENERIC track ("streamtype=5;
// mode=AAC-hbr; config=1190; sizelength=13; indexlength=3; indexdeltalength=3").
func parseAACFormat(c sfu.Codec) (*aacFormat, error) {
	params := map[string]string{}
	for _, kv := range strings.Split(c.Fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		params[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	f := &aacFormat{}
	raw, err := hex.DecodeString(params["config"])
	if err != nil || len(raw) == 0 {
		return nil, fmt.Errorf("%w: AAC: missing or bad config %q", ErrUnsupportedCodec, params["config"])
	}
	if err := f.config.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("%w: AAC: config %q: %v", ErrUnsupportedCodec, params["config"], err)
	}
	fields := []struct {
		name string
		dst  *int
		max  int
	}{
		{"sizelength", &f.sizeLength, 16}, {"indexlength", &f.indexLength, 16}, {"indexdeltalength", &f.indexDeltaLength, 16},
		{"ctsdeltalength", &f.ctsDeltaLength, 32}, {"dtsdeltalength", &f.dtsDeltaLength, 32},
		{"streamstateindication", &f.streamStateLength, 32}, {"auxiliarydatasizelength", &f.auxSizeLength, 32},
	}
	for _, fd := range fields {
		v, ok := params[fd.name]
		if !ok {
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
	f.randomAccess = params["randomaccessindication"] == "1"
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

// aacDepacketizer extracts AAC access units from RTP packets in order (RFC 3640
// §3.2: an AU-header section, an optional auxiliary section, then the AUs; several
// AUs per packet, or one AU fragmented over packets sharing a timestamp). After a
// loss it drops the AU being reassembled. It is used by one goroutine.
type aacDepacketizer struct {
	f        *aacFormat
	frag     []byte // fragmented AU being reassembled
	fragSize int    // its size, from the AU header of every fragment
	fragTS   uint32
	inFrag   bool
}

// lost tells the depacketizer that packets were lost before the next one.
func (d *aacDepacketizer) lost() { d.frag, d.inFrag = nil, false }

// push takes one packet's payload and returns the access units it completes, in
// order: the first has RTP timestamp ts, each next one f.auDuration later. The
// AUs are copies (the packet's memory is recycled). A malformed packet returns an
// error (and the AUs of the packet that could be recovered, if any).
func (d *aacDepacketizer) push(payload []byte, ts uint32, marker bool) ([][]byte, error) {
	sizes, data, err := d.f.split(payload)
	if err != nil {
		d.lost()
		return nil, err
	}
	var stale error
	if d.inFrag {
		if ts == d.fragTS {
			return d.continueFragment(sizes, data, marker)
		}
		d.lost() // its last fragment never came: the AU is incomplete
		stale = fmt.Errorf("%w: fragmented AU of %d bytes left incomplete", errBadAAC, d.fragSize)
	}
	if len(sizes) == 1 && sizes[0] > len(data) {
		if marker {
			return nil, errors.Join(stale, fmt.Errorf("%w: AU of %d bytes in %d", errBadAAC, sizes[0], len(data)))
		}
		d.frag = append(make([]byte, 0, sizes[0]), data...)
		d.fragSize, d.fragTS, d.inFrag = sizes[0], ts, true
		return nil, stale
	}
	aus := make([][]byte, 0, len(sizes))
	for _, n := range sizes {
		if n > len(data) {
			return aus, errors.Join(stale, fmt.Errorf("%w: AU of %d bytes in %d", errBadAAC, n, len(data)))
		}
		aus = append(aus, append([]byte(nil), data[:n]...))
		data = data[n:]
	}
	return aus, stale
}

// continueFragment adds the next fragment of the AU being reassembled.
func (d *aacDepacketizer) continueFragment(sizes []int, data []byte, marker bool) ([][]byte, error) {
	if len(sizes) != 1 || sizes[0] != d.fragSize || len(d.frag)+len(data) > d.fragSize {
		d.lost()
		return nil, fmt.Errorf("%w: fragment does not continue the AU of %d bytes", errBadAAC, d.fragSize)
	}
	d.frag = append(d.frag, data...)
	if len(d.frag) < d.fragSize {
		if marker {
			d.lost()
			return nil, fmt.Errorf("%w: last fragment leaves the AU short", errBadAAC)
		}
		return nil, nil
	}
	au := d.frag
	d.frag, d.inFrag = nil, false
	return [][]byte{au}, nil
}

// split parses the AU-header section (and skips the auxiliary section) of a
// payload, returning the AU sizes and the AU data section.
func (f *aacFormat) split(p []byte) (sizes []int, data []byte, err error) {
	if len(p) < 2 {
		return nil, nil, fmt.Errorf("%w: %d bytes", errBadAAC, len(p))
	}
	headerBits := int(binary.BigEndian.Uint16(p))
	headerBytes := (headerBits + 7) / 8
	if headerBits == 0 || 2+headerBytes > len(p) {
		return nil, nil, fmt.Errorf("%w: AU-headers-length %d bits in %d bytes", errBadAAC, headerBits, len(p))
	}
	hdr := p[2 : 2+headerBytes]
	for pos := 0; pos < headerBits; {
		size, err := f.readHeader(hdr, &pos, len(sizes) == 0)
		if err != nil {
			return nil, nil, err
		}
		if pos > headerBits {
			return nil, nil, fmt.Errorf("%w: AU header overruns AU-headers-length %d", errBadAAC, headerBits)
		}
		if size == 0 || size > mpeg4audio.MaxAccessUnitSize || len(sizes) == maxAUsPerPacket {
			return nil, nil, fmt.Errorf("%w: AU %d of %d bytes", errBadAAC, len(sizes), size)
		}
		sizes = append(sizes, size)
	}
	data, err = f.skipAuxiliary(p[2+headerBytes:])
	return sizes, data, err
}

// readHeader reads one AU-header (RFC 3640 §3.2.1.1) and returns its AU-size.
// Interleaving (a non-zero AU-Index or AU-Index-delta) is refused.
func (f *aacFormat) readHeader(hdr []byte, pos *int, first bool) (int, error) {
	size, err := readBits(hdr, pos, f.sizeLength)
	if err != nil {
		return 0, err
	}
	idxLen := f.indexDeltaLength
	if first {
		idxLen = f.indexLength
	}
	idx, err := readBits(hdr, pos, idxLen)
	if err != nil {
		return 0, err
	}
	if idx != 0 {
		return 0, fmt.Errorf("%w: interleaved AUs (index %d) are not supported", errBadAAC, idx)
	}
	for _, deltaLen := range []int{f.ctsDeltaLength, f.dtsDeltaLength} {
		if deltaLen == 0 {
			continue
		}
		present, err := readBits(hdr, pos, 1)
		if err != nil {
			return 0, err
		}
		if _, err := readBits(hdr, pos, int(present)*deltaLen); err != nil {
			return 0, err
		}
	}
	skip := f.streamStateLength
	if f.randomAccess {
		skip++
	}
	if _, err := readBits(hdr, pos, skip); err != nil {
		return 0, err
	}
	return int(size), nil
}

// skipAuxiliary returns b after the auxiliary section (RFC 3640 §3.2.2), if the
// format has one.
func (f *aacFormat) skipAuxiliary(b []byte) ([]byte, error) {
	if f.auxSizeLength == 0 {
		return b, nil
	}
	pos := 0
	n, err := readBits(b, &pos, f.auxSizeLength)
	if err != nil {
		return nil, err
	}
	total := (uint64(f.auxSizeLength) + n + 7) / 8
	if total > uint64(len(b)) {
		return nil, fmt.Errorf("%w: auxiliary section of %d bits in %d bytes", errBadAAC, n, len(b))
	}
	return b[total:], nil
}

// readBits reads n (≤ 64) bits, zero bits being nothing at all.
func readBits(b []byte, pos *int, n int) (uint64, error) {
	if n == 0 {
		return 0, nil
	}
	v, err := bits.ReadBits(b, pos, n)
	if err != nil {
		return 0, fmt.Errorf("%w: truncated AU header", errBadAAC)
	}
	return v, nil
}
