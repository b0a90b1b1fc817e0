package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// config is the server's configuration, read once at start by parseConfig from flags and
// LECTERN_* environment variables (a flag wins over its variable, which wins over the
// default). Every field is set by exactly one row of settings(), which also holds its flag,
// variable, default and meaning; the comments here only say what main does with it.
type config struct {
	HTTPAddr       string        // HTTP listen address (REST, WHIP/WHEP, SSE, pages, replays)
	UDPPort        int           // the one UDP port for all ICE traffic (pion UDP mux)
	TCPPort        int           // ICE-TCP port; 0 disables ICE-TCP
	WebRTCIP       string        // local IP the WebRTC sockets bind to; "" = all interfaces
	PublicIPs      []string      // NAT 1:1 addresses announced in ICE candidates
	ICEServers     []string      // stun:/stuns:/turn:/turns: URLs handed to clients
	TURNUsername   string        // applied to the turn(s): URLs in ICEServers
	TURNCredential string        // applied to the turn(s): URLs in ICEServers
	AdminToken     string        // "" = main generates one at start and prints it
	TokenSecret    string        // "" = main generates one once and persists it in DataDir
	DataDir        string        // local state: token secret, recording spool, local store
	CORSOrigins    []string      // allowed browser origins: "*" or scheme://host[:port]; empty = none
	ReconnectGrace time.Duration // how long a dropped publisher's tracks wait for it to return
	ICETimeout     time.Duration // a peer not connected by then is closed
	MaxSubscribers int           // WHEP subscribers per session
	Adaptation     bool          // per-classroom bandwidth estimate, layer choice and retransmission budget
	LogLevel       string        // debug, info, warn or error (lower case)
	LogFormat      string        // text or json
	PublicURL      string        // base URL for the banner and invitations, without trailing "/"
	DebugAddr      string        // "" = off; else a listener serving net/http/pprof only

	// WHEP offers still connecting per token and per client address (0 = no
	// limit), live WHEP connections per viewer token (0 = no limit).
	WHEPConnectingPerToken, WHEPConnectingPerIP, MaxViewerConnections int

	HTTPIdleTimeout    time.Duration // a keep-alive HTTP connection idle this long is closed
	HTTPRequestTimeout time.Duration // an ordinary request's body must arrive, and its answer leave, within it
	MaxConnsPerIP      int           // HTTP connections one client address may hold; 0 = no limit
	EventsPerToken     int           // open event streams (SSE) one token may hold; 0 = no limit
	EventsPerIP        int           // open event streams one client address may hold; 0 = no limit

	Record          bool          // record every live publication
	S3Endpoint      string        // "" = recordings in DataDir/store; else http(s)://host[:port]
	S3Bucket        string        // bucket of the recordings
	S3AccessKey     string        // static credentials (signature v4)
	S3SecretKey     string        // static credentials (signature v4)
	S3Region        string        // "" = discovered by the client
	S3PathStyle     bool          // force path-style requests
	S3CreateBucket  bool          // create the bucket at start when missing
	S3Prefix        string        // key prefix, to share a bucket
	SpoolMaxMB      int           // bound of the local recording spool (DataDir/spool), MiB
	SegmentDuration time.Duration // target length of recorded segments

	RTSPAddr        string   // RTSP listen address; "off" disables the RTSP server
	RTSPUDPRTPPort  int      // RTSP UDP transport: RTP port; 0 disables UDP (TCP only)
	RTSPUDPRTCPPort int      // RTSP UDP transport: RTCP port (RTP port + 1 by convention)
	RTSPCert        string   // PEM certificate: RTSPS when set with RTSPKey
	RTSPKey         string   // PEM private key of RTSPCert
	RTSPSources     []string // pull sources at start: <session>/<name>/<trainer|site>=<rtsp url>
	ReplayRedirect  bool     // answer segment requests with a redirect to a presigned store URL
	ReplayCacheMB   int      // memory for replay segments served through this server, MiB; 0 = no cache
	LobbyPublic     bool     // the lobby lists every session to anyone, not only those created listed

	ReplayDownloadsPerIP int // MP4 downloads one client address may receive at once; 0 = no limit

	// Embedded TURN server (config_turn.go, app_turn.go): off unless TURN is set.
	TURN         bool   // serve TURN for classrooms that cannot reach the WebRTC ports
	TURNPort     int    // TURN over UDP and TCP
	TURNTLSPort  int    // TURN over TLS (turns:); 0 = off; needs TURNCert and TURNKey
	TURNCert     string // PEM certificate file of TURN over TLS
	TURNKey      string // PEM private key file of TURNCert
	TURNSecret   string // "" = generated once and persisted in DataDir
	TURNRelayIP  string // local address relays bind to; "" = WebRTCIP, else the first local IPv4
	TURNPerIP    int    // concurrent allocations per client address
	TURNLifetime time.Duration

	// HTTPS (tls.go): on when TLSCert or ACMEDomains is set; -http then only redirects.
	HTTPSAddr     string   // HTTPS listen address, used when HTTPS is on
	TLSCert       string   // PEM certificate chain file, with TLSKey
	TLSKey        string   // PEM private key file of TLSCert
	ACMEDomains   []string // public host names whose certificates come from ACMEDirectory
	ACMEEmail     string   // contact address given to the ACME CA (expiry and policy notices)
	ACMEDirectory string   // ACME directory URL (Let's Encrypt by default)
	ACMECA        string   // PEM file: extra roots trusted for ACMEDirectory (a private CA, Pebble)

	// RTSP pull sources' policy (config_rtsp.go).
	RTSPSourceAllow    []string // where pull sources may connect (CIDRs, addresses, host names); empty = not loopback/link-local
	RTSPSourceTrainers bool     // trainers may add pull sources (within RTSPSourceAllow), not only the admin

	// Cluster (config_cluster.go, issue 13): a single node unless RedisURL is set.
	RedisURL           string // the coordinator; "" = a single node, as without this setting
	NodeID             string // this node's id in the cluster; default: the host name
	Region             string // this node's region, for placement; default "default"
	NodeMaxSubscribers int    // subscribers this node takes before placement prefers others; 0 = CPU only
}

