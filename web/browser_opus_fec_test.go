package web

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"lectern/auth"
	"lectern/internal/testpeer"
	"lectern/internal/udprelay"
)

// fecPage publishes over WHIP a voice-like signal made in WebAudio (a 150 Hz
// sawtooth whose loudness swings at 4 Hz, like syllables), so that Chromium's Opus
// encoder codes it as speech (SILK), the layer that carries in-band FEC.
const fecPage = `<!doctype html><html><body><script>
window.start = async () => {
  const ac = new AudioContext();
  const voice = ac.createOscillator();
  voice.type = 'sawtooth';
  voice.frequency.value = 150;
  const syllables = ac.createOscillator();
  syllables.frequency.value = 4;
  const depth = ac.createGain();
  depth.gain.value = 0.4;
  const loudness = ac.createGain();
  loudness.gain.value = 0.5;
  syllables.connect(depth).connect(loudness.gain);
  const out = ac.createMediaStreamDestination();
  voice.connect(loudness).connect(out);
  voice.start();
  syllables.start();
  await ac.resume();
  const pc = new RTCPeerConnection();
  pc.addTransceiver(out.stream.getAudioTracks()[0], {direction: 'sendonly'});
  await pc.setLocalDescription(await pc.createOffer());
  const resp = await fetch('/whip', {method: 'POST', headers: {'Content-Type': 'application/sdp'}, body: pc.localDescription.sdp});
  if (resp.status !== 201) throw new Error('WHIP ' + resp.status + ' ' + await resp.text());
  await pc.setRemoteDescription({type: 'answer', sdp: await resp.text()});
  window.pc = pc;
  return true;
};
</script></body></html>`

// opusRange is the range decoder of RFC 6716 §4.1, as far as reading the first
// bits of a SILK frame needs it.
type opusRange struct {
	buf      []byte
	pos      int
	rng, val uint32
	rem      uint32
}

func newOpusRange(b []byte) *opusRange {
	d := &opusRange{buf: b}
	d.rem = d.next()
	d.rng = 128
	d.val = 127 - d.rem>>1
	d.normalize()
	return d
}

func (d *opusRange) next() uint32 {
	if d.pos >= len(d.buf) {
		return 0
	}
	d.pos++
	return uint32(d.buf[d.pos-1])
}

func (d *opusRange) normalize() {
	for d.rng <= 1<<23 {
		d.rng <<= 8
		sym := d.rem
		d.rem = d.next()
		sym = (sym<<8 | d.rem) >> 1
		d.val = (d.val<<8 + (255 &^ sym)) & (1<<31 - 1)
	}
}

// bit decodes a bit whose probability of being 1 is 1/2^logp (ec_dec_bit_logp).
func (d *opusRange) bit(logp uint) bool {
	s := d.rng >> logp
	one := d.val < s
	if one {
		d.rng = s
	} else {
		d.val -= s
		d.rng -= s
	}
	d.normalize()
	return one
}

// opusLBRR reports whether an Opus packet has a SILK layer (a SILK-only or hybrid
// configuration, RFC 6716 §3.1) and whether its first frame carries LBRR data,
// Opus's in-band FEC (the LBRR flags of §4.2.3, after the VAD flags of each
// channel). Packets of code 3 (arbitrary frame counts) are not looked into.
func opusLBRR(p []byte) (silk, lbrr bool) {
	if len(p) < 2 || p[0]>>3 >= 16 {
		return false, false
	}
	config, stereo, code := p[0]>>3, p[0]&4 != 0, p[0]&3
	data := p[1:]
	switch code {
	case 1: // two frames of one size
		data = data[:len(data)/2]
	case 2: // two frames, the first's size coded (§3.2.1)
		n, used := int(data[0]), 1
		if n >= 252 && len(data) > 1 {
			n, used = n+4*int(data[1]), 2
		}
		if used+n > len(data) {
			return true, false
		}
		data = data[used : used+n]
	case 3:
		return true, false
	}
	silkFrames := 1 // per channel: 10 and 20 ms are one SILK frame, 40 and 60 ms two and three
	if config < 12 {
		silkFrames = max(1, int(config%4))
	}
	d := newOpusRange(data)
	channels := 1
	if stereo {
		channels = 2
	}
	for range channels {
		for range silkFrames {
			d.bit(1) // VAD
		}
		if d.bit(1) {
			lbrr = true
		}
	}
	return true, lbrr
}

