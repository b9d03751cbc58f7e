package deploy

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/confide-fl/confide/server"
)

// promFunctions are the PromQL functions and keywords the dashboard may use; any other
// identifier followed by '(' or '{' or standing alone in an expression is taken as a metric.
var promFunctions = map[string]bool{"sum": true, "max": true, "min": true, "avg": true, "rate": true, "increase": true,
	"histogram_quantile": true, "by": true, "without": true, "on": true, "ignoring": true}

// TestGrafanaDashboardQueriesServerMetrics: grafana/confide.json is a dashboard whose every
// query names metrics the server exports (server/metrics.go, with the Go and process
// collectors it registers) and labels those metrics have.
func TestGrafanaDashboardQueriesServerMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("grafana", "confide.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID       string `json:"uid"`
		Title     string `json:"title"`
		Templates struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("grafana/confide.json: %v", err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Errorf("dashboard without uid or title")
	}
	exported := exportedMetrics(t)
	var exprs []string
	for _, v := range dash.Templates.List {
		if v.Definition != "" {
			exprs = append(exprs, v.Definition)
		}
	}
	queried := 0
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	seen := map[string]bool{}
	for _, e := range exprs {
		for _, ref := range metricRefs(e) {
			base, labels, ok := exportedFamily(exported, ref.name)
			if !ok {
				t.Errorf("%q queries %s, which the server does not export", e, ref.name)
				continue
			}
			seen[base] = true
			queried++
			for _, l := range ref.labels {
				if l != "instance" && l != "job" && l != "le" && !slices.Contains(labels, l) {
					t.Errorf("%q uses label %s, which %s does not have (labels %v)", e, l, base, labels)
				}
			}
		}
	}
	for name := range exported {
		if strings.HasPrefix(name, "confide_") && !seen[name] {
			t.Errorf("the dashboard shows no panel of %s", name)
		}
	}
	if queried == 0 {
		t.Fatal("no metric queried")
	}
}

// metricRef is a metric an expression reads and the labels it selects or groups by.
type metricRef struct {
	name   string
	labels []string
}

var (
	identPattern    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	selectorPattern = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	groupPattern    = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	labelPattern    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	quotedPattern   = regexp.MustCompile(`"[^"]*"|\[[^\]]*\]`)
	// Grafana's label_values(SERIES, LABEL) of a template variable.
	labelValuesPattern = regexp.MustCompile(`label_values\(\s*([^,]+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)`)
)

// metricRefs finds the metrics of a PromQL expression: identifiers that are not functions,
// keywords, numbers or label names; the labels of its selectors and by/without clauses go
// with every metric of the expression.
func metricRefs(expr string) []metricRef {
	var labels []string
	for _, m := range labelValuesPattern.FindAllStringSubmatch(expr, -1) {
		labels = append(labels, m[2])
	}
	expr = labelValuesPattern.ReplaceAllString(expr, "$1")
	for _, m := range selectorPattern.FindAllStringSubmatch(expr, -1) {
		for _, l := range labelPattern.FindAllStringSubmatch(m[2], -1) {
			labels = append(labels, l[1])
		}
	}
	for _, m := range groupPattern.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(m[1], ",") {
			labels = append(labels, strings.TrimSpace(l))
		}
	}
	stripped := quotedPattern.ReplaceAllString(selectorPattern.ReplaceAllString(expr, "$1"), "")
	stripped = groupPattern.ReplaceAllString(stripped, "")
	var refs []metricRef
	for _, id := range identPattern.FindAllString(stripped, -1) {
		if promFunctions[id] || slices.Contains(labels, id) {
			continue
		}
		if _, err := strconv.ParseFloat(id, 64); err == nil {
			continue
		}
		refs = append(refs, metricRef{name: id, labels: labels})
	}
	return refs
}

// exportedFamily maps a series name to its family (histograms export NAME_bucket, _sum and
// _count) and the family's labels.
func exportedFamily(exported map[string][]string, series string) (string, []string, bool) {
	if l, ok := exported[series]; ok {
		return series, l, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok {
			if l, ok := exported[base]; ok {
				return base, l, true
			}
		}
	}
	return "", nil, false
}

// exportedMetrics are the server's metric families and their labels: the confide_ ones as
// server/metrics.go declares them (a vector without observations is not gathered), the Go
// and process collectors' as a fresh registry gathers them.
func exportedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	families := map[string][]string{}
	mfs, err := server.NewMetrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		families[mf.GetName()] = nil
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join("..", "server", "metrics.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Each metric is a call New…(…Opts{Name: "…", …}[, []string{labels}]).
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		opts, ok := call.Args[0].(*ast.CompositeLit)
		if !ok {
			return true
		}
		var name string
		for _, el := range opts.Elts {
			if kv, ok := el.(*ast.KeyValueExpr); ok && isIdent(kv.Key, "Name") {
				if lit, ok := kv.Value.(*ast.BasicLit); ok {
					name, _ = strconv.Unquote(lit.Value)
				}
			}
		}
		if name == "" {
			return true
		}
		var labels []string
		if len(call.Args) > 1 {
			if lit, ok := call.Args[1].(*ast.CompositeLit); ok {
				for _, el := range lit.Elts {
					if s, ok := el.(*ast.BasicLit); ok {
						l, _ := strconv.Unquote(s.Value)
						labels = append(labels, l)
					}
				}
			}
		}
		families[name] = labels
		return true
	})
	if len(families) == 0 || !slices.ContainsFunc(slices.Collect(maps.Keys(families)), func(s string) bool { return strings.HasPrefix(s, "confide_") }) {
		t.Fatalf("no confide_ metrics found in server/metrics.go")
	}
	return families
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

func TestMetricRefs(t *testing.T) {
	for _, tc := range []struct {
		expr    string
		metrics []string
		labels  []string
	}{
		{`sum by (outcome) (increase(confide_rounds_total{instance=~"$instance"}[$__rate_interval]))`, []string{"confide_rounds_total"}, []string{"instance", "outcome"}},
		{`histogram_quantile(0.9, sum by (le) (rate(x_bucket{a="b", c!="d"}[5m])))`, []string{"x_bucket"}, []string{"a", "c", "le"}},
		{`label_values(confide_round, instance)`, []string{"confide_round"}, []string{"instance"}},
		{`sum(rate(a_sum[1m])) / sum(rate(a_count[1m]))`, []string{"a_sum", "a_count"}, nil},
		{`max(up)`, []string{"up"}, nil},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			refs := metricRefs(tc.expr)
			var names []string
			for _, r := range refs {
				names = append(names, r.name)
				if !slices.Equal(slices.Sorted(slices.Values(r.labels)), tc.labels) {
					t.Errorf("%s: labels %v, want %v", r.name, r.labels, tc.labels)
				}
			}
			if !slices.Equal(names, tc.metrics) {
				t.Errorf("metrics %v, want %v", names, tc.metrics)
			}
		})
	}
}
