package peer

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"lectern/sfu"
)

// h264Profiles are the profile-level-ids registered for H.264, packetization-mode 1:
// constrained baseline and baseline (browsers), main and high (OBS, encoders). Pion
// matches them by profile, not level.
var h264Profiles = []string{"42e01f", "42001f", "4d001f", "640c1f"}

// opusPayloadType and h264PayloadType are the dynamic payload types
// registerCodecs gives; relayPayloadTypes leaves them out.
const opusPayloadType webrtc.PayloadType = 111

func h264PayloadType(profile int) webrtc.PayloadType { return webrtc.PayloadType(102 + 2*profile) }

func registerCodecs(m *webrtc.MediaEngine) error {
	videoFB := []webrtc.RTCPFeedback{
		{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"},
		{Type: webrtc.TypeRTCPFBTransportCC},
	}
	for i, profile := range h264Profiles {
		err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
				SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profile,
				RTCPFeedback: videoFB,
			},
			PayloadType: h264PayloadType(i),
		}, webrtc.RTPCodecTypeVideo)
		if err != nil {
			return fmt.Errorf("register H.264 %s: %w", profile, err)
		}
	}
	err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine:  opusFmtp,
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}},
		},
		PayloadType: opusPayloadType,
	}, webrtc.RTPCodecTypeAudio)
	if err != nil {
		return fmt.Errorf("register Opus: %w", err)
	}
	// G.711 is never negotiated for publishers (parseOffer wants Opus) but lets an IP
	// camera's PCMU/PCMA audio reach browsers, which all accept it, without transcoding.
	for _, c := range []struct {
		mime string
		pt   webrtc.PayloadType
	}{{webrtc.MimeTypePCMU, 0}, {webrtc.MimeTypePCMA, 8}} {
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: c.mime, ClockRate: 8000, Channels: 1},
			PayloadType:        c.pt,
		}, webrtc.RTPCodecTypeAudio); err != nil {
			return fmt.Errorf("register %s: %w", c.mime, err)
		}
	}
	return nil
}

// maxMediaSections bounds the m-lines of an offer we look at.
const maxMediaSections = 8

// offerSection is one m-line of an offer, as far as the edge cares.
type offerSection struct {
	mid   string
	kind  sfu.Kind
	index int // among the offer's media sections
	// simulcast describes a video section's RFC 8853 layers; nil without simulcast.
	simulcast *simulcastOffer
}

// parseOffer checks an SDP offer before pion sees it: it must parse, carry at least
// one audio or video section, and every audio section must offer Opus and every video
// section H.264 in packetization-mode 1. The error names what was offered.
func parseOffer(offer string) ([]offerSection, error) {
	var desc sdp.SessionDescription
	if err := desc.UnmarshalString(offer); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	if len(desc.MediaDescriptions) > maxMediaSections {
		return nil, fmt.Errorf("%w: %d media sections, at most %d", ErrBadOffer, len(desc.MediaDescriptions), maxMediaSections)
	}
	bundled := bundleMids(&desc)
	var sections []offerSection
	for i, md := range desc.MediaDescriptions {
		var kind sfu.Kind
		switch md.MediaName.Media {
		case "audio":
			kind = sfu.KindAudio
		case "video":
			kind = sfu.KindVideo
		default:
			continue
		}
		mid, _ := md.Attribute("mid")
		if md.MediaName.Port.Value == 0 && !isBundleOnly(md, mid, bundled) {
			continue // rejected section
		}
		if mid == "" {
			return nil, fmt.Errorf("%w: media section %d has no a=mid (BUNDLE is required)", ErrBadOffer, i)
		}
		if offered, ok := sectionCodecOK(md, kind); !ok {
			return nil, fmt.Errorf("%w; the offer's %s section %q offers %s", ErrUnsupportedCodec, kind, mid, strings.Join(offered, ", "))
		}
		section := offerSection{mid: mid, kind: kind, index: i}
		if kind == sfu.KindVideo {
			sim, err := parseSimulcast(md, mid)
			if err != nil {
				return nil, err
			}
			section.simulcast = sim
		}
		sections = append(sections, section)
	}
	if len(sections) == 0 {
		return nil, fmt.Errorf("%w: no audio or video section", ErrBadOffer)
	}
	return sections, nil
}

