// Command cgw-control is cgw's control process: IKEv2 for every configured
// tunnel, DPD, BGP (embedded GoBGP) and route selection, writing SAs,
// tunnel state and routes into the pinned BPF maps cgw-dataplane reads
// (DESIGN §2). Either process may start first or restart alone.
//
// Usage:
//
//	cgw-control -config cgw.yaml [flags]
//
// Flags (each overrides the configuration file):
//
//	-config path     YAML configuration (required)
//	-instance name   pinned-map instance (default gateway.name, else "cgw")
//	-socket path     status API socket (default gateway.observability.status_socket,
//	                 else /run/cgw/<name>/control.sock)
//	-metrics addr    Prometheus listen address (default gateway.observability.control_metrics,
//	                 else 127.0.0.1:9471; "off" disables)
//	-gobgp-api addr  GoBGP gRPC API (default gateway.observability.gobgp_api, else off):
//	                 unix:///path (root only), host:port (beyond loopback only with
//	                 gateway.observability.gobgp_api_tls); off or - disables
//	-guard-state f   file keeping the guarded prefixes across reboots (default
//	                 $STATE_DIRECTORY/<instance>.guards under systemd, else none; off)
//	-remove-guards   remove the kernel guards on exit (decommissioning)
//	-restore-guards  install the guards of the -guard-state file, or of every
//	                 *.guards file of that directory, and exit (early boot:
//	                 cgw-guards.service)
//	-log-level l     debug, info (default), warn, error
//	-log-format f    text (default, key=value) or json
//	-version         print the version, commit and Go version, then exit
//
// Labs and tests only: gateway.testing in the configuration accepts
// lifetimes down to 10 s (short_lifetimes) and DH group 31
// (non_aws_dh_groups); each is logged at WARN on every start and listed
// by cgwctl config check.
//
// Signals: SIGHUP re-reads the configuration file and applies the
// difference (as cgwctl reload; a configuration with problems is refused
// and logged, nothing changes). SIGTERM or SIGINT shut down cleanly:
// every IKE SA is deleted (the peer is told), BGP sessions close, tunnels are marked down and our
// SAs are removed from the maps. SIGUSR1 exits at once leaving every SA
// and route in the maps, so the dataplane keeps forwarding while a new
// cgw-control (an upgrade) starts; the new one re-establishes the tunnels
// and then removes what the old one left. A crash behaves like SIGUSR1.
// In every case the kernel guards stay (control/kernelguard: unreachable
// routes, proto 203, for the prefixes routed into tunnels), so traffic
// the dataplane no longer handles is dropped, not sent in clear; only
// -remove-guards takes them out. After a reboot, cgw-guards.service
// (cgw-control -restore-guards) puts them back from the state file
// before the network is up.
//
// In a network namespace start it with "nsenter --net=/run/netns/<ns>",
// not "ip netns exec": see cmd/cgw-dataplane's documentation (the pinned
// maps under /sys/fs/bpf must be the dataplane's).
//
// Restart: the new process adopts what the old one left in the maps (the
// tunnels keep forwarding on the old SAs and routes), re-establishes each
// tunnel (INITIAL_CONTACT makes the peer drop the old IKE SA), then removes
// the old SAs once the new ones carry traffic and the routes routing did not
// select again once it has converged (or after 90 s). A BGP peer without
// graceful restart still withdraws our prefixes while the session is down.
//
// Status: cgwctl status | sas | routes, or JSON with
// curl --unix-socket <socket> http://x/v1/status; POST
// /v1/tunnels/<name>/rekey-child, /rekey-ike or /initiate acts on a tunnel
// (cgwctl rekey [-ike] | initiate): 204 when started, 409 with the reason
// when it cannot start now (e.g. the SA is already being rekeyed), 404 for
// an unknown tunnel.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cgw-project/cgw/config"
	"github.com/cgw-project/cgw/control/daemon"
	"github.com/cgw-project/cgw/control/metrics"
	"github.com/cgw-project/cgw/control/status"
	"github.com/cgw-project/cgw/internal/buildinfo"
	"github.com/cgw-project/cgw/internal/cli"
	"github.com/cgw-project/cgw/internal/harden"
	"github.com/cgw-project/cgw/internal/logging"
	"github.com/cgw-project/cgw/internal/sdnotify"
)