// setting is one row of the configuration table: where a value comes from, its default, what
// it means, and how to parse and check it into a config field. usage() and the README's
// configuration table are generated from these rows, so adding a setting is adding a row.
type setting struct {
	flag    string // flag name without the leading "-"
	env     string // environment variable, LECTERN_*
	def     string // default, parsed like a given value; "" for none
	defHelp string // how the default is shown when def alone does not say it (e.g. "generated")
	help    string // meaning, one line
	list    bool   // comma-separated list; a repeated flag adds to it
	parse   func(c *config, v string) error
}

// name is how problems with s are reported: "-flag/LECTERN_ENV".
func (s setting) name() string { return "-" + s.flag + "/" + s.env }

// settings returns the configuration table, in the order usage() shows it.
func settings() []setting {
	return []setting{
		{flag: "http", env: "LECTERN_HTTP", def: ":8080",
			help:  "HTTP listen address (API, WHIP/WHEP, pages, replays)",
			parse: stringVal(func(c *config) *string { return &c.HTTPAddr }, checkListenAddr)},
		{flag: "public-url", env: "LECTERN_PUBLIC_URL", defHelp: "http://localhost:<port of -http>",
			help:  "base URL that people use to reach this server; shown at start and used in invitations",
			parse: stringVal(func(c *config) *string { return &c.PublicURL }, checkPublicURL)},
		{flag: "http-idle-timeout", env: "LECTERN_HTTP_IDLE_TIMEOUT", def: "60s",
			help:  "a keep-alive HTTP connection idle this long is closed (1s-1h); behind a load balancer, set it above the balancer's idle timeout",
			parse: durationVal(func(c *config) *time.Duration { return &c.HTTPIdleTimeout }, time.Second, time.Hour)},
		{flag: "http-request-timeout", env: "LECTERN_HTTP_REQUEST_TIMEOUT", def: "60s",
			help:  "an ordinary HTTP request's body must arrive, and its answer be sent, within this (1s-1h); event streams, replays and downloads are bounded by their idle time instead",
			parse: durationVal(func(c *config) *time.Duration { return &c.HTTPRequestTimeout }, time.Second, time.Hour)},
		{flag: "max-conns-per-ip", env: "LECTERN_MAX_CONNS_PER_IP", def: "256",
			help:  "HTTP connections one client address may hold at once (0-1000000); more are closed at once; a classroom or an office behind one NAT shares an address; 0 disables",
			parse: intVal(func(c *config) *int { return &c.MaxConnsPerIP }, 0, 1000000, "a connection limit")},
		{flag: "events-per-token", env: "LECTERN_EVENTS_PER_TOKEN", def: "32",
			help:  "live event streams (one per open page of a session) one token may hold at once (0-100000); more get 429; a classroom's screens or a hall sharing a viewer link share a token; 0 disables",
			parse: intVal(func(c *config) *int { return &c.EventsPerToken }, 0, 100000, "an event stream limit")},
		{flag: "events-per-ip", env: "LECTERN_EVENTS_PER_IP", def: "128",
			help:  "live event streams one client address may hold at once (0-100000); more get 429; classrooms behind one NAT share an address; 0 disables",
			parse: intVal(func(c *config) *int { return &c.EventsPerIP }, 0, 100000, "an event stream limit")},
		{flag: "webrtc-udp-port", env: "LECTERN_WEBRTC_UDP_PORT", def: "8189",
			help:  "the one UDP port for all WebRTC (ICE) traffic; open it in the firewall",
			parse: intVal(func(c *config) *int { return &c.UDPPort }, 1, 65535, "a port")},
		{flag: "webrtc-tcp-port", env: "LECTERN_WEBRTC_TCP_PORT", def: "8189",
			help:  "TCP port for WebRTC (ICE-TCP) when UDP is blocked; 0 disables it",
			parse: intVal(func(c *config) *int { return &c.TCPPort }, 0, 65535, "a port")},
		{flag: "webrtc-ip", env: "LECTERN_WEBRTC_IP", defHelp: "all interfaces",
			help:  "local IP address the WebRTC UDP/TCP sockets bind to (e.g. 127.0.0.1 for a test on one machine)",
			parse: stringVal(func(c *config) *string { return &c.WebRTCIP }, checkBindIP)},
		{flag: "public-ip", env: "LECTERN_PUBLIC_IPS", list: true,
			help:  "comma-separated public IPv4/IPv6 addresses of this host when it is behind 1:1 NAT",
			parse: listVal(func(c *config) *[]string { return &c.PublicIPs }, checkPublicIP)},
		{flag: "ice-server", env: "LECTERN_ICE_SERVERS", list: true,
			help:  "comma-separated STUN/TURN URLs for clients (stun:host[:port], turn:host[:port][?transport=udp|tcp], stuns:, turns:)",
			parse: listVal(func(c *config) *[]string { return &c.ICEServers }, checkICEServer)},
		{flag: "turn-username", env: "LECTERN_TURN_USERNAME",
			help:  "username for the turn:/turns: URLs of -ice-server",
			parse: stringVal(func(c *config) *string { return &c.TURNUsername }, nil)},
		{flag: "turn-credential", env: "LECTERN_TURN_CREDENTIAL",
			help:  "credential (password) for the turn:/turns: URLs of -ice-server",
			parse: stringVal(func(c *config) *string { return &c.TURNCredential }, nil)},
		{flag: "admin-token", env: "LECTERN_ADMIN_TOKEN", defHelp: "generated at start and printed",
			help:  "token that lets the operator create sessions and mint participant tokens; at least 16 characters",
			parse: stringVal(func(c *config) *string { return &c.AdminToken }, checkAdminToken)},
		{flag: "token-secret", env: "LECTERN_TOKEN_SECRET", defHelp: "generated once, kept in the data dir",
			help:  "secret that signs participant tokens; at least 32 characters; changing it revokes every token",
			parse: stringVal(func(c *config) *string { return &c.TokenSecret }, checkTokenSecret)},
		{flag: "data-dir", env: "LECTERN_DATA_DIR", def: "./data",
			help:  "directory for local state: token secret, recording spool, local recordings",
			parse: stringVal(func(c *config) *string { return &c.DataDir }, checkNotEmpty)},
		{flag: "cors-origins", env: "LECTERN_CORS_ORIGINS", def: "*", list: true,
			help:  `comma-separated browser origins allowed to call the API ("*" or scheme://host[:port]); empty allows none`,
			parse: listVal(func(c *config) *[]string { return &c.CORSOrigins }, checkOrigin)},
		{flag: "reconnect-grace", env: "LECTERN_RECONNECT_GRACE", def: "30s",
			help:  "how long a publisher's tracks wait for it to reconnect before they end (0s-10m)",
			parse: durationVal(func(c *config) *time.Duration { return &c.ReconnectGrace }, 0, 10*time.Minute)},
		{flag: "ice-timeout", env: "LECTERN_ICE_TIMEOUT", def: "15s",
			help:  "a WebRTC peer that has not connected by then is closed (1s-2m)",
			parse: durationVal(func(c *config) *time.Duration { return &c.ICETimeout }, time.Second, 2*time.Minute)},
		{flag: "max-subscribers", env: "LECTERN_MAX_SUBSCRIBERS", def: "500",
			help:  "most connected WHEP viewers (classrooms, learners) per session (1-10000); as many more may be still connecting",
			parse: intVal(func(c *config) *int { return &c.MaxSubscribers }, 1, 10000, "a subscriber limit")},
		{flag: "whep-connecting-per-token", env: "LECTERN_WHEP_CONNECTING_PER_TOKEN", def: "8",
			help:  "WHEP offers of one token still connecting at once (0-10000); more get 429 until they connect or time out; screens sharing a viewer link share a token; 0 disables",
			parse: intVal(func(c *config) *int { return &c.WHEPConnectingPerToken }, 0, 10000, "a WHEP offer limit")},
		{flag: "whep-connecting-per-ip", env: "LECTERN_WHEP_CONNECTING_PER_IP", def: "32",
			help:  "WHEP offers from one client address still connecting at once (0-10000); more get 429; classrooms behind one NAT share an address; 0 disables",
			parse: intVal(func(c *config) *int { return &c.WHEPConnectingPerIP }, 0, 10000, "a WHEP offer limit")},
		{flag: "max-viewer-connections", env: "LECTERN_MAX_VIEWER_CONNECTIONS", def: "0",
			help:  "live WHEP connections one viewer token may hold (0-10000); more get 429; 0: no limit (a viewer link is often shared by a hall's screens)",
			parse: intVal(func(c *config) *int { return &c.MaxViewerConnections }, 0, 10000, "a connection limit")},
		{flag: "adaptation", env: "LECTERN_ADAPTATION", def: "on",
			help:  "per-classroom bandwidth estimate: each WHEP viewer gets the simulcast layer its link carries, video paused before audio suffers, retransmissions within the estimate; off sends every viewer the best layer and answers every NACK (for comparisons): on or off",
			parse: boolVal(func(c *config) *bool { return &c.Adaptation })},
		{flag: "log-level", env: "LECTERN_LOG_LEVEL", def: "info",
			help:  "log level: debug, info, warn or error",
			parse: enumVal(func(c *config) *string { return &c.LogLevel }, "debug", "info", "warn", "error")},
		{flag: "log-format", env: "LECTERN_LOG_FORMAT", def: "text",
			help:  "log format: text or json",
			parse: enumVal(func(c *config) *string { return &c.LogFormat }, "text", "json")},
		{flag: "record", env: "LECTERN_RECORD", def: "on",
			help:  "record every live publication for replay: on or off",
			parse: boolVal(func(c *config) *bool { return &c.Record })},
		{flag: "s3-endpoint", env: "LECTERN_S3_ENDPOINT", defHelp: "none: recordings go to <data-dir>/store",
			help:  "S3-compatible service (MinIO, AWS S3, ...) for recordings, as http://host[:port] or https://host[:port]",
			parse: stringVal(func(c *config) *string { return &c.S3Endpoint }, checkS3Endpoint)},
		{flag: "s3-bucket", env: "LECTERN_S3_BUCKET", def: "lectern",
			help:  "bucket of the recordings (3-63 characters: a-z, 0-9, '.', '-')",
			parse: stringVal(func(c *config) *string { return &c.S3Bucket }, checkBucket)},
		{flag: "s3-access-key", env: "LECTERN_S3_ACCESS_KEY",
			help:  "access key of -s3-endpoint",
			parse: stringVal(func(c *config) *string { return &c.S3AccessKey }, nil)},
		{flag: "s3-secret-key", env: "LECTERN_S3_SECRET_KEY",
			help:  "secret key of -s3-endpoint",
			parse: stringVal(func(c *config) *string { return &c.S3SecretKey }, nil)},
		{flag: "s3-region", env: "LECTERN_S3_REGION", defHelp: "discovered (us-east-1 for a new bucket)",
			help:  "region of the bucket",
			parse: stringVal(func(c *config) *string { return &c.S3Region }, nil)},
		{flag: "s3-path-style", env: "LECTERN_S3_PATH_STYLE", def: "off",
			help:  "force path-style requests (https://host/bucket/key): on or off; off lets the client choose (path style for MinIO)",
			parse: boolVal(func(c *config) *bool { return &c.S3PathStyle })},
		{flag: "s3-create-bucket", env: "LECTERN_S3_CREATE_BUCKET", def: "on",
			help:  "create the bucket at start when it is missing: on or off",
			parse: boolVal(func(c *config) *bool { return &c.S3CreateBucket })},
		{flag: "s3-prefix", env: "LECTERN_S3_PREFIX",
			help:  "prefix of every object key, so several servers can share a bucket",
			parse: stringVal(func(c *config) *string { return &c.S3Prefix }, nil)},
		{flag: "spool-max-mb", env: "LECTERN_SPOOL_MAX_MB", def: "2048",
			help:  "MiB of recorded segments kept on local disk while the store is unreachable (16-1048576); beyond it segments are lost",
			parse: intVal(func(c *config) *int { return &c.SpoolMaxMB }, 16, 1<<20, "a size in MiB")},
		{flag: "segment-duration", env: "LECTERN_SEGMENT_DURATION", def: "4s",
			help:  "target length of recorded segments; each ends at the first keyframe after it (1s-30s)",
			parse: durationVal(func(c *config) *time.Duration { return &c.SegmentDuration }, time.Second, 30*time.Second)},
		{flag: "rtsp", env: "LECTERN_RTSP", def: ":8554",
			help:  `RTSP listen address for encoders, decoders and VLC (rtsp://host:8554/{session}); "off" disables RTSP`,
			parse: stringVal(func(c *config) *string { return &c.RTSPAddr }, checkRTSPAddr)},
		{flag: "rtsp-udp-rtp-port", env: "LECTERN_RTSP_UDP_RTP_PORT", def: "8000",
			help:  "UDP port for RTSP media over UDP (RTP); 0 allows TCP transport only",
			parse: intVal(func(c *config) *int { return &c.RTSPUDPRTPPort }, 0, 65535, "a port")},
		{flag: "rtsp-udp-rtcp-port", env: "LECTERN_RTSP_UDP_RTCP_PORT", def: "8001",
			help:  "UDP port for RTSP control over UDP (RTCP)",
			parse: intVal(func(c *config) *int { return &c.RTSPUDPRTCPPort }, 0, 65535, "a port")},
		{flag: "turn", env: "LECTERN_TURN", def: "false",
			help:  "serve TURN (UDP and TCP on -turn-port, TLS on -turn-tls-port) for classrooms whose firewall blocks the WebRTC ports; relays only to this server's own media addresses",
			parse: boolVal(func(c *config) *bool { return &c.TURN })},
		{flag: "turn-port", env: "LECTERN_TURN_PORT", def: "3478",
			help:  "UDP and TCP port of the embedded TURN server",
			parse: intVal(func(c *config) *int { return &c.TURNPort }, 1, 65535, "a port")},
		{flag: "turn-tls-port", env: "LECTERN_TURN_TLS_PORT", def: "0",
			help:  "TLS port of the embedded TURN server (turns:, e.g. 443 for classrooms that reach nothing else); needs -turn-cert and -turn-key; 0 disables",
			parse: intVal(func(c *config) *int { return &c.TURNTLSPort }, 0, 65535, "a port")},
		{flag: "turn-cert", env: "LECTERN_TURN_CERT",
			help:  "PEM certificate file for TURN over TLS",
			parse: stringVal(func(c *config) *string { return &c.TURNCert }, nil)},
		{flag: "turn-key", env: "LECTERN_TURN_KEY",
			help:  "PEM private key file of -turn-cert",
			parse: stringVal(func(c *config) *string { return &c.TURNKey }, nil)},
		{flag: "turn-secret", env: "LECTERN_TURN_SECRET", defHelp: "generated once, kept in the data dir",
			help:  "secret of the short-lived TURN credentials (TURN REST API scheme); at least 32 characters",
			parse: stringVal(func(c *config) *string { return &c.TURNSecret }, checkTURNSecret)},
		{flag: "turn-relay-ip", env: "LECTERN_TURN_RELAY_IP", defHelp: "-webrtc-ip, else the first local IPv4 address",
			help:  "local IP address TURN relays bind to; the WebRTC edge must reach it",
			parse: stringVal(func(c *config) *string { return &c.TURNRelayIP }, checkBindIP)},
		{flag: "turn-allocations-per-ip", env: "LECTERN_TURN_ALLOCATIONS_PER_IP", def: "20",
			help:  "TURN allocations one client address may hold at once (1-10000); a classroom's screens behind one NAT share an address",
			parse: intVal(func(c *config) *int { return &c.TURNPerIP }, 1, 10000, "an allocation limit")},
		{flag: "turn-allocation-lifetime", env: "LECTERN_TURN_ALLOCATION_LIFETIME", def: "10m",
			help:  "longest lifetime of a TURN allocation between refreshes (1m-1h)",
			parse: durationVal(func(c *config) *time.Duration { return &c.TURNLifetime }, time.Minute, time.Hour)},
		{flag: "rtsp-cert", env: "LECTERN_RTSP_CERT",
			help:  "PEM certificate file: the RTSP server speaks RTSPS (TLS) when set with -rtsp-key",
			parse: stringVal(func(c *config) *string { return &c.RTSPCert }, nil)},
		{flag: "rtsp-key", env: "LECTERN_RTSP_KEY",
			help:  "PEM private key file of -rtsp-cert",
			parse: stringVal(func(c *config) *string { return &c.RTSPKey }, nil)},
		{flag: "rtsp-source", env: "LECTERN_RTSP_SOURCES", list: true,
			help:  "cameras/encoders pulled into sessions at start: <session>/<name>/<trainer|site>=rtsp://… (comma-separated)",
			parse: listVal(func(c *config) *[]string { return &c.RTSPSources }, checkRTSPSource)},
		{flag: "rtsp-source-allow", env: "LECTERN_RTSP_SOURCE_ALLOW", list: true, defHelp: "any address but loopback and link-local",
			help:  "where RTSP pull sources may connect: comma-separated networks (10.20.0.0/16), addresses and host names (cam1.lan, *.cams.example); loopback and link-local only when listed",
			parse: listVal(func(c *config) *[]string { return &c.RTSPSourceAllow }, checkRTSPSourceAllow)},
		{flag: "rtsp-source-trainers", env: "LECTERN_RTSP_SOURCE_TRAINERS", def: "off",
			help:  "on: a session's trainer may add RTSP pull sources (within -rtsp-source-allow, which is then required); off: only the admin",
			parse: boolVal(func(c *config) *bool { return &c.RTSPSourceTrainers })},
		{flag: "lobby-public", env: "LECTERN_LOBBY_PUBLIC", def: "off",
			help:  "on: the lobby (GET /api/sessions) lists every session's title and schedule to anyone; off: only sessions created with listed: true, the others to the admin and their token holders",
			parse: boolVal(func(c *config) *bool { return &c.LobbyPublic })},
		{flag: "replay-redirect", env: "LECTERN_REPLAY_REDIRECT", def: "off",
			help:  "on: replay segments are redirected to presigned URLs of -s3-endpoint (players must reach it) instead of passing through this server",
			parse: boolVal(func(c *config) *bool { return &c.ReplayRedirect })},
		{flag: "replay-cache-mb", env: "LECTERN_REPLAY_CACHE_MB", def: "256",
			help:  "MiB of memory keeping the replay segments served through this server, most recently used first (0-65536); 0 disables it",
			parse: intVal(func(c *config) *int { return &c.ReplayCacheMB }, 0, 1<<16, "a size in MiB")},
		{flag: "replay-downloads-per-ip", env: "LECTERN_REPLAY_DOWNLOADS_PER_IP", def: "4",
			help:  "MP4 downloads (download.mp4) one client address may receive at once; more get 429 (0-10000); 0 disables the limit",
			parse: intVal(func(c *config) *int { return &c.ReplayDownloadsPerIP }, 0, 10000, "a download limit")},
		{flag: "debug-addr", env: "LECTERN_DEBUG_ADDR", defHelp: "off",
			help:  "address of a separate listener serving Go's profiler (/debug/pprof/) for operators, e.g. 127.0.0.1:6060; no authentication: keep it on loopback or a private network",
			parse: stringVal(func(c *config) *string { return &c.DebugAddr }, checkOptionalListenAddr)},
		{flag: "https", env: "LECTERN_HTTPS", def: ":443",
			help:  "HTTPS listen address, used when -tls-cert or -acme-domain is set (-http then only redirects to it)",
			parse: stringVal(func(c *config) *string { return &c.HTTPSAddr }, checkListenAddr)},
		{flag: "tls-cert", env: "LECTERN_TLS_CERT",
			help:  "PEM certificate chain file: serve HTTPS with -tls-key (re-read when the file changes)",
			parse: stringVal(func(c *config) *string { return &c.TLSCert }, nil)},
		{flag: "tls-key", env: "LECTERN_TLS_KEY",
			help:  "PEM private key file of -tls-cert",
			parse: stringVal(func(c *config) *string { return &c.TLSKey }, nil)},
		{flag: "acme-domain", env: "LECTERN_ACME_DOMAIN", list: true,
			help:  "public host names that get certificates automatically over ACME (comma-separated); the CA must reach them on port 443 or 80; you accept the CA's terms",
			parse: listVal(func(c *config) *[]string { return &c.ACMEDomains }, checkACMEDomain)},
		{flag: "acme-email", env: "LECTERN_ACME_EMAIL",
			help:  "contact e-mail given to the ACME CA (certificate expiry notices)",
			parse: stringVal(func(c *config) *string { return &c.ACMEEmail }, checkEmail)},
		{flag: "acme-directory", env: "LECTERN_ACME_DIRECTORY", def: acmeLetsEncrypt,
			help:  "ACME directory URL (https://): Let's Encrypt, or a private CA",
			parse: stringVal(func(c *config) *string { return &c.ACMEDirectory }, checkACMEDirectory)},
		{flag: "acme-ca", env: "LECTERN_ACME_CA",
			help:  "PEM file of extra root certificates trusted for -acme-directory (a private CA)",
			parse: stringVal(func(c *config) *string { return &c.ACMECA }, nil)},
		{flag: "redis-url", env: "LECTERN_REDIS_URL", defHelp: "none: a single node",
			help:  "Redis that makes nodes a cluster (redis://[:password@]host:6379/0, rediss:// for TLS): any node serves any session, relaying it from the node its trainer publishes on; needs -public-url and -token-secret, the same secret on every node",
			parse: stringVal(func(c *config) *string { return &c.RedisURL }, checkRedisURL)},
		{flag: "node-id", env: "LECTERN_NODE_ID", defHelp: "the host name, as a-z, 0-9, '-'",
			help:  "this node's id in the cluster: 1-32 characters of a-z, 0-9 and '-', unique among the nodes",
			parse: stringVal(func(c *config) *string { return &c.NodeID }, checkNodeName)},
		{flag: "region", env: "LECTERN_REGION", defHelp: "default",
			help:  "this node's region (north, centre, south ...): 1-32 characters of a-z, 0-9 and '-'; clients naming a region are sent to a node of it",
			parse: stringVal(func(c *config) *string { return &c.Region }, checkNodeName)},
		{flag: "node-max-subscribers", env: "LECTERN_NODE_MAX_SUBSCRIBERS", def: "0",
			help:  "subscribers (WHEP and RTSP) this node takes before new ones are sent to a less loaded node (0-1000000); 0: by CPU only",
			parse: intVal(func(c *config) *int { return &c.NodeMaxSubscribers }, 0, 1000000, "a subscriber limit")},
	}
}

