package deploy

import (
	"strings"
	"testing"
)

// TestHelmLint runs helm lint --strict on the chart with its default values and with every
// variant of chartVariants (lint also checks the values against values.schema.json).
func TestHelmLint(t *testing.T) {
	for _, v := range chartVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			out, err := helm(t, append([]string{"lint", "--strict", chartDir}, valuesArgs(t, v.values)...)...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
				t.Fatalf("helm lint:\n%s", out)
			}
		})
	}
}

// TestChartRefusesBadValues: values the chart cannot turn into a working deployment fail
// at helm template (and so at install), naming the value.
func TestChartRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"clients_without_data", map[string]any{"clients": map[string]any{"enabled": true}}, "clients.data.volume is required"},
		{"unknown_key", map[string]any{"server": map[string]any{"tls": map[string]any{"secret": "x"}}}, "secret"},
		{"log_format", map[string]any{"logging": map[string]any{"format": "yaml"}}, "format"},
		{"certificate_mode", map[string]any{"clients": map[string]any{"certificates": map[string]any{"mode": "each"}}}, "mode"},
		{"config_sets_a_flag", map[string]any{"server": map[string]any{"config": map[string]any{"listen": ":1", "federation": map[string]any{"rounds": 1}}}}, "config"},
		{"zero_clients", map[string]any{"clients": map[string]any{"count": 0}}, "count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := helm(t, templateArgs(t, tc.values)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("helm template: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}
