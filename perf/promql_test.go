package perf

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// A small PromQL reader: enough to list the metric selectors, their label
// matchers and the grouping labels of an expression, which is what the
// name checks need. Full syntax is checked by promtool (TestPromtool);
// go.mod deliberately does not carry the Prometheus server module.

type matcher struct{ label, op, value string }

type selector struct {
	name     string
	matchers []matcher
}

type query struct {
	selectors []selector
	grouping  []string // labels of by, without, on, ignoring, group_left, group_right
}

// functions are PromQL's functions and aggregation operators (Prometheus
// 2.42), so a misspelt one is caught here and not taken for a metric.
var functions = set("abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
	"avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh", "count_over_time",
	"days_in_month", "day_of_month", "day_of_week", "day_of_year", "deg", "delta", "deriv", "exp", "floor",
	"histogram_count", "histogram_fraction", "histogram_quantile", "histogram_sum", "histogram_stddev",
	"histogram_stdvar", "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace",
	"last_over_time", "ln", "log10", "log2", "mad_over_time", "max_over_time", "min_over_time", "minute", "month",
	"pi", "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets", "round",
	"scalar", "sgn", "sin", "sinh", "sort", "sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time",
	"sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year",
	// aggregations
	"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile")

var aggregations = set("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile")

func leadingWord(s string) string {
	i := 0
	for i < len(s) && isIdent(s[i]) {
		i++
	}
	return s[:i]
}

var groupingWords = set("by", "without", "on", "ignoring", "group_left", "group_right")

var keywords = set("and", "or", "unless", "bool", "offset", "inf", "nan", "atan2")