// parseConfig reads the configuration from args (without the program name) and getenv
// (os.Getenv; an empty variable counts as unset). For each setting a given flag wins over
// its variable, which wins over the default. It reports every problem at once, joined, each
// naming the flag and the variable.
//
// For -h or -help it returns an error matching flag.ErrHelp: print config{}.usage() and exit 0.
// AdminToken and TokenSecret are left empty when not given; generating them is main's job.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	return parseSettings(settings(), args, getenv)
}

// parseSettings is parseConfig for any table.
func parseSettings(table []setting, args []string, getenv func(string) string) (config, error) {
	fs := flag.NewFlagSet("lectern", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	given := make([]*flagText, len(table))
	for i, s := range table {
		given[i] = &flagText{list: s.list}
		fs.Var(given[i], s.flag, s.help+" (env "+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, err
		}
		return config{}, fmt.Errorf("%w (run with -help to list the settings)", err)
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %q: settings are flags (-name value) or LECTERN_* environment variables", fs.Arg(0)))
	}
	var c config
	for i, s := range table {
		v := s.def
		if e := getenv(s.env); e != "" {
			v = e
		}
		if given[i].set {
			v = given[i].text
		}
		for _, err := range unjoin(s.parse(&c, v)) {
			errs = append(errs, fmt.Errorf("%s: %w", s.name(), err))
		}
	}
	errs = append(errs, c.check()...)
	if err := errors.Join(errs...); err != nil {
		return config{}, err
	}
	return c, nil
}

// unjoin returns the errors joined in err (a list setting reports each bad entry), so that
// each is reported with the setting's name.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

// check validates what involves several settings and fills defaults derived from others.
// It runs after every row was parsed; a field whose row failed holds its zero value.
func (c *config) check() []error {
	var errs []error
	hasTURN := false
	for _, u := range c.ICEServers {
		hasTURN = hasTURN || isTURN(u)
	}
	user, cred := settingName("turn-username"), settingName("turn-credential")
	switch {
	case hasTURN && c.TURNUsername == "":
		errs = append(errs, fmt.Errorf("%s: required with a turn: or turns: URL in %s", user, settingName("ice-server")))
	case !hasTURN && c.TURNUsername != "":
		errs = append(errs, fmt.Errorf("%s: set but %s has no turn: or turns: URL", user, settingName("ice-server")))
	}
	switch {
	case hasTURN && c.TURNCredential == "":
		errs = append(errs, fmt.Errorf("%s: required with a turn: or turns: URL in %s", cred, settingName("ice-server")))
	case !hasTURN && c.TURNCredential != "":
		errs = append(errs, fmt.Errorf("%s: set but %s has no turn: or turns: URL", cred, settingName("ice-server")))
	}
	errs = append(errs, c.checkCluster()...) // before the defaults below: a cluster node must be told its URL
	errs = append(errs, c.checkHTTPS()...)   // before the default below: HTTPS has its own
	if c.PublicURL == "" && c.HTTPAddr != "" {
		c.PublicURL = urlForListenAddr(c.HTTPAddr)
	}
	errs = append(errs, c.checkRTSPSources()...)
	errs = append(errs, c.checkTURN()...)
	if p := c.RTSPUDPRTPPort; p > 0 && (p%2 != 0 || c.RTSPUDPRTCPPort != p+1) {
		// gortsplib's server takes the pair RFC 3550 §11 suggests, as many clients assume.
		errs = append(errs, fmt.Errorf("%s: %d and %s: %d: want an even RTP port and the next one for RTCP",
			settingName("rtsp-udp-rtp-port"), p, settingName("rtsp-udp-rtcp-port"), c.RTSPUDPRTCPPort))
	}
	return append(errs, c.checkStorage()...)
}

// checkStorage requires credentials with an S3 endpoint, and reports S3 settings
// given without one.
func (c *config) checkStorage() []error {
	var errs []error
	endpoint := settingName("s3-endpoint")
	for _, s := range []struct{ flag, value string }{
		{"s3-access-key", c.S3AccessKey}, {"s3-secret-key", c.S3SecretKey}, {"s3-region", c.S3Region}, {"s3-prefix", c.S3Prefix},
	} {
		switch {
		case c.S3Endpoint == "" && s.value != "":
			errs = append(errs, fmt.Errorf("%s: set but %s is empty (recordings go to the data dir)", settingName(s.flag), endpoint))
		case c.S3Endpoint != "" && s.value == "" && (s.flag == "s3-access-key" || s.flag == "s3-secret-key"):
			errs = append(errs, fmt.Errorf("%s: required with %s", settingName(s.flag), endpoint))
		}
	}
	return errs
}

// settingName returns the "-flag/LECTERN_ENV" name of the setting with the given flag.
func settingName(flagName string) string {
	for _, s := range settings() {
		if s.flag == flagName {
			return s.name()
		}
	}
	panic("config: no setting -" + flagName)
}

// usage returns the help text: every setting with its flag, variable, default and meaning.
func (config) usage() string {
	var b strings.Builder
	b.WriteString("Usage: lectern [-flag value ...]\n\n" +
		"Every setting is a flag or an environment variable; a flag wins over its variable.\n\n")
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "FLAG\tENVIRONMENT\tDEFAULT\tMEANING")
	for _, r := range helpRows() {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.flag, r.env, r.def, r.help)
	}
	w.Flush()
	return b.String()
}

