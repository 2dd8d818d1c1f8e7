// Package logging is the one log style of cgw's daemons: log/slog, text
// or JSON (-log-format), a level (-log-level), on stderr (the journal under
// systemd). Lines written with the standard log package go through the
// same handler, at INFO.
package logging

import (
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
)

// Flags are the daemons' logging flags.
type Flags struct {
	Format string
	Level  string
}

// Register adds -log-format and -log-level to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Format, "log-format", "text", "log format: text (key=value) or json (one object per line)")
	fs.StringVar(&f.Level, "log-level", "info", "log level: debug, info, warn, error")
}

// Logger returns the logger the flags ask for, writing to w, and makes it
// slog's default (so the standard log package writes through it too).
// The error says which flag is wrong and what it takes.
func (f *Flags) Logger(w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(f.Level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", f.Level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch f.Format {
	case "text", "":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("-log-format %q: want text or json", f.Format)
	}
	l := slog.New(h)
	slog.SetDefault(l)
	log.SetPrefix("")
	return l, nil
}
