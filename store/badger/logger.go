package badger

import (
	"fmt"
	"strings"

	"go.uber.org/zap"
)

// zapBadgerLogger routes Badger's own messages into the gateway's zap logger.
// Badger logs every compaction and memtable flush at info level; those would
// drown the gateway's logs, so only warnings and errors pass.
type zapBadgerLogger struct{ l *zap.Logger }

func (z zapBadgerLogger) Errorf(f string, v ...any) {
	z.l.Error(strings.TrimSpace(fmt.Sprintf(f, v...)))
}

func (z zapBadgerLogger) Warningf(f string, v ...any) {
	z.l.Warn(strings.TrimSpace(fmt.Sprintf(f, v...)))
}

func (zapBadgerLogger) Infof(string, ...any)  {}
func (zapBadgerLogger) Debugf(string, ...any) {}
