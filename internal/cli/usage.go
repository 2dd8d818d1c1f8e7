package cli

import (
	"flag"
	"fmt"
	"strings"
)

// ManUsage makes a daemon's -h read as a short man page: what the
// program is (description, one paragraph), its synopsis, its flags and
// where its manual is (e.g. "cgw-control(8)"). The flag package still
// prints it (on fs's output) and exits 0 after -h.
func ManUsage(fs *flag.FlagSet, synopsis, description, manual string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "%s: %s\n\nusage: %s %s\n\nflags:\n", fs.Name(), strings.TrimSpace(description), fs.Name(), synopsis)
		fs.PrintDefaults()
		fmt.Fprintf(w, "\nSee %s: every flag in full, signals, files, exit status.\n", manual)
	}
}
