package peer

import (
	"errors"
	"strings"
	"testing"
)

const (
	testUfrag = "Zq3x"
	testPwd   = "0123456789abcdefghijkl"
	testCand  = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"
)

func TestParseFragmentLineEnds(t *testing.T) {
	body := "a=ice-ufrag:" + testUfrag + "\na=ice-pwd:" + testPwd + "\nm=audio 9 UDP/TLS/RTP/SAVPF 0\na=mid:0\na=" + testCand + "\na=end-of-candidates\n"
	for name, b := range map[string]string{
		"lf":    body,
		"crlf":  strings.ReplaceAll(body, "\n", "\r\n"),
		"mixed": strings.Replace(body, "\n", "\r\n", 2),
	} {
		t.Run(name, func(t *testing.T) {
			f, err := parseFragment(b)
			if err != nil {
				t.Fatal(err)
			}
			if f.ufrag != testUfrag || f.pwd != testPwd || len(f.candidates) != 1 || f.candidates[0] != testCand || !f.endOfCands {
				t.Fatalf("parsed %+v", f)
			}
		})
	}
}

func TestParseFragmentRefusesMalformed(t *testing.T) {
	creds := "a=ice-ufrag:" + testUfrag + "\na=ice-pwd:" + testPwd + "\n"
	for _, tc := range []struct{ name, body, reason string }{
		{"not sdp", "hello\n", "not an SDP line"},
		{"upper-case key", "A=ice-ufrag:abcd\n", "not an SDP line"},
		{"lone CR as line end", "a=ice-ufrag:" + testUfrag + "\ra=ice-pwd:" + testPwd + "\r", "control character"},
		{"NUL", "a=end-of-candidates\x00\n", "control character"},
		{"ufrag alone", "a=ice-ufrag:" + testUfrag + "\n", "together"},
		{"short ufrag", "a=ice-ufrag:ab\na=ice-pwd:" + testPwd + "\n", "ice-ufrag"},
		{"short pwd", "a=ice-ufrag:" + testUfrag + "\na=ice-pwd:short\n", "ice-pwd"},
		{"ufrag with SDP inside", "a=ice-ufrag:abcd a=setup:active\na=ice-pwd:" + testPwd + "\n", "ice-ufrag"},
		{"two ICE sessions", creds + "m=video 9 UDP/TLS/RTP/SAVPF 0\na=ice-ufrag:Other\n", "second ice-ufrag"},
		{"bad candidate", creds + "a=candidate:1 1 udp notanumber 127.0.0.1 9 typ host\n", "candidate"},
		{"huge candidate", "a=candidate:" + strings.Repeat("1", 2000) + "\n", "longer"},
		{"too many lines", strings.Repeat("a=end-of-candidates\n", 300), "lines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFragment(tc.body)
			if !errors.Is(err, ErrBadFragment) {
				t.Fatalf("err %v, want ErrBadFragment", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("error %q does not say %q", err, tc.reason)
			}
		})
	}
}

func TestCredentialsWhateverTheLineEnds(t *testing.T) {
	offer := "v=0\no=- 1 1 IN IP4 0.0.0.0\ns=-\nt=0 0\nm=audio 9 UDP/TLS/RTP/SAVPF 111\na=ice-ufrag:old1\na=ice-pwd:oldoldoldoldoldoldold1\na=mid:0\n"
	u, p := localCredentials(offer)
	if u != "old1" || p != "oldoldoldoldoldoldold1" {
		t.Fatalf("credentials of an LF-only SDP: %q %q", u, p)
	}
	out := replaceICECredentials(offer, testUfrag, testPwd)
	if u, p := localCredentials(out); u != testUfrag || p != testPwd {
		t.Fatalf("after replacing: %q %q in %q", u, p, out)
	}
	if strings.Contains(out, "old") || strings.Count(out, "\r\n") != strings.Count(out, "\n") {
		t.Fatalf("replaced SDP %q", out)
	}
}

// FuzzParseFragment feeds arbitrary PATCH bodies to the sdpfrag parser: it never
// panics, and what it accepts is usable: credentials come together and are ICE
// strings, candidates parse.
func FuzzParseFragment(f *testing.F) {
	f.Add("a=ice-ufrag:" + testUfrag + "\r\na=ice-pwd:" + testPwd + "\r\n")
	f.Add("a=ice-ufrag:" + testUfrag + "\na=ice-pwd:" + testPwd + "\nm=audio 9 UDP/TLS/RTP/SAVPF 0\na=mid:0\na=" + testCand + "\na=end-of-candidates\n")
	f.Add("a=" + testCand + "\r\n")
	f.Add("a=candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag EsAw network-cost 999\r\n")
	f.Add("a=candidate:1 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active\r\n")
	f.Add("a=end-of-candidates\r\n")
	f.Add("")
	f.Add("a=ice-ufrag:x\ra=ice-pwd:y")
	f.Add("m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=ice-ufrag:aaaa\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=ice-ufrag:bbbb\r\n")
	f.Fuzz(func(t *testing.T, body string) {
		fr, err := parseFragment(body)
		if err != nil {
			if !errors.Is(err, ErrBadFragment) {
				t.Fatalf("error %v is not ErrBadFragment", err)
			}
			return
		}
		if (fr.ufrag == "") != (fr.pwd == "") {
			t.Fatalf("accepted half credentials %+v", fr)
		}
		if fr.ufrag != "" && (!iceString(fr.ufrag, 4) || !iceString(fr.pwd, 22)) {
			t.Fatalf("accepted credentials %q %q", fr.ufrag, fr.pwd)
		}
		for _, c := range fr.candidates {
			if strings.ContainsAny(c, "\r\n") {
				t.Fatalf("candidate with a line end: %q", c)
			}
		}
		// What is accepted can be written into an SDP without adding lines.
		sdp := replaceICECredentials("v=0\r\na=ice-ufrag:old1\r\na=ice-pwd:oldoldoldoldoldoldold1\r\n", fr.ufrag, fr.pwd)
		if fr.ufrag != "" && strings.Count(sdp, "\r\n") != 3 {
			t.Fatalf("credentials added lines: %q", sdp)
		}
	})
}