// helpRow is one setting as documentation shows it (usage, the README's table).
type helpRow struct{ flag, env, def, help string }

// helpRows returns the documentation of every setting, in table order.
func helpRows() []helpRow {
	table := settings()
	rows := make([]helpRow, 0, len(table))
	for _, s := range table {
		def := s.defHelp
		switch {
		case def != "":
		case s.def != "":
			def = s.def
		default:
			def = "(none)"
		}
		rows = append(rows, helpRow{flag: "-" + s.flag, env: s.env, def: def, help: s.help})
	}
	return rows
}

// flagText records a flag's text as given and leaves parsing to its setting, so that a bad
// flag value is reported together with every other problem rather than ending the parse.
type flagText struct {
	text string
	set  bool
	list bool // a repeated flag appends to the comma-separated list
}

func (f *flagText) String() string {
	if f == nil {
		return ""
	}
	return f.text
}

func (f *flagText) Set(s string) error {
	if f.list && f.set {
		s = f.text + "," + s
	}
	f.text, f.set = s, true
	return nil
}

// stringVal parses a string setting, checked by check when it is not nil.
func stringVal(field func(*config) *string, check func(string) (string, error)) func(*config, string) error {
	return func(c *config, v string) error {
		if check != nil {
			var err error
			if v, err = check(v); err != nil {
				return err
			}
		}
		*field(c) = v
		return nil
	}
}

