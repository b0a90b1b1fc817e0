package transcode

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"lectern/sfu"
)

var errBadAAC = errors.New("malformed MPEG4-GENERIC RTP payload")

// aacFormat is what the transcoder needs of an MPEG4-GENERIC (RFC 3640) track's
// fmtp: the layout of the AU headers, and the ADTS header fields that let ffmpeg
// decode the bare access units.
type aacFormat struct {
	sizeLength, indexLength, indexDeltaLength int
	profile, freqIndex, chanConfig            byte // ADTS header fields
}

// adtsRates are the sampling frequencies by index (ISO/IEC 14496-3 §1.6.3.4).
var adtsRates = []int{96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}

// parseAACFormat reads an MPEG4-GENERIC fmtp ("streamtype=5; mode=AAC-hbr;
// config=1190; sizelength=13; indexlength=3; indexdeltalength=3").
func parseAACFormat(c sfu.Codec) (*aacFormat, error) {
	raw, err := hex.DecodeString(c.FmtpParam("config"))
	if err != nil || len(raw) == 0 {
		return nil, fmt.Errorf("AAC: missing or bad config %q", c.FmtpParam("config"))
	}
	var asc mpeg4audio.AudioSpecificConfig
	if err := asc.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("AAC: config %q: %w", c.FmtpParam("config"), err)
	}
	f := &aacFormat{}
	for _, fd := range []struct {
		name string
		dst  *int
	}{{"sizelength", &f.sizeLength}, {"indexlength", &f.indexLength}, {"indexdeltalength", &f.indexDeltaLength}} {
		v := c.FmtpParam(fd.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 16 {
			return nil, fmt.Errorf("AAC: %s=%q", fd.name, v)
		}
		*fd.dst = n
	}
	if f.sizeLength == 0 {
		return nil, errors.New("AAC: no sizelength (only the AU headers of AAC-hbr and AAC-lbr are supported)")
	}
	if f.indexLength != f.indexDeltaLength {
		return nil, fmt.Errorf("AAC: indexlength %d != indexdeltalength %d", f.indexLength, f.indexDeltaLength)
	}
	// The optional AU-header fields that the AAC modes leave out.
	for _, name := range []string{"ctsdeltalength", "dtsdeltalength", "randomaccessindication",
		"streamstateindication", "auxiliarydatasizelength"} {
		if v := c.FmtpParam(name); v != "" && v != "0" {
			return nil, fmt.Errorf("AAC: %s=%q (only the AU headers of AAC-hbr and AAC-lbr are supported)", name, v)
		}
	}
	// ADTS carries the object types 1-4 (Main, LC, SSR, LTP) as profile-1; HE-AAC
	// (SBR, PS) is sent as its LC core, which decoders extend implicitly.
	switch {
	case asc.Type >= 1 && asc.Type <= 4:
		f.profile = byte(asc.Type - 1)
	case asc.Type == 5 || asc.Type == 29:
		f.profile = 1
	default:
		return nil, fmt.Errorf("AAC: object type %d cannot be transcoded", asc.Type)
	}
	f.freqIndex = 0xFF
	for i, r := range adtsRates {
		if r == asc.SampleRate {
			f.freqIndex = byte(i)
		}
	}
	if f.freqIndex == 0xFF {
		return nil, fmt.Errorf("AAC: sample rate %d", asc.SampleRate)
	}
	if asc.ChannelCount < 1 || asc.ChannelCount > 8 {
		return nil, fmt.Errorf("AAC: %d channels", asc.ChannelCount)
	}
	f.chanConfig = byte(asc.ChannelCount)
	if f.chanConfig == 8 {
		f.chanConfig = 7 // 7.1 is channel configuration 7
	}
	return f, nil
}

