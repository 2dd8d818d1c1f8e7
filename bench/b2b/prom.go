package b2b

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cgw-project/cgw/bench/pktgen"
	"github.com/cgw-project/cgw/bench/procstat"
	"github.com/cgw-project/cgw/internal/prereq"
)

// Prometheus is a real Prometheus (Debian's package) in a site's
// namespace scraping that site's dataplane every second during a
// benchmark, so the bench dashboard (perf/grafana/cgw-bench.json) can be
// checked against a real run.
type Prometheus struct {
	ns   string
	addr string
	cmd  *exec.Cmd
	log  string
}

// promPort is where it listens, on the namespace's loopback.
const promPort = 9490

// StartPrometheus starts Prometheus in site s's namespace, storage and
// log under dir; job cgw-dataplane, label gateway "bench".
func (t *Topology) StartPrometheus(s *Site, dir string) (*Prometheus, error) {
	if miss := prereq.Commands("prometheus"); len(miss) > 0 {
		return nil, fmt.Errorf("b2b: %v", miss)
	}
	cfg := `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: cgw-dataplane
    static_configs:
      - targets: ["127.0.0.1:9472"]
        labels:
          gateway: bench
`
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	p := &Prometheus{ns: s.NS, addr: fmt.Sprintf("127.0.0.1:%d", promPort), log: filepath.Join(dir, "prometheus.log")}
	lf, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	// nsenter execs: the pid is Prometheus's, recorded for Down.
	p.cmd = exec.Command("nsenter", "--net=/run/netns/"+s.NS, "prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+p.addr, "--log.level=warn")
	p.cmd.Stdout, p.cmd.Stderr = lf, lf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("b2b: starting prometheus in %s: %w", s.NS, err)
	}
	if st, err := procstat.Read(p.cmd.Process.Pid); err == nil {
		t.record("proc", fmt.Sprintf("%d %d", p.cmd.Process.Pid, st.Start))
	}
	return p, nil
}

// WaitScraping returns once Prometheus has scraped the dataplane at
// least twice (a rate needs two samples), or the error that says why not:
// on a loaded machine it can take seconds to start, and a run it did not
// see would leave the dashboard's queries empty.
func (p *Prometheus) WaitScraping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var n int
	var err error
	for {
		if n, err = p.Query(ctx, `count_over_time(up{job="cgw-dataplane"}[1m]) >= 2 and up{job="cgw-dataplane"} == 1`); err == nil && n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("the target 127.0.0.1:9472 is not up (cgw-dataplane's -metrics)")
			}
			return fmt.Errorf("b2b: prometheus did not scrape the dataplane within %v: %v; its log:\n%s", timeout, err, p.Log())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Stop ends Prometheus by pid.
func (p *Prometheus) Stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// Log is what Prometheus logged.
func (p *Prometheus) Log() string { b, _ := os.ReadFile(p.log); return string(b) }

// Query runs an instant query and returns the number of series (or 1 for
// a scalar) it answered with.
func (p *Prometheus) Query(ctx context.Context, q string) (int, error) {
	// The socket must be made in the site's namespace, where the server
	// listens on loopback.
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = pktgen.InNetns(p.ns, func() error {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+p.addr+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status, Error string
		Data          struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("prometheus: %s", r.Error)
	}
	if r.Data.ResultType != "vector" && r.Data.ResultType != "matrix" {
		return 1, nil
	}
	var v []json.RawMessage
	err = json.Unmarshal(r.Data.Result, &v)
	return len(v), err
}