// intVal parses a decimal integer in min..max; what names it in errors ("a port").
func intVal(field func(*config) *int, lo, hi int, what string) func(*config, string) error {
	return func(c *config, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not a number", v)
		}
		if n < lo || n > hi {
			return fmt.Errorf("%d is not %s (%d-%d)", n, what, lo, hi)
		}
		*field(c) = n
		return nil
	}
}

// durationVal parses a Go duration ("30s", "2m") in lo..hi.
func durationVal(field func(*config) *time.Duration, lo, hi time.Duration) func(*config, string) error {
	return func(c *config, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q is not a duration (e.g. 30s, 2m)", v)
		}
		if d < lo || d > hi {
			return fmt.Errorf("%v is out of range (%v-%v)", d, lo, hi)
		}
		*field(c) = d
		return nil
	}
}

// enumVal parses one of allowed, ignoring case and surrounding space.
func enumVal(field func(*config) *string, allowed ...string) func(*config, string) error {
	return func(c *config, v string) error {
		v = strings.ToLower(strings.TrimSpace(v))
		for _, a := range allowed {
			if v == a {
				*field(c) = v
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
	}
}

// boolVal parses on/off (also true/false, yes/no, 1/0), ignoring case.
func boolVal(field func(*config) *bool) func(*config, string) error {
	return func(c *config, v string) error {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "on", "true", "yes", "1":
			*field(c) = true
		case "off", "false", "no", "0":
			*field(c) = false
		default:
			return fmt.Errorf("%q is not on or off", v)
		}
		return nil
	}
}

// listVal parses a comma-separated list: entries are trimmed, empty ones dropped, and each
// is checked; every bad entry is reported.
func listVal(field func(*config) *[]string, check func(string) error) func(*config, string) error {
	return func(c *config, v string) error {
		var list []string
		var errs []error
		for e := range strings.SplitSeq(v, ",") {
			if e = strings.TrimSpace(e); e == "" {
				continue
			}
			if err := check(e); err != nil {
				errs = append(errs, err)
				continue
			}
			list = append(list, e)
		}
		if len(list) > 1 && slices.Contains(list, "*") {
			errs = append(errs, errors.New(`"*" cannot be combined with other entries`))
		}
		*field(c) = list
		return errors.Join(errs...)
	}
}

func checkNotEmpty(v string) (string, error) {
	if strings.TrimSpace(v) == "" {
		return "", errors.New("must not be empty")
	}
	return v, nil
}

// checkListenAddr accepts host:port or :port with a numeric port (0 lets the kernel choose).
func checkListenAddr(v string) (string, error) {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", fmt.Errorf("%q is not a listen address (host:port or :port): %w", v, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("%q: port %q is not a number in 0-65535", v, port)
	}
	return v, nil
}