func main() {
	// Keys live in this process: no core files, no ptrace by non-root.
	if err := harden.Process(); err != nil {
		fmt.Fprintf(os.Stderr, "cgw-control: %v\n", err)
		os.Exit(1)
	}
	fs := flag.NewFlagSet("cgw-control", flag.ExitOnError)
	cfgPath := fs.String("config", "", "YAML configuration file (required)")
	instance := fs.String("instance", "", "pinned-map instance name (default: gateway.name or cgw)")
	socket := fs.String("socket", "", "status API unix socket (default: gateway.observability.status_socket)")
	metricsAddr := fs.String("metrics", "", "Prometheus listen address (default: config, else 127.0.0.1:9471; off disables)")
	gobgpAPI := fs.String("gobgp-api", "", "GoBGP gRPC API: unix:///path (root only), host:port, or off (default: config, else off)")
	guardState := fs.String("guard-state", "", "file keeping the guarded prefixes across a reboot (default: $STATE_DIRECTORY/<instance>.guards under systemd, else none; off disables)")
	restore := fs.Bool("restore-guards", false, "install the kernel guards listed in the -guard-state file (or in every *.guards file of that directory; default $STATE_DIRECTORY) and exit: cgw-guards.service runs it at early boot")
	removeGuards := fs.Bool("remove-guards", false, "on exit, remove the kernel's unreachable routes that keep tunnel-bound traffic from leaving in clear while cgw is down (decommissioning; by default they stay)")
	var lf logging.Flags
	lf.Register(fs)
	version := buildinfo.Flag(fs, "cgw-control", os.Stdout)
	cli.ManUsage(fs, synopsis, description, "cgw-control(8)")
	fs.Parse(os.Args[1:])
	version()
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "cgw-control: unexpected arguments %q: every setting is a flag (see -h)\n", fs.Args())
		os.Exit(2)
	}
	log, err := lf.Logger(os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cgw-control: %v\n", err)
		os.Exit(2)
	}
	if *restore {
		if err := restoreGuards(log, *guardState); err != nil {
			log.Error(err.Error())
			os.Exit(1)
		}
		return
	}
	log.Info("cgw-control starting", "version", buildinfo.Read().Version, "commit", buildinfo.Read().Commit)
	if err := run(log, *cfgPath, *instance, *socket, *metricsAddr, *gobgpAPI, *guardState, *removeGuards); err != nil {
		log.Error(err.Error())
		os.Exit(1)
	}
}

