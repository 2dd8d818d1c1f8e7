package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/cgw-project/cgw/bench/b2b"
	"github.com/cgw-project/cgw/crypto/transform"
)

// env is the back-to-back topology with site A's dataplane in one mode
// (plain forwarder or gateway) and site B's running as a gateway (it
// takes the outbound latency probes).
type env struct {
	t        *b2b.Topology
	load     *b2b.Load
	noCrypto *bool // site A's current mode (nil: not running)
}

func newEnv(ctx context.Context, dataplane, prefix, workerCPU string, suite transform.Suite) (*env, error) {
	if _, err := os.Stat(dataplane); err != nil {
		return nil, fmt.Errorf("cgw-dataplane binary %s: %w (make build, or pass -dataplane)", dataplane, err)
	}
	o := b2b.Options{Prefix: prefix, Dataplane: dataplane, NoReplay: true, Suite: suite}
	if workerCPU != "" {
		o.CPU = map[string]string{"A": workerCPU}
	}
	e := &env{t: b2b.New(o)}
	if err := e.t.Up(ctx); err != nil {
		e.t.Down()
		return nil, err
	}
	if _, err := e.t.RunDataplane(ctx, e.t.B, 20*time.Second); err != nil {
		e.t.Down()
		return nil, err
	}
	var err error
	if e.load, err = e.t.NewLoad(); err != nil {
		e.t.Down()
		return nil, err
	}
	return e, nil
}

// mode (re)starts site A's dataplane as a forwarder or a gateway.
func (e *env) mode(ctx context.Context, noCrypto bool) error {
	if e.noCrypto != nil && *e.noCrypto == noCrypto {
		return nil
	}
	e.t.StopDataplane(e.t.A, false)
	e.t.Opts.NoCrypto = noCrypto
	if _, err := e.t.RunDataplane(ctx, e.t.A, 20*time.Second); err != nil {
		return err
	}
	e.noCrypto = &noCrypto
	return nil
}

// startPrometheus starts Prometheus in site A's namespace, with its
// configuration, data and log in dir, and returns once it scrapes A's
// dataplane (which it starts as a forwarder if none runs yet).
func (e *env) startPrometheus(ctx context.Context, dir string) (*b2b.Prometheus, error) {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("-prometheus %s: not empty; give a new directory (it keeps this run's data)", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if e.noCrypto == nil {
		if err := e.mode(ctx, true); err != nil {
			return nil, err
		}
	}
	p, err := e.t.StartPrometheus(e.t.A, dir)
	if err != nil {
		return nil, err
	}
	if err := p.WaitScraping(ctx, time.Minute); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

func (e *env) close() {
	if e.load != nil {
		e.load.Close()
	}
	e.t.Down()
}

// machineLine says where and when figures were measured.
func machineLine() string {
	host, _ := os.Hostname()
	kern, _ := exec.Command("uname", "-r").Output()
	cpu := "unknown cpu"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	n, _ := exec.Command("nproc").Output()
	return fmt.Sprintf("machine: %s, %s CPUs, kernel %s, host %s, %s UTC", cpu, strings.TrimSpace(string(n)), strings.TrimSpace(string(kern)), host, time.Now().UTC().Format(time.RFC3339))
}

// writeFiles writes CSV and JSON outputs to the paths given (empty: not).
func writeFiles(csvPath, jsonPath string, csv, json func(io.Writer) error) error {
	for _, o := range []struct {
		path  string
		write func(io.Writer) error
	}{{csvPath, csv}, {jsonPath, json}} {
		if o.path == "" {
			continue
		}
		f, err := os.Create(o.path)
		if err != nil {
			return err
		}
		err = o.write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", o.path, err)
		}
	}
	return nil
}