// checkOptionalListenAddr is checkListenAddr where "" (off) is allowed too.
func checkOptionalListenAddr(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	return checkListenAddr(v)
}

// checkPublicURL accepts an http(s) URL with an optional path prefix, and drops a trailing
// "/" so that callers can append "/room/{id}".
func checkPublicURL(v string) (string, error) {
	if v == "" {
		return "", nil // derived from -http in config.check
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http:// or https:// URL with a host", v)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q must not contain a user, query or fragment", v)
	}
	return strings.TrimRight(v, "/"), nil
}

// urlForListenAddr derives an http:// base URL from a valid listen address (see
// baseURLForListenAddr).
func urlForListenAddr(addr string) string { return baseURLForListenAddr("http", "80", addr) }

// baseURLForListenAddr derives a base URL from a valid listen address: a wildcard host
// becomes localhost, and the scheme's default port is left out.
func baseURLForListenAddr(scheme, defaultPort, addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	if port == defaultPort {
		if strings.Contains(host, ":") {
			return scheme + "://[" + host + "]"
		}
		return scheme + "://" + host
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

func checkAdminToken(v string) (string, error) {
	if v == "" {
		return "", nil // generated by main
	}
	if len(v) < 16 {
		return "", fmt.Errorf("is %d characters, need at least 16", len(v))
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", errors.New("must not contain spaces or control characters (it is sent in an HTTP header)")
	}
	return v, nil
}

func checkTokenSecret(v string) (string, error) {
	if v != "" && len(v) < 32 {
		return "", fmt.Errorf("is %d characters, need at least 32", len(v))
	}
	return v, nil
}

// checkPublicIP accepts an IPv4 or IPv6 address that can be announced to peers.
func checkRTSPAddr(v string) (string, error) {
	if v == "off" {
		return v, nil
	}
	return checkListenAddr(v)
}

// parseRTSPSource splits "<session>/<name>/<as>=<url>".
func parseRTSPSource(v string) (session, name, as, rawURL string, err error) {
	left, rawURL, ok := strings.Cut(v, "=")
	parts := strings.Split(left, "/")
	if !ok || len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", "", "", "", fmt.Errorf("%q is not <session>/<name>/<trainer|site>=rtsp://…", v)
	}
	if parts[2] != "trainer" && parts[2] != "site" {
		return "", "", "", "", fmt.Errorf("%q: the role must be trainer or site", v)
	}
	if u, err := url.Parse(rawURL); err != nil || (u.Scheme != "rtsp" && u.Scheme != "rtsps") || u.Host == "" {
		return "", "", "", "", fmt.Errorf("%q: the URL must be rtsp:// or rtsps:// with a host", left)
	}
	return parts[0], parts[1], parts[2], rawURL, nil
}

func checkRTSPSource(v string) error {
	_, _, _, _, err := parseRTSPSource(v)
	return err
}

func checkBindIP(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	ip, err := netip.ParseAddr(v)
	if err != nil || ip.Zone() != "" || ip.IsMulticast() {
		return "", fmt.Errorf("%q is not a local IP address to bind to", v)
	}
	return ip.String(), nil
}

func checkPublicIP(v string) error {
	ip, err := netip.ParseAddr(v)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not an IP address", v)
	case ip.Zone() != "":
		return fmt.Errorf("%q has a zone; a public address has none", v)
	case ip.IsUnspecified() || ip.IsMulticast():
		return fmt.Errorf("%q cannot be announced to peers", v)
	}
	return nil
}

