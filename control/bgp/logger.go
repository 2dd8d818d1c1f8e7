package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// logger adapts GoBGP's logger to slog. GoBGP's Info is chatty (every
// state change, every policy step), so it is logged at Debug; our own code
// logs session changes at Info. Fatal never exits the process: GoBGP calls
// it from a goroutine (e.g. when its gRPC port is taken), and cgw-control
// must keep forwarding; the error is logged and counted.
type logger struct {
	l      *slog.Logger
	level  atomic.Uint32
	fatals atomic.Uint64
}

func (g *logger) log(lv slog.Level, msg string, f gobgplog.Fields) {
	if !g.l.Enabled(context.Background(), lv) {
		return
	}
	args := make([]any, 0, 2*len(f))
	for k, v := range f {
		args = append(args, k, v)
	}
	g.l.Log(context.Background(), lv, msg, args...)
}

func (g *logger) Panic(msg string, f gobgplog.Fields) {
	g.log(slog.LevelError, msg, f)
	panic(fmt.Sprintf("gobgp: %s %v", msg, f))
}

func (g *logger) Fatal(msg string, f gobgplog.Fields) {
	g.fatals.Add(1)
	g.log(slog.LevelError, "gobgp fatal: "+msg, f)
}

func (g *logger) Error(msg string, f gobgplog.Fields) { g.log(slog.LevelError, msg, f) }
func (g *logger) Warn(msg string, f gobgplog.Fields)  { g.log(slog.LevelWarn, msg, f) }
func (g *logger) Info(msg string, f gobgplog.Fields)  { g.log(slog.LevelDebug, msg, f) }
func (g *logger) Debug(msg string, f gobgplog.Fields) { g.log(slog.LevelDebug-4, msg, f) }

// SetLevel and GetLevel keep GoBGP's notion of the level (it skips building
// debug messages below it); slog's handler still filters.
func (g *logger) SetLevel(l gobgplog.LogLevel) { g.level.Store(uint32(l)) }
func (g *logger) GetLevel() gobgplog.LogLevel {
	l := gobgplog.LogLevel(g.level.Load())
	if l == 0 {
		return gobgplog.InfoLevel
	}
	return l
}
