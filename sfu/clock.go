package sfu

import "time"

var clockBase = time.Now()

// Nanotime returns a monotonic clock reading in nanoseconds, cheap enough for the
// per-packet path.
func Nanotime() int64 { return int64(time.Since(clockBase)) }

// NTPTime returns t in the 64-bit NTP format of RTCP sender reports (RFC 3550 §4).
func NTPTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800 // 1900 to 1970, in seconds
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}