// bundleMids returns the mids of an offer's BUNDLE groups.
func bundleMids(desc *sdp.SessionDescription) map[string]bool {
	mids := map[string]bool{}
	for _, a := range desc.Attributes {
		if a.Key != "group" {
			continue
		}
		fields := strings.Fields(a.Value)
		if len(fields) == 0 || !strings.EqualFold(fields[0], "BUNDLE") {
			continue
		}
		for _, mid := range fields[1:] {
			mids[mid] = true
		}
	}
	return mids
}

// isBundleOnly reports whether a port-0 section is a bundle-only one (RFC 9143
// §6): a member of a BUNDLE group that shares the group's transport instead of a
// rejected section. GStreamer's webrtcbin offers its every section but the first
// this way by default (bundle-policy=max-bundle).
func isBundleOnly(md *sdp.MediaDescription, mid string, bundled map[string]bool) bool {
	_, only := md.Attribute("bundle-only")
	return only && mid != "" && bundled[mid]
}

// sectionCodecOK reports whether md offers the codec Lectern forwards for kind, and
// lists what it offers otherwise.
func sectionCodecOK(md *sdp.MediaDescription, kind sfu.Kind) ([]string, bool) {
	// pion/sdp reads the section's rtpmap and fmtp lines, and knows the static payload
	// types (0 PCMU, 8 PCMA, 9 G722) that need no rtpmap.
	codecs := (&sdp.SessionDescription{MediaDescriptions: []*sdp.MediaDescription{md}}).GetCodecMap()
	var offered []string
	for _, format := range md.MediaName.Formats {
		pt, err := strconv.ParseUint(format, 10, 8)
		if err != nil {
			continue
		}
		c := codecs[uint8(pt)]
		name := c.Name
		switch {
		// The clock rates are the only ones these codecs have (RFC 7587, RFC 6184);
		// pion matches codecs by them, and without them could not answer.
		case kind == sfu.KindAudio && strings.EqualFold(name, "opus") && c.ClockRate == 48000:
			return nil, true
		case kind == sfu.KindVideo && strings.EqualFold(name, "H264") && c.ClockRate == 90000 && packetizationMode1(c.Fmtp):
			return nil, true
		}
		if name != "" && !strings.EqualFold(name, "rtx") && !strings.EqualFold(name, "red") &&
			!strings.EqualFold(name, "ulpfec") && !strings.EqualFold(name, "flexfec-03") && !strings.EqualFold(name, "CN") &&
			!strings.EqualFold(name, "telephone-event") && !contains(offered, name) {
			offered = append(offered, name)
		}
	}
	if len(offered) == 0 {
		offered = []string{"nothing usable"}
	}
	return offered, false
}

// packetizationMode1 reports whether an H.264 fmtp line asks for packetization-mode 1
// (FU-A and STAP-A, RFC 6184 §6.2), the only one Lectern forwards to browsers.
func packetizationMode1(fmtp string) bool {
	return sfu.FmtpParam(fmtp, "packetization-mode") == "1"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// sfuCodec converts a negotiated pion codec.
func sfuCodec(c webrtc.RTPCodecParameters) sfu.Codec {
	return sfu.Codec{MimeType: canonicalMime(c.MimeType), ClockRate: c.ClockRate, Channels: c.Channels, Fmtp: c.SDPFmtpLine}
}

func canonicalMime(m string) string {
	switch {
	case strings.EqualFold(m, webrtc.MimeTypeH264):
		return sfu.MimeH264
	case strings.EqualFold(m, webrtc.MimeTypeOpus):
		return sfu.MimeOpus
	case strings.EqualFold(m, webrtc.MimeTypePCMU):
		return sfu.MimePCMU
	case strings.EqualFold(m, webrtc.MimeTypePCMA):
		return sfu.MimePCMA
	}
	return m
}
