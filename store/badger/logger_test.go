package badger

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestBadgerLoggerKeepsWarningsOnly(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := zapBadgerLogger{zap.New(core)}
	l.Infof("compaction done for level %d\n", 1)
	l.Debugf("flushing memtable")
	l.Warningf("value log %s truncated\n", "000001.vlog")
	l.Errorf("cannot open %q", "x")
	got := logs.All()
	if len(got) != 2 || got[0].Level != zapcore.WarnLevel || got[0].Message != "value log 000001.vlog truncated" || got[1].Level != zapcore.ErrorLevel {
		t.Fatalf("logged %+v", got)
	}
}