// checkOrigin accepts "*" or a browser origin, scheme://host[:port] (RFC 6454).
func checkOrigin(v string) error {
	if v == "*" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf(`%q is not an origin ("*" or http(s)://host[:port])`, v)
	}
	if u.Path != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an origin: it has a path, user, query or fragment (browsers send scheme://host[:port] only)", v)
	}
	return nil
}

// checkS3Endpoint accepts "" or http(s)://host[:port] without a path: the scheme
// says whether TLS is used.
func checkS3Endpoint(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not http://host[:port] or https://host[:port]", v)
	}
	if strings.Trim(u.Path, "/") != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q must not contain a path, user, query or fragment (the bucket is -s3-bucket)", v)
	}
	if err := checkHostPort(u.Host); err != nil {
		return "", fmt.Errorf("%q: %w", v, err)
	}
	return u.Scheme + "://" + u.Host, nil
}

// checkBucket accepts an S3 bucket name (3-63 characters of a-z, 0-9, '.', '-',
// starting and ending with a letter or digit).
func checkBucket(v string) (string, error) {
	ok := len(v) >= 3 && len(v) <= 63 && strings.Trim(v, "abcdefghijklmnopqrstuvwxyz0123456789.-") == "" &&
		strings.Trim(v[:1]+v[len(v)-1:], "abcdefghijklmnopqrstuvwxyz0123456789") == ""
	if !ok {
		return "", fmt.Errorf("%q is not a bucket name (3-63 characters: a-z, 0-9, '.', '-')", v)
	}
	return v, nil
}

