package rtsp

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	gsdp "github.com/bluenviron/gortsplib/v4/pkg/sdp"

	"lectern/sfu"
)

// sdpMedia is one media section as Lectern's codec rules (planMedias) read it:
// its type, formats (payload types, in order), control, and each format's rtpmap and
// fmtp. It is made from gortsplib's description (see planDescription).
type sdpMedia struct {
	typ     string   // "video", "audio", "application", …
	formats []string // payload types, as listed on the m= line
	control string
	rtpmap  map[string]string // payload type -> "H264/90000"
	fmtp    map[string]string // payload type -> "packetization-mode=1;…"
}

// unmarshalSDP parses a session description with gortsplib. The error wraps
// ErrBadSDP.
func unmarshalSDP(body []byte) (*description.Session, error) {
	var sd gsdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		if !strings.Contains(string(body), "m=") {
			return nil, fmt.Errorf("%w: no media sections", ErrBadSDP)
		}
		return nil, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	var desc description.Session
	if err := desc.Unmarshal(&sd); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	if len(desc.Medias) == 0 {
		return nil, fmt.Errorf("%w: no media sections", ErrBadSDP)
	}
	return &desc, nil
}

// planDescription decides which media of a gortsplib description Lectern forwards
// (see planMedias).
func planDescription(desc *description.Session) (plans []mediaPlan, skipped []string, err error) {
	medias := make([]sdpMedia, 0, len(desc.Medias))
	for _, m := range desc.Medias {
		sm := sdpMedia{typ: string(m.Type), control: m.Control, rtpmap: map[string]string{}, fmtp: map[string]string{}}
		for _, f := range m.Formats {
			pt := strconv.Itoa(int(f.PayloadType()))
			sm.formats = append(sm.formats, pt)
			if rm := f.RTPMap(); rm != "" {
				sm.rtpmap[pt] = rm
			}
			if fm := fmtpString(f); fm != "" {
				sm.fmtp[pt] = fm
			}
		}
		medias = append(medias, sm)
	}
	return planMedias(medias)
}

// fmtpString returns a format's fmtp parameters as an SDP fmtp value.
func fmtpString(f format.Format) string {
	m := f.FMTP()
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ";")
}

// mediaPlan is how one media section of a peer's SDP becomes a session track.
type mediaPlan struct {
	index   int    // media section index
	local   string // track local name: "video", "screen" or "audio"
	kind    sfu.Kind
	codec   sfu.Codec
	pt      uint8
	control string
	sps     []byte // H.264 parameter sets from sprop-parameter-sets, if any
	pps     []byte
}

// planMedias decides which media sections Lectern forwards: up to two H.264
// video sections (camera, then screen) and the first supported audio section. Any
// other video codec refuses the whole description (a lecture without its picture is
// no use, and silence about it would be worse); unsupported audio is left out and
// reported in skipped. The error wraps ErrUnsupportedCodec.
func planMedias(medias []sdpMedia) (plans []mediaPlan, skipped []string, err error) {
	videos, audios := 0, 0
	for i, m := range medias {
		switch m.typ {
		case "video":
			p, reason := planVideo(m)
			if reason != "" {
				return nil, nil, fmt.Errorf("%w: video section %d: %s", ErrUnsupportedCodec, i, reason)
			}
			if videos == 2 {
				skipped = append(skipped, fmt.Sprintf("video section %d: at most two video streams are forwarded", i))
				continue
			}
			p.local = []string{"video", "screen"}[videos]
			videos++
			p.index = i
			plans = append(plans, p)
		case "audio":
			p, reason := planAudio(m)
			switch {
			case reason != "":
				skipped = append(skipped, fmt.Sprintf("audio section %d: %s", i, reason))
			case audios == 1:
				skipped = append(skipped, fmt.Sprintf("audio section %d: only one audio stream is forwarded", i))
			default:
				p.local, p.index = "audio", i
				audios++
				plans = append(plans, p)
			}
		default:
			skipped = append(skipped, fmt.Sprintf("section %d: %s media is not forwarded", i, m.typ))
		}
	}
	if len(plans) == 0 {
		return nil, skipped, fmt.Errorf("%w: nothing usable (%s)", ErrUnsupportedCodec, strings.Join(skipped, "; "))
	}
	return plans, skipped, nil
}

// encoding returns the encoding name (upper case), clock rate and channels of pt.
func (m sdpMedia) encoding(pt string) (name string, rate, channels int) {
	if rm, ok := m.rtpmap[pt]; ok {
		parts := strings.Split(rm, "/")
		name = strings.ToUpper(parts[0])
		if len(parts) > 1 {
			rate, _ = strconv.Atoi(parts[1])
		}
		channels = 1
		if len(parts) > 2 {
			channels, _ = strconv.Atoi(parts[2])
		}
		return name, rate, channels
	}
	switch pt { // static payload types (RFC 3551 §6)
	case "0":
		return "PCMU", 8000, 1
	case "8":
		return "PCMA", 8000, 1
	case "26":
		return "JPEG", 90000, 0
	case "32":
		return "MPV", 90000, 0
	}
	return "", 0, 0
}

