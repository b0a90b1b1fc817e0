package sfu

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// FmtpParam returns the value of key (matched without regard to case) in an SDP fmtp
// parameter list such as "packetization-mode=1; profile-level-id=42e01f" (RFC 8866
// §6.15: parameters separated by semicolons, optional spaces), or "" when absent.
func FmtpParam(fmtp, key string) string {
	for fmtp != "" {
		var kv string
		kv, fmtp, _ = strings.Cut(fmtp, ";")
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(strings.TrimSpace(k), key) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// FmtpParam returns the value of key in the codec's fmtp line (see [FmtpParam]).
func (c Codec) FmtpParam(key string) string { return FmtpParam(c.Fmtp, key) }

// SameFormat reports whether a stream of codec n can take the place of one of
// codec c, what was set up for c (a decoder, an SDP, an m-line, a sample entry)
// still holding: the same MIME type, clock rate and channels and, for AAC, the
// same AudioSpecificConfig, which reaches a decoder only out of band (the fmtp's
// config: an RTSP reader's SDP, the recorder's sample entry, a relay's m-line).
// Other fmtp changes (H.264's parameter sets travel in band too; Opus's options)
// do not break them. A source back within the grace continues its track only
// with the same format (Lease.Track).
func (c Codec) SameFormat(n Codec) bool {
	if !strings.EqualFold(c.MimeType, n.MimeType) || c.ClockRate != n.ClockRate || c.Channels != n.Channels {
		return false
	}
	if strings.EqualFold(c.MimeType, MimeAAC) {
		return strings.EqualFold(c.FmtpParam("config"), n.FmtpParam("config"))
	}
	return true
}

// AACConfig checks an MPEG4-GENERIC format (RFC 3640) as Lectern carries AAC
// (the RTSP server of a publisher's, an edge of its origin's track list): AAC-hbr
// or AAC-lbr framing with its sizelength, and a config that parses, which it
// returns.
func AACConfig(fmtp string) (mpeg4audio.AudioSpecificConfig, error) {
	var conf mpeg4audio.AudioSpecificConfig
	cfgHex := FmtpParam(fmtp, "config")
	raw, err := hex.DecodeString(cfgHex)
	if cfgHex == "" || err != nil {
		return conf, errors.New("missing or bad config")
	}
	if err := conf.Unmarshal(raw); err != nil {
		return conf, fmt.Errorf("bad config: %w", err)
	}
	if mode := FmtpParam(fmtp, "mode"); !strings.EqualFold(mode, "AAC-hbr") && !strings.EqualFold(mode, "AAC-lbr") {
		return conf, fmt.Errorf("mode %q, want AAC-hbr or AAC-lbr", mode)
	}
	if FmtpParam(fmtp, "sizelength") == "" {
		return conf, errors.New("missing sizelength")
	}
	return conf, nil
}

// OpusVariantSuffix marks a track that carries another track's audio transcoded to
// Opus (AAC from a studio encoder, G.711 from a camera): "trainer/audio.opus" beside
// "trainer/audio". Browsers and the recorder take the variant when they cannot use
// the original; RTSP readers keep the original.
const OpusVariantSuffix = ".opus"

// OpusVariant returns the name of the Opus variant of the track named name.
func OpusVariant(name string) string { return name + OpusVariantSuffix }

// IsOpusVariant reports whether name is an Opus variant's name, and of which track.
func IsOpusVariant(name string) (original string, ok bool) {
	return strings.CutSuffix(name, OpusVariantSuffix)
}
