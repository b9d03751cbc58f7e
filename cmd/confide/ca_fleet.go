package main

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/confide-fl/confide/internal/pki"
	"github.com/confide-fl/confide/server"
)

// fleetIssue is 'confide ca issue --count N': the client certificates of a fleet of
// virtual clients (confide client --virtual N --identity-dir DIR) in one call.
type fleetIssue struct {
	dir, pattern       string
	first, count, days int
	server             bool
}

// fleetIssueResult is the -o json object of a fleet's issuance.
type fleetIssueResult struct {
	Kind     string    `json:"kind"` // client
	Issued   int       `json:"issued"`
	First    string    `json:"first"`
	Last     string    `json:"last"`
	Dir      string    `json:"dir"`
	CACert   string    `json:"ca_cert"`
	NotAfter time.Time `json:"not_after"`
}

// checkIndexPattern checks a name pattern of a fleet: one %d for the client index, and
// nothing else for fmt to read.
func checkIndexPattern(flag, pattern string) error {
	if !indexPattern.MatchString(pattern) {
		return fmt.Errorf("%s %q: a pattern with one %%d for the client index (e.g. client-%%d, or site3-%%04d)", flag, pattern)
	}
	return nil
}

// indexPattern is a name with one decimal verb, %d or %0Nd, and no other %.
var indexPattern = regexp.MustCompile(`^[^%]*%(0[1-9][0-9]?)?d[^%]*$`)

// issueClientFleet issues the client certificates pattern(first)…pattern(first+count−1):
// every name is checked and must be new before the first one is written.
func issueClientFleet(g *globalOptions, w io.Writer, o fleetIssue) error {
	switch {
	case o.server:
		return &exitError{code: 2, err: errors.New("--count issues client certificates: issue the server's alone, without --count")}
	case o.count < 1:
		return &exitError{code: 2, err: fmt.Errorf("--count %d: issue at least 1 certificate", o.count)}
	case o.first < 0:
		return &exitError{code: 2, err: fmt.Errorf("--first %d: indices start at 0", o.first)}
	case o.days < 1:
		return &exitError{code: 2, err: fmt.Errorf("--days %d: a certificate must be valid for at least 1 day", o.days)}
	}
	if err := checkIndexPattern("--name", o.pattern); err != nil {
		return &exitError{code: 2, err: err}
	}
	names := make([]string, o.count)
	for i := range names {
		names[i] = fmt.Sprintf(o.pattern, o.first+i)
		if err := server.CheckClientName(names[i]); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--name %q gives %w", o.pattern, err)}
		}
		if err := refuseExisting(o.dir, names[i], "a certificate was already issued under this name; issue the rest with another --first, or delete both files to re-issue it"); err != nil {
			return err
		}
	}
	ca, err := loadCA(o.dir)
	if err != nil {
		return err
	}
	validity, now := time.Duration(o.days)*day, time.Now()
	res := fleetIssueResult{Kind: "client", Issued: o.count, First: names[0], Last: names[len(names)-1], Dir: o.dir, CACert: pki.CertFile(o.dir, "ca")}
	for _, name := range names {
		cred, err := ca.IssueClient(name, validity, now)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("%w (lower --days, or create a new CA)", err)}
		}
		if err := pki.WriteFiles(o.dir, name, cred); err != nil {
			return existsHint(err, "choose another --first")
		}
		res.NotAfter = cred.Cert.NotAfter
	}
	return g.emit(w, res, func(w io.Writer) {
		fmt.Fprintf(w, "issued the client certificates of %s…%s (%d) in %s, valid until %s\n", res.First, res.Last, res.Issued, res.Dir, res.NotAfter.Format(time.DateOnly))
		fmt.Fprintf(w, "  confide client --virtual %d --client-index %d --name %s --identity-dir %s --ca %s\n", o.count, o.first, o.pattern, o.dir, res.CACert)
	})
}