func parsePT(s string) (uint8, bool) {
	n, err := strconv.Atoi(s)
	return uint8(n), err == nil && n >= 0 && n < 128
}

func planVideo(m sdpMedia) (mediaPlan, string) {
	var names []string
	for _, pt := range m.formats {
		name, _, _ := m.encoding(pt)
		if name != "H264" {
			if name == "" {
				name = "payload type " + pt
			}
			names = append(names, name)
			continue
		}
		n, ok := parsePT(pt)
		if !ok {
			continue
		}
		p := mediaPlan{kind: sfu.KindVideo, pt: n, control: m.control}
		fmtp := m.fmtp[pt]
		if mode := sfu.FmtpParam(fmtp, "packetization-mode"); mode == "2" {
			names = append(names, "H264 packetization-mode=2")
			continue
		}
		p.sps, p.pps = parseSprop(sfu.FmtpParam(fmtp, "sprop-parameter-sets"))
		p.codec = sfu.Codec{MimeType: sfu.MimeH264, ClockRate: 90000, Fmtp: h264Fmtp(sfu.FmtpParam(fmtp, "profile-level-id"), p.sps, p.pps)}
		return p, ""
	}
	switch {
	case slices.Contains(names, "H265") || slices.Contains(names, "HEVC"):
		return mediaPlan{}, "H.265 is not supported: classrooms' browsers cannot decode it and Lectern does not transcode; set the camera or encoder to H.264"
	case len(names) > 0:
		return mediaPlan{}, fmt.Sprintf("codec %s is not supported (set the camera or encoder to H.264)", strings.Join(names, ", "))
	}
	return mediaPlan{}, "no H.264 format"
}

func planAudio(m sdpMedia) (mediaPlan, string) {
	var names []string
	for _, pt := range m.formats {
		n, ok := parsePT(pt)
		if !ok {
			continue
		}
		name, rate, ch := m.encoding(pt)
		p := mediaPlan{kind: sfu.KindAudio, pt: n, control: m.control}
		switch {
		case name == "OPUS" && rate == 48000:
			p.codec = sfu.Codec{MimeType: sfu.MimeOpus, ClockRate: 48000, Channels: 2, Fmtp: m.fmtp[pt]}
		case name == "PCMU" && rate == 8000:
			p.codec = sfu.Codec{MimeType: sfu.MimePCMU, ClockRate: 8000, Channels: 1}
		case name == "PCMA" && rate == 8000:
			p.codec = sfu.Codec{MimeType: sfu.MimePCMA, ClockRate: 8000, Channels: 1}
		case name == "MPEG4-GENERIC":
			codec, err := aacCodec(rate, ch, m.fmtp[pt])
			if err != nil {
				names = append(names, "AAC ("+err.Error()+")")
				continue
			}
			p.codec = codec
		default:
			if name == "" {
				name = "payload type " + pt
			}
			names = append(names, name)
			continue
		}
		return p, ""
	}
	return mediaPlan{}, fmt.Sprintf("codec %s is not supported (Opus, PCMU, PCMA or AAC are)", strings.Join(names, ", "))
}

// aacCodec checks an MPEG4-GENERIC format (RFC 3640) and returns its codec, with the
// fmtp kept whole: readers and the recorder need mode, sizelength and config.
func aacCodec(rate, channels int, fmtp string) (sfu.Codec, error) {
	conf, err := sfu.AACConfig(fmtp)
	if err != nil {
		return sfu.Codec{}, err
	}
	if rate <= 0 {
		rate = conf.SampleRate
	}
	if channels <= 0 {
		channels = conf.ChannelCount
	}
	return sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: uint32(rate), Channels: uint16(channels), Fmtp: fmtp}, nil
}

// parseSprop decodes sprop-parameter-sets (RFC 6184 §8.1) into the SPS and PPS.
func parseSprop(s string) (sps, pps []byte) {
	for _, part := range strings.Split(s, ",") {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(part))
		if err != nil || len(b) == 0 {
			continue
		}
		switch b[0] & 0x1f {
		case naluSPS:
			if sps == nil && len(b) >= 4 {
				sps = b
			}
		case naluPPS:
			if pps == nil {
				pps = b
			}
		}
	}
	return sps, pps
}

// h264Fmtp builds the fmtp Lectern declares for an H.264 track: packetization-mode
// 1 (the edge emits FU-A), the profile (from the SPS when the peer gave none), and
// the parameter sets when known.
func h264Fmtp(profile string, sps, pps []byte) string {
	if len(sps) >= 4 {
		profile = hex.EncodeToString(sps[1:4])
	}
	if _, err := hex.DecodeString(profile); err != nil || len(profile) != 6 {
		profile = "42e01f"
	}
	f := "packetization-mode=1;profile-level-id=" + strings.ToLower(profile)
	if sps != nil && pps != nil {
		f += ";sprop-parameter-sets=" + base64.StdEncoding.EncodeToString(sps) + "," + base64.StdEncoding.EncodeToString(pps)
	}
	return f
}