// TestBrowserPublisherOpusFEC: a Chromium trainer publishes its voice over WHIP
// through a link whose loss is turned on after a while. Lectern's answer asks for
// in-band FEC (useinbandfec=1) and its receiver reports tell the encoder of the
// loss: the Opus packets the classrooms receive carry no FEC while the link is
// clean and carry it once the link loses 10 %.
func TestBrowserPublisherOpusFEC(t *testing.T) {
	if testing.Short() {
		t.Skip("Chromium turns FEC on some 16 s into the loss")
	}
	s := newStack(t, stackOptions{timeout: 3 * time.Minute})
	id := s.createSession("Lecture")
	relay, err := udprelay.New(udprelay.Config{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	var answer string
	signal := relay.WrapSignal(s.signal("/whip/"+id, s.token(id, auth.RoleTrainer, "trainer"), nil))
	page := relayPage(t, fecPage, func(offer string) (string, error) {
		a, err := signal(offer)
		answer = a
		return a, err
	})
	b := newBrowser(t)
	tb := b.tab("studio")
	tb.open(page)
	if err := tb.eval("window.start()", nil); err != nil {
		t.Fatalf("publish: %v", err)
	}

	type counts struct{ packets, silk, lbrr, firstLBRR int }
	var mu sync.Mutex
	phase := "clean"
	seen := map[string]*counts{"clean": {}, "lossy": {}}
	sub, err := testpeer.NewSubscriber(s.ctx, testpeer.Options{}, 0, 1, s.signal("/whep/"+id, s.token(id, auth.RoleSite, "ha-giang"), nil),
		func(kind webrtc.RTPCodecType, p *rtp.Packet) {
			if kind != webrtc.RTPCodecTypeAudio {
				return
			}
			silk, lbrr := opusLBRR(p.Payload)
			mu.Lock()
			defer mu.Unlock()
			c := seen[phase]
			c.packets++
			if silk {
				c.silk++
			}
			if lbrr {
				c.lbrr++
				if c.firstLBRR == 0 {
					c.firstLBRR = c.packets
				}
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	get := func(name string) counts {
		mu.Lock()
		defer mu.Unlock()
		return *seen[name]
	}
	wait := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		ctx, cancel := context.WithTimeout(s.ctx, d)
		defer cancel()
		for !cond() {
			select {
			case <-ctx.Done():
				t.Fatalf("waiting for %s: clean %+v, lossy %+v", what, get("clean"), get("lossy"))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	wait("5 s of clean audio", 30*time.Second, func() bool { return get("clean").packets >= 250 })
	relay.Up.SetLoss(0.10)
	mu.Lock()
	phase = "lossy"
	mu.Unlock()
	// Chromium smooths the loss its receiver reports give over seconds before the
	// encoder codes FEC: wait for a run of it, then for 5 s more.
	wait("FEC in the lossy link's packets", 60*time.Second, func() bool { return get("lossy").lbrr >= 50 })
	from := get("lossy")
	wait("5 s more", 30*time.Second, func() bool { return get("lossy").packets-from.packets >= 250 })
	clean, lossy := get("clean"), get("lossy")
	window := counts{lossy.packets - from.packets, lossy.silk - from.silk, lossy.lbrr - from.lbrr, 0}
	t.Logf("clean link: %d packets, %d SILK or hybrid, %d with FEC; 10 %% loss: first FEC in packet %d, %d packets, %d with FEC, then of %d packets %d SILK or hybrid, %d with FEC (%.0f %%); answer's opus fmtp %q",
		clean.packets, clean.silk, clean.lbrr, lossy.firstLBRR, lossy.packets, lossy.lbrr, window.packets, window.silk, window.lbrr,
		100*float64(window.lbrr)/float64(max(1, window.packets)), opusFmtpOf(answer))
	// On a clean link the encoder mostly codes CELT (no FEC possible); with FEC on
	// it moves to SILK and hybrid, whose frames carry it when they hold speech.
	if clean.lbrr > clean.packets/20 {
		t.Errorf("%d of %d packets carry FEC on a clean link: is the LBRR flag read right?", clean.lbrr, clean.packets)
	}
	if window.lbrr < window.packets/2 {
		t.Errorf("at 10 %% loss only %d of %d packets carry FEC", window.lbrr, window.packets)
	}
}

// opusFmtpOf returns the fmtp of Opus (payload type 111) in an SDP.
func opusFmtpOf(sdp string) string {
	const key = "a=fmtp:111 "
	for i := 0; i+len(key) <= len(sdp); i++ {
		if sdp[i:i+len(key)] == key {
			end := i + len(key)
			for end < len(sdp) && sdp[end] != '\r' && sdp[end] != '\n' {
				end++
			}
			return sdp[i+len(key) : end]
		}
	}
	return ""
}