// isTURN reports whether an ICE server URL is a TURN one.
func isTURN(u string) bool {
	scheme, _, _ := strings.Cut(u, ":")
	scheme = strings.ToLower(scheme)
	return scheme == "turn" || scheme == "turns"
}

// checkICEServer accepts a STUN (RFC 7064) or TURN (RFC 7065) URL:
// stun[s]:host[:port] or turn[s]:host[:port][?transport=udp|tcp].
func checkICEServer(v string) error {
	scheme, rest, ok := strings.Cut(v, ":")
	switch strings.ToLower(scheme) {
	case "stun", "stuns", "turn", "turns":
	default:
		return fmt.Errorf("%q is not a stun:, stuns:, turn: or turns: URL", v)
	}
	if !ok || strings.HasPrefix(rest, "//") {
		return fmt.Errorf("%q: write %s:host[:port], without //", v, scheme)
	}
	hostport, query, hasQuery := strings.Cut(rest, "?")
	if hasQuery && (!isTURN(v) || (query != "transport=udp" && query != "transport=tcp")) {
		return fmt.Errorf("%q: only turn: and turns: URLs take a query, and only transport=udp or transport=tcp", v)
	}
	if err := checkHostPort(hostport); err != nil {
		return fmt.Errorf("%q: %w", v, err)
	}
	return nil
}

// checkHostPort accepts host, host:port, [ipv6] and [ipv6]:port with a port in 1-65535.
func checkHostPort(hp string) error {
	host, port := hp, ""
	if h, p, err := net.SplitHostPort(hp); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(hp, "[") && strings.HasSuffix(hp, "]") {
		host = hp[1 : len(hp)-1]
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not in 1-65535", port)
		}
	}
	bracketed := strings.HasPrefix(hp, "[")
	if ip, err := netip.ParseAddr(host); err == nil && ip.Zone() == "" {
		if ip.Is6() != bracketed {
			return fmt.Errorf("%q: an IPv6 address, and only one, goes in brackets ([2001:db8::1]:3478)", hp)
		}
		return nil
	}
	if bracketed || host == "" || strings.Trim(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "" {
		return fmt.Errorf("host %q is not a host name or IP address", host)
	}
	return nil
}
