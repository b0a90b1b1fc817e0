package storage

import (
	"fmt"
	"mime"
	"path"
	"strings"
)

// defaultContentType is used for keys whose extension is not in
// extensionTypes.
const defaultContentType = "application/octet-stream"

// extensionTypes maps the extensions Lectern writes to their MIME types.
// It is deliberately a fixed table rather than mime.TypeByExtension, whose
// answers depend on the host's /etc/mime.types: Dir decides from this table
// whether an object needs a content-type sidecar, and that decision must not
// change when the data directory moves to another machine.
var extensionTypes = map[string]string{
	".aac":  "audio/aac",
	".css":  "text/css; charset=utf-8",
	".gif":  "image/gif",
	".htm":  "text/html; charset=utf-8",
	".html": "text/html; charset=utf-8",
	".jpeg": "image/jpeg",
	".jpg":  "image/jpeg",
	".js":   "text/javascript; charset=utf-8",
	".json": "application/json",
	".m3u8": "application/vnd.apple.mpegurl",
	".m4a":  "audio/mp4",
	".m4s":  "video/iso.segment",
	".m4v":  "video/mp4",
	".mkv":  "video/x-matroska",
	".mp3":  "audio/mpeg",
	".mp4":  "video/mp4",
	".mpd":  "application/dash+xml",
	".ogg":  "audio/ogg",
	".opus": "audio/ogg",
	".pdf":  "application/pdf",
	".png":  "image/png",
	".srt":  "application/x-subrip",
	".svg":  "image/svg+xml",
	".ts":   "video/mp2t",
	".txt":  "text/plain; charset=utf-8",
	".vtt":  "text/vtt; charset=utf-8",
	".webm": "video/webm",
	".webp": "image/webp",
}

// contentTypeFor returns the MIME type implied by key's extension.
func contentTypeFor(key string) string {
	if t, ok := extensionTypes[strings.ToLower(path.Ext(key))]; ok {
		return t
	}
	return defaultContentType
}

// resolveContentType returns the content type to store for key: ct itself
// when it is a valid media type, the extension's type when ct is "".
func resolveContentType(key, ct string) (string, error) {
	if ct == "" {
		return contentTypeFor(key), nil
	}
	if _, _, err := mime.ParseMediaType(ct); err != nil || strings.ContainsFunc(ct, isControl) {
		return "", fmt.Errorf("storage: put %q: invalid content type %q", key, ct)
	}
	return ct, nil
}
