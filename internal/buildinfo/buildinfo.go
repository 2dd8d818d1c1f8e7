// Package buildinfo says which build of cgw is running: the module
// version, the VCS commit and the Go version the binary was built with,
// for every binary's -version and the daemons' cgw_build_info metric.
package buildinfo

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Set by the Makefile (-ldflags -X) from git, for builds where the Go
// command stamps no VCS data (e.g. GOFLAGS=-buildvcs=false).
var (
	version string
	commit  string
)

// Info describes this binary's build.
type Info struct {
	Version   string // module version: a tag, a pseudo-version, or (devel)
	Commit    string // VCS revision, "+dirty" when the tree was modified; "unknown" without VCS data
	GoVersion string
}

// Read returns the running binary's build information.
func Read() Info {
	i := Info{Version: "(devel)", Commit: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = &debug.BuildInfo{}
	}
	if v := bi.Main.Version; v != "" {
		i.Version = v
	}
	if bi.GoVersion != "" {
		i.GoVersion = bi.GoVersion
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Commit = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && i.Commit != "unknown" {
		i.Commit += "+dirty"
	}
	if version != "" {
		i.Version = version
	}
	if commit != "" {
		i.Commit = commit
	}
	return i
}

// Line is what -version prints: "prog version V commit C go G".
func (i Info) Line(prog string) string {
	return fmt.Sprintf("%s version %s commit %s %s", prog, i.Version, i.Commit, i.GoVersion)
}

// Flag registers -version on fs; call the returned function after
// fs.Parse: it prints the version line to w and exits 0 when -version was
// given.
func Flag(fs *flag.FlagSet, prog string, w io.Writer) func() {
	v := fs.Bool("version", false, "print the version, commit and Go version, then exit")
	return func() {
		if *v {
			fmt.Fprintln(w, Read().Line(prog))
			os.Exit(0)
		}
	}
}

// Collector is the gauge cgw_build_info{version,commit,goversion} = 1,
// the usual join target for "which build runs where".
func Collector() prometheus.Collector {
	i := Read()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "cgw_build_info",
		Help:        "Always 1; the labels say which build of cgw is running.",
		ConstLabels: prometheus.Labels{"version": i.Version, "commit": i.Commit, "goversion": i.GoVersion},
	})
	g.Set(1)
	return g
}