func set(xs ...string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// parsePromQL lists the selectors and grouping labels of expr. Grafana
// variables ($x, ${x}, [[x]]) are skipped wherever they stand.
func parsePromQL(expr string) (query, error) {
	var q query
	i, n := 0, len(expr)
	skipSpace := func() {
		for i < n && strings.IndexByte(" \t\r\n", expr[i]) >= 0 {
			i++
		}
	}
	readString := func() (string, error) {
		quote := expr[i]
		start := i
		i++
		var b strings.Builder
		for i < n && expr[i] != quote {
			if expr[i] == '\\' && quote != '`' && i+1 < n {
				i++
			}
			b.WriteByte(expr[i])
			i++
		}
		if i >= n {
			return "", fmt.Errorf("unterminated string at offset %d", start)
		}
		i++
		return b.String(), nil
	}
	readIdent := func() string {
		start := i
		for i < n && isIdent(expr[i]) {
			i++
		}
		return expr[start:i]
	}
	skipVariable := func() {
		i++ // $
		if i < n && expr[i] == '{' {
			for i < n && expr[i] != '}' {
				i++
			}
			i++
			return
		}
		readIdent()
	}
	readMatchers := func() ([]matcher, error) {
		var ms []matcher
		i++ // {
		for {
			skipSpace()
			if i >= n {
				return nil, fmt.Errorf("unterminated label matchers")
			}
			if expr[i] == '}' {
				i++
				return ms, nil
			}
			if expr[i] == ',' {
				i++
				continue
			}
			if !isIdentStart(expr[i]) {
				return nil, fmt.Errorf("label name expected at offset %d", i)
			}
			m := matcher{label: readIdent()}
			skipSpace()
			for _, op := range []string{"=~", "!~", "!=", "="} {
				if strings.HasPrefix(expr[i:], op) {
					m.op = op
					i += len(op)
					break
				}
			}
			if m.op == "" {
				return nil, fmt.Errorf("matcher operator expected after %q", m.label)
			}
			skipSpace()
			if i >= n || strings.IndexByte("\"'`", expr[i]) < 0 {
				return nil, fmt.Errorf("string expected after %s%s", m.label, m.op)
			}
			v, err := readString()
			if err != nil {
				return nil, err
			}
			m.value = v
			ms = append(ms, m)
		}
	}
	for i < n {
		c := expr[i]
		switch {
		case strings.IndexByte(" \t\r\n", c) >= 0:
			i++
		case c == '#':
			for i < n && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			if _, err := readString(); err != nil {
				return q, err
			}
		case c == '$':
			skipVariable()
		case c == '[':
			// Range, subquery or a [[var]]: nothing to check inside.
			depth := 0
			for i < n {
				if expr[i] == '[' {
					depth++
				} else if expr[i] == ']' {
					depth--
					if depth == 0 {
						i++
						break
					}
				}
				i++
			}
			if depth != 0 {
				return q, fmt.Errorf("unbalanced [")
			}
		case c == '{':
			return q, fmt.Errorf("selector without a metric name at offset %d: name the metric so it can be checked", i)
		case c >= '0' && c <= '9' || c == '.':
			for i < n && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			word := readIdent()
			skipSpace()
			next := byte(0)
			if i < n {
				next = expr[i]
			}
			lw := strings.ToLower(word)
			switch {
			case groupingWords[lw]:
				if next != '(' {
					if lw == "group_left" || lw == "group_right" {
						continue
					}
					return q, fmt.Errorf("%s without a label list", word)
				}
				end := strings.IndexByte(expr[i:], ')')
				if end < 0 {
					return q, fmt.Errorf("unterminated %s(", word)
				}
				for _, l := range strings.Split(expr[i+1:i+end], ",") {
					if l = strings.TrimSpace(l); l != "" {
						q.grouping = append(q.grouping, l)
					}
				}
				i += end + 1
			case keywords[lw]:
			case aggregations[word] && next != '(' && groupingWords[strings.ToLower(leadingWord(expr[i:]))]:
				// sum by (l) (expr): the grouping clause comes first.
			case next == '(':
				if !functions[word] {
					return q, fmt.Errorf("unknown function %q", word)
				}
			default:
				s := selector{name: word}
				if next == '{' {
					ms, err := readMatchers()
					if err != nil {
						return q, fmt.Errorf("%s: %w", word, err)
					}
					s.matchers = ms
				}
				q.selectors = append(q.selectors, s)
			}
		default:
			i++
		}
	}
	return q, nil
}

func TestParsePromQL(t *testing.T) {
	for _, c := range []struct {
		expr string
		want query
	}{
		{`sum by (worker, direction) (rate(cgw_dataplane_packets_total{worker=~"$worker", gateway=~"${gateway}"}[$__rate_interval])) * 8`,
			query{selectors: []selector{{"cgw_dataplane_packets_total", []matcher{{"worker", "=~", "$worker"}, {"gateway", "=~", "${gateway}"}}}},
				grouping: []string{"worker", "direction"}}},
		{`max without(instance) (a:b:c) == 0 and on (tunnel) group_left cgw_control_tunnel_up{tunnel!="x\"y"} offset 5m`,
			query{selectors: []selector{{"a:b:c", nil}, {"cgw_control_tunnel_up", []matcher{{"tunnel", "!=", `x"y`}}}},
				grouping: []string{"instance", "tunnel"}}},
		{`histogram_quantile(0.9, sum(rate(x_bucket[5m:1m])) by (le)) > 1e3 # comment name_in_comment`,
			query{selectors: []selector{{"x_bucket", nil}}, grouping: []string{"le"}}},
		{`up{job="cgw-dataplane"} == bool 0 or absent(up{job='cgw-dataplane'})`,
			query{selectors: []selector{{"up", []matcher{{"job", "=", "cgw-dataplane"}}}, {"up", []matcher{{"job", "=", "cgw-dataplane"}}}}}},
	} {
		got, err := parsePromQL(c.expr)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.expr, got, c.want)
		}
	}
	for _, bad := range []string{`rat(x[5m])`, `{__name__="x"}`, `x{a=b}`, `x{a="b}`, `sum by x`, `x[5m`} {
		if q, err := parsePromQL(bad); err == nil {
			t.Errorf("%s: accepted (%+v)", bad, q)
		}
	}
}