// adtsHeader writes the 7-byte ADTS header (ISO/IEC 14496-3 §1.A.2.2, no CRC) of an
// access unit of auLen bytes into h.
func (f *aacFormat) adtsHeader(h *[7]byte, auLen int) {
	n := auLen + 7
	h[0] = 0xFF
	h[1] = 0xF1 // sync word end, MPEG-4, layer 0, no CRC
	h[2] = f.profile<<6 | f.freqIndex<<2 | f.chanConfig>>2
	h[3] = (f.chanConfig&3)<<6 | byte(n>>11)&3
	h[4] = byte(n >> 3)
	h[5] = byte(n&7)<<5 | 0x1F // buffer fullness 0x7FF: variable rate
	h[6] = 0xFC
}

// maxAUSize bounds one access unit (ADTS frame lengths have 13 bits).
const maxAUSize = 1<<13 - 1 - 7

// aacDepacketizer extracts access units from MPEG4-GENERIC RTP payloads (RFC 3640
// §3.2: an AU-headers-length, AU headers of sizelength+indexlength bits, then the
// AUs). A packet whose marker bit is clear carries a fragment of one AU, continued
// by the next packets of the same timestamp up to one with the marker (§3.2.3.1);
// encoders disagree on what a fragment's AU-size says (the whole AU's, as the RFC
// has it, or the fragment's), so only the data is taken. Used by one goroutine.
type aacDepacketizer struct {
	f      *aacFormat
	aus    [][]byte // the last packet's AUs (into its payload, or frag)
	frag   []byte   // the AU being reassembled
	fragTS uint32
	inFrag bool
}

// push returns the AUs that payload completes; they are valid until the next call
// and while the packet is held.
func (d *aacDepacketizer) push(payload []byte, ts uint32, marker bool) ([][]byte, error) {
	d.aus = d.aus[:0]
	if len(payload) < 2 {
		d.inFrag = false
		return nil, fmt.Errorf("%w: %d bytes", errBadAAC, len(payload))
	}
	headerBits := int(binary.BigEndian.Uint16(payload))
	headerBytes := (headerBits + 7) / 8
	if headerBits == 0 || 2+headerBytes > len(payload) {
		d.inFrag = false
		return nil, fmt.Errorf("%w: AU-headers-length of %d bits in %d bytes", errBadAAC, headerBits, len(payload))
	}
	headers, data := payload[2:2+headerBytes], payload[2+headerBytes:]
	if !marker || d.inFrag && ts == d.fragTS {
		// A fragment: one AU header, then part of the AU.
		if !d.inFrag || ts != d.fragTS {
			d.frag, d.fragTS, d.inFrag = d.frag[:0], ts, true
		}
		if len(d.frag)+len(data) > maxAUSize {
			d.inFrag = false
			return nil, fmt.Errorf("%w: fragmented AU over %d bytes", errBadAAC, maxAUSize)
		}
		d.frag = append(d.frag, data...)
		if !marker {
			return nil, nil
		}
		d.inFrag = false
		if len(d.frag) == 0 {
			return nil, fmt.Errorf("%w: empty fragmented AU", errBadAAC)
		}
		return append(d.aus, d.frag), nil
	}
	d.inFrag = false
	perHeader := d.f.sizeLength + d.f.indexLength
	pos := 0
	for pos+perHeader <= headerBits {
		size := readBits(headers, pos, d.f.sizeLength)
		pos += perHeader
		if size == 0 || size > len(data) {
			return d.aus, fmt.Errorf("%w: AU of %d bytes in %d", errBadAAC, size, len(data))
		}
		d.aus = append(d.aus, data[:size])
		data = data[size:]
	}
	return d.aus, nil
}

// readBits reads n (≤ 16) bits of buf from bit pos, most significant first; bits
// beyond buf read as 0 (the caller checked the lengths).
func readBits(buf []byte, pos, n int) int {
	v := 0
	for i := range n {
		b := pos + i
		v <<= 1
		if b/8 < len(buf) && buf[b/8]&(0x80>>(b%8)) != 0 {
			v |= 1
		}
	}
	return v
}
