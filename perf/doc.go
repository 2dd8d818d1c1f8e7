// Package perf holds cgw's observability assets, not code: Prometheus
// scrape configuration and rules (prometheus/), Grafana dashboards
// (grafana/) and the benchmark result history (results/). Its tests keep
// them true to the code: every metric and label a dashboard or rule names
// must be one the collectors of cgw-control and cgw-dataplane really
// export, and promtool must accept the configuration, the rules and every
// dashboard query. See README.md.
package perf
