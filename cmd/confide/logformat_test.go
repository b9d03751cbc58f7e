package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// runLogging runs the CLI with an extra subcommand "emit" that logs what the server and
// client log at a round's end (the round, a client and a task id), and returns stderr.
func runLogging(t *testing.T, args ...string) (string, error) {
	t.Helper()
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	root := newRootCmd()
	root.AddCommand(&cobra.Command{Use: "emit", RunE: func(*cobra.Command, []string) error {
		slog.Info("round finished", "round", uint64(3), "contributors", 2)
		slog.Warn("result refused", "client", "client-7", "task", "t-42", "err", errors.New("late"))
		return nil
	}})
	var stderr bytes.Buffer
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&stderr)
	root.SetArgs(args)
	err := root.Execute()
	return stderr.String(), err
}

func TestLogFormatJSONCarriesTheIDs(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  string
	}{
		{name: "flag", args: []string{"--log-format", "json"}},
		{name: "environment", env: "json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("CONFIDE_LOG_FORMAT", tc.env)
			}
			out, err := runLogging(t, append([]string{"emit", "--log-level", "info"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			var records []map[string]any
			sc := bufio.NewScanner(strings.NewReader(out))
			for sc.Scan() {
				var r map[string]any
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
					t.Fatalf("log line %q is not a JSON object: %v", sc.Text(), err)
				}
				records = append(records, r)
			}
			if len(records) != 2 {
				t.Fatalf("%d records, want 2:\n%s", len(records), out)
			}
			if r := records[0]; r["msg"] != "round finished" || r["level"] != "INFO" || r["round"] != 3.0 || r["time"] == nil {
				t.Errorf("first record %v, want msg, level INFO, round 3 and a time", r)
			}
			if r := records[1]; r["client"] != "client-7" || r["task"] != "t-42" || r["err"] != "late" || r["level"] != "WARN" {
				t.Errorf("second record %v, want client client-7, task t-42, err late at WARN", r)
			}
		})
	}
}

func TestLogFormatTextIsKeyValue(t *testing.T) {
	out, err := runLogging(t, "emit", "--log-level", "warn")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "round finished") {
		t.Errorf("an INFO record at --log-level warn:\n%s", out)
	}
	if !strings.Contains(out, `level=WARN msg="result refused" client=client-7 task=t-42 err=late`) {
		t.Errorf("text log %q lacks the key=value record", out)
	}
}

func TestBadLogAndOutputFlagsExit2(t *testing.T) {
	for _, tc := range []struct {
		flag, value, want string
	}{
		{"--log-format", "yaml", "must be text or json"},
		{"--log-format", "JSON", "must be text or json"},
		{"--log-level", "loud", "must be debug, info, warn or error"},
		{"--output", "xml", "must be text or json"},
	} {
		t.Run(strings.TrimPrefix(tc.flag, "--")+"="+tc.value, func(t *testing.T) {
			_, err := runLogging(t, "emit", tc.flag, tc.value)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), tc.flag) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want exit 2 naming %s and %q", err, tc.flag, tc.want)
			}
		})
	}
}

func TestReportErrorFollowsTheLogFormat(t *testing.T) {
	for _, tc := range []struct {
		format string
		check  func(t *testing.T, out string)
	}{
		{"text", func(t *testing.T, out string) {
			if out != "confide: boom\n" {
				t.Errorf("text report %q, want %q", out, "confide: boom\n")
			}
		}},
		{"json", func(t *testing.T, out string) {
			var r map[string]any
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("json report %q: %v", out, err)
			}
			if r["msg"] != "boom" || r["level"] != "ERROR" || r["exit_code"] != 2.0 {
				t.Errorf("json report %v, want msg boom, level ERROR, exit_code 2", r)
			}
		}},
		// An unknown format was itself the error: it is reported as text.
		{"yaml", func(t *testing.T, out string) {
			if !strings.HasPrefix(out, "confide: ") {
				t.Errorf("report %q, want text", out)
			}
		}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			var b bytes.Buffer
			(&globalOptions{logFormat: tc.format}).reportError(&b, errors.New("boom"), 2)
			tc.check(t, b.String())
		})
	}
}

// TestLongRunningCommandsTakeLogFormat: the commands an operator runs as services or long
// jobs all accept --log-format (it is a persistent flag of the root).
func TestLongRunningCommandsTakeLogFormat(t *testing.T) {
	root := newRootCmd()
	for _, path := range [][]string{{"server"}, {"client"}, {"sim"}, {"train"}, {"model", "serve"}} {
		cmd, _, err := root.Find(path)
		if err != nil || cmd.Name() != path[len(path)-1] {
			t.Fatalf("confide %s: not found (%v)", strings.Join(path, " "), err)
		}
		if cmd.InheritedFlags().Lookup("log-format") == nil {
			t.Errorf("confide %s has no --log-format", strings.Join(path, " "))
		}
	}
}

// TestNoticeFollowsTheLogFormat: what confide says on an interruption is a WARN record in the
// JSON log format, so a log collector reads every line of a stopped pod.
func TestNoticeFollowsTheLogFormat(t *testing.T) {
	var text, js bytes.Buffer
	(&globalOptions{logFormat: "text"}).notice(&text, "interrupted")
	(&globalOptions{logFormat: "json"}).notice(&js, "interrupted")
	if text.String() != "confide: interrupted\n" {
		t.Errorf("text notice %q", text.String())
	}
	var r map[string]any
	if err := json.Unmarshal(js.Bytes(), &r); err != nil || r["msg"] != "interrupted" || r["level"] != "WARN" {
		t.Errorf("json notice %q (%v), want a WARN record", js.String(), err)
	}
}
