package peer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/pion/logging"
)

// pionLogs routes pion's logs into slog. pion asks for a logger per scope for every
// connection; the factory hands out one shared logger per scope, so a connection
// costs no logger allocations, and pion's chatter stays below Lectern's own: its
// errors are warnings here, its warnings debug messages, the rest dropped.
type pionLogs struct {
	log *slog.Logger

	mu      sync.Mutex
	loggers map[string]*pionLogger
}

func newPionLogs(log *slog.Logger) *pionLogs {
	return &pionLogs{log: log.With("component", "pion"), loggers: map[string]*pionLogger{}}
}

// NewLogger implements logging.LoggerFactory.
func (f *pionLogs) NewLogger(scope string) logging.LeveledLogger {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.loggers[scope]
	if !ok {
		l = &pionLogger{log: f.log.With("scope", scope)}
		f.loggers[scope] = l
	}
	return l
}

type pionLogger struct{ log *slog.Logger }

func (l *pionLogger) emit(level slog.Level, msg string) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, msg)
	}
}

func (l *pionLogger) Trace(string)          {}
func (l *pionLogger) Tracef(string, ...any) {}
func (l *pionLogger) Debug(string)          {}
func (l *pionLogger) Debugf(string, ...any) {}
func (l *pionLogger) Info(string)           {}
func (l *pionLogger) Infof(string, ...any)  {}
func (l *pionLogger) Warn(msg string)       { l.emit(slog.LevelDebug, msg) }
func (l *pionLogger) Warnf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.emit(slog.LevelDebug, fmt.Sprintf(format, args...))
	}
}
func (l *pionLogger) Error(msg string) { l.emit(slog.LevelWarn, msg) }
func (l *pionLogger) Errorf(format string, args ...any) {
	l.emit(slog.LevelWarn, fmt.Sprintf(format, args...))
}
