package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// usageError is an error that is the command line's fault (exit Usage).
type usageError struct {
	err     error
	printed bool // the flag package already said it, with the usage
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// UsageErrorf returns an error that makes RunE exit with Usage.
func UsageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// ParseFlags parses a command that takes flags only: flag.ErrHelp after
// -h, a usage error for a bad flag or a stray argument.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err: err, printed: true}
	}
	if fs.NArg() > 0 {
		return UsageErrorf("unexpected arguments %q: every setting is a flag (see -h)", fs.Args())
	}
	return nil
}

// RunE adapts a command that returns an error: nil or flag.ErrHelp exit
// OK, a usage error exits Usage, any other error is printed as
// "name: error" and exits Failed.
func RunE(name string, f func(args []string) error) func(stdout, stderr io.Writer, args []string) int {
	return func(stdout, stderr io.Writer, args []string) int {
		err := f(args)
		var ue *usageError
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return OK
		case errors.As(err, &ue):
			if !ue.printed {
				fmt.Fprintf(stderr, "%s: %v\n", name, err)
			}
			return Usage
		}
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return Failed
	}
}
