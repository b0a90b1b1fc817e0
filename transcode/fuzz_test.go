package transcode

import (
	"testing"

	"lectern/sfu"
)

// FuzzAACDepacketizer: whatever an encoder sends as MPEG4-GENERIC payloads, the
// depacketizer neither panics nor returns an access unit outside the payloads
// or over the ADTS limit.
func FuzzAACDepacketizer(f *testing.F) {
	f.Add([]byte{0, 16, 0, 0x18, 1, 2, 3}, uint32(0), true)                // one AU of 3 bytes
	f.Add([]byte{0, 32, 0, 0x10, 0, 0x08, 1, 2, 3}, uint32(0), true)       // two AUs
	f.Add([]byte{0, 16, 0xff, 0xf8, 1, 2, 3}, uint32(5), false)            // a fragment
	f.Add([]byte{0xff, 0xff, 1}, uint32(1), true)                          // headers beyond the packet
	f.Add([]byte{0, 0}, uint32(1), true)                                   // no headers
	f.Add([]byte{0, 13, 0, 0x18, 1, 2, 3, 4, 5, 6, 7, 8}, uint32(2), true) // a partial header
	codec := sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: 48000, Channels: 2,
		Fmtp: "streamtype=5;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190"}
	format, err := parseAACFormat(codec)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte, ts uint32, marker bool) {
		d := &aacDepacketizer{f: format}
		// Twice: the second call may continue the first's fragment.
		total := 0
		for range 2 {
			aus, _ := d.push(payload, ts, marker)
			for _, au := range aus {
				if len(au) == 0 || len(au) > maxAUSize {
					t.Fatalf("AU of %d bytes", len(au))
				}
				total += len(au)
			}
		}
		if total > 2*len(payload) {
			t.Fatalf("%d bytes of AUs from twice a %d-byte payload", total, len(payload))
		}
	})
}

// FuzzAACFormat: any fmtp a publisher declares is refused with an error or
// accepted with ADTS fields in range, never a panic.
func FuzzAACFormat(f *testing.F) {
	f.Add("streamtype=5;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190")
	f.Add("config=;sizelength=99")
	f.Add("config=f8f0;sizelength=13")
	f.Fuzz(func(t *testing.T, fmtp string) {
		c, err := parseAACFormat(sfu.Codec{MimeType: sfu.MimeAAC, ClockRate: 48000, Fmtp: fmtp})
		if err != nil {
			return
		}
		if c.profile > 3 || int(c.freqIndex) >= len(adtsRates) || c.chanConfig == 0 || c.chanConfig > 7 || c.sizeLength == 0 {
			t.Fatalf("format %+v from %q", c, fmtp)
		}
	})
}