func run(log *slog.Logger, cfgPath, instance, socket, metricsAddr, gobgpAPI, guardState string, removeGuards bool) error {
	if cfgPath == "" {
		return fmt.Errorf("no configuration: give -config cgw.yaml (cgwctl config import writes one from AWS's file)")
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	if err := cfg.Check(); err != nil {
		return fmt.Errorf("%s:\n%w", cfgPath, err)
	}
	for _, w := range append(config.FileWarnings(cfgPath, cfg), cfg.Warnings()...) {
		log.Warn(w.Msg, "setting", w.Path, "config", cfgPath)
	}
	if instance == "" {
		instance = cfg.Gateway.Name
	}
	if instance == "" {
		instance = config.DefaultGatewayName
	}
	if socket == "" {
		socket = cfg.Gateway.Observability.StatusSocket
	}
	if socket == "" {
		socket = config.DefaultStatusSocket(instance)
	}
	if metricsAddr == "" {
		metricsAddr = cfg.Gateway.Observability.ControlMetrics
	}
	if metricsAddr == "" {
		metricsAddr = config.DefaultControlMetrics
	}

	// The collector exists before the daemon so no event goes uncounted.
	var running atomic.Pointer[daemon.Daemon]
	m := metrics.New(func() *status.Status {
		if d := running.Load(); d != nil {
			return d.Status()
		}
		return nil
	})
	d, err := daemon.Start(daemon.Options{Config: cfg, Instance: instance, Log: log, GoBGPAPI: gobgpAPI, OnEvent: m.Event,
		OnRekeyRequest: m.RekeyRequest, ConfigPath: cfgPath, OnReload: m.Init, RemoveGuards: removeGuards,
		GuardState: guardStatePath(guardState, instance)})
	if err != nil {
		return err
	}
	running.Store(d)
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Stop(ctx)
	}
	var names []string
	for _, t := range d.Status().Tunnels {
		names = append(names, t.Name)
	}
	m.Init(names)

	srv, err := status.Listen(socket, d)
	if err != nil {
		stop()
		return err
	}
	defer srv.Close()

	if metricsAddr != "off" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(m, buildinfo.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg.MustRegister(bgpMetrics{d})
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			stop()
			return fmt.Errorf("metrics: listening on %s: %w (set gateway.observability.control_metrics or -metrics; off disables)", metricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(ln)
		defer hs.Close()
	}
	log.Info("cgw-control running", "instance", instance, "tunnels", len(d.Status().Tunnels), "status_socket", socket, "metrics", metricsAddr)

	// systemd (Type=notify): ready once the status socket and metrics
	// serve; the status line follows the tunnels and BGP sessions.
	if _, err := sdnotify.Ready(d.Status().Summary()); err != nil {
		log.Warn("sd_notify: " + err.Error())
	}
	notifyDone := make(chan struct{})
	defer close(notifyDone)
	go func() {
		last := ""
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-notifyDone:
				return
			case <-tick.C:
			}
			if line := d.Status().Summary(); line != last {
				sdnotify.Status(line)
				last = line
			}
		}
	}()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGHUP)
	got := <-sig
	for got == syscall.SIGHUP {
		reload(log, d)
		got = <-sig
	}
	sdnotify.Stopping(got.String())
	if got == syscall.SIGUSR1 {
		log.Info("SIGUSR1: exiting and leaving every SA and route in the maps (the dataplane keeps forwarding)")
		return nil
	}
	log.Info(got.String() + ": deleting IKE SAs, closing BGP sessions, marking tunnels down")
	stop()
	return nil
}

// reload is SIGHUP: the same as cgwctl reload, with the outcome logged.
func reload(log *slog.Logger, d *daemon.Daemon) {
	log.Info("SIGHUP: reloading the configuration")
	r, err := d.Reload()
	switch {
	case err != nil:
		log.Error("reload: " + err.Error())
	case !r.Applied:
		for _, p := range r.Problems {
			log.Error("reload refused, nothing changed: "+p, "config", r.Config)
		}
	default:
		log.Info("reload applied", "config", r.Config, "added", r.Added, "removed", r.Removed, "changed", r.Changed, "unchanged", len(r.Unchanged), "errors", r.Errors)
	}
}

// bgpMetrics is the BGP speaker's collector, looked up at each scrape: a
// reload may start the speaker (the first BGP connection) or none may
// run. Unchecked (it describes nothing), as its series come and go.
type bgpMetrics struct{ d *daemon.Daemon }

func (bgpMetrics) Describe(chan<- *prometheus.Desc) {}

func (b bgpMetrics) Collect(ch chan<- prometheus.Metric) {
	if s := b.d.BGP(); s != nil {
		s.Collector().Collect(ch)
	}
}

// guardStatePath is -guard-state: as given, off, or under the unit's
// StateDirectory (systemd sets STATE_DIRECTORY).
func guardStatePath(flag, instance string) string {
	switch {
	case flag == "off":
		return ""
	case flag != "":
		return flag
	}
	if dir, _, _ := strings.Cut(os.Getenv("STATE_DIRECTORY"), ":"); dir != "" {
		return filepath.Join(dir, instance+".guards")
	}
	return ""
}
