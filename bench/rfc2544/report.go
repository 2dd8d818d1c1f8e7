package rfc2544

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/cgw-project/cgw/bench/pktgen"
)

// Row is one search of a run: a series (forwarder, encrypt, decrypt, …)
// at one mix.
type Row struct {
	Series string `json:"series"`
	Mix    string `json:"mix"`
	Flows  int    `json:"flows"`
	Result
}

func lat(l *pktgen.Latency) string {
	if l == nil || l.Received == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f/%.0f/%.0f/%.0f/%.0f", l.MinUs, l.AvgUs, l.P50Us, l.P99Us, l.MaxUs)
}

// WriteTable writes the human table: NDR and PDR in frames/s and Mbit/s
// (frames with FCS), CPU efficiency and latency at each.
func WriteTable(w io.Writer, rows []Row, pdrLoss float64) {
	fmt.Fprintf(w, "%-9s %-6s %5s %11s %9s %14s %-28s %11s %9s %-28s %6s\n", "series", "mix", "flows",
		"NDR pps", "NDR Mb/s", "NDR pkt/CPU-s", "NDR latency µs min/avg/50/99/max",
		fmt.Sprintf("PDR%.1f%% pps", 100*pdrLoss), "PDR Mb/s", "PDR latency µs", "trials")
	for _, r := range rows {
		note := ""
		if r.GeneratorBound {
			note = "  (generator's limit)"
		}
		fmt.Fprintf(w, "%-9s %-6s %5d %11.0f %9.1f %14.0f %-28s %11.0f %9.1f %-28s %6d%s\n", r.Series, r.Mix, r.Flows,
			r.NDR, r.NDRTrial.OfferedBPS()/1e6, r.NDRTrial.PerCPUSecond(), lat(r.NDRTrial.Latency),
			r.PDR, r.PDRTrial.OfferedBPS()/1e6, lat(r.PDRTrial.Latency), len(r.Steps), note)
	}
}

// CSVHeader is WriteCSV's first row.
var CSVHeader = []string{"series", "mix", "flows", "ndr_pps", "ndr_bps", "ndr_pkt_per_cpu_s", "ndr_lat_min_us", "ndr_lat_avg_us", "ndr_lat_p50_us", "ndr_lat_p99_us", "ndr_lat_max_us",
	"pdr_pps", "pdr_bps", "pdr_loss", "pdr_lat_min_us", "pdr_lat_avg_us", "pdr_lat_p50_us", "pdr_lat_p99_us", "pdr_lat_max_us", "trials", "generator_bound"}

// WriteCSV writes one row per search.
func WriteCSV(w io.Writer, rows []Row) error {
	c := csv.NewWriter(w)
	c.Write(CSVHeader)
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	latCols := func(l *pktgen.Latency) []string {
		if l == nil || l.Received == 0 {
			return []string{"", "", "", "", ""}
		}
		return []string{f(l.MinUs), f(l.AvgUs), f(l.P50Us), f(l.P99Us), f(l.MaxUs)}
	}
	for _, r := range rows {
		row := []string{r.Series, r.Mix, strconv.Itoa(r.Flows), f(r.NDR), f(r.NDRTrial.OfferedBPS()), f(r.NDRTrial.PerCPUSecond())}
		row = append(row, latCols(r.NDRTrial.Latency)...)
		row = append(row, f(r.PDR), f(r.PDRTrial.OfferedBPS()), f(r.PDRTrial.Loss()))
		row = append(row, latCols(r.PDRTrial.Latency)...)
		row = append(row, strconv.Itoa(len(r.Steps)), strconv.FormatBool(r.GeneratorBound))
		c.Write(row)
	}
	c.Flush()
	return c.Error()
}

// WriteJSON writes the searches with every trial.
func WriteJSON(w io.Writer, rows []Row) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(rows)
}
