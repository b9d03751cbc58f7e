package data

import (
	netmail "net/mail"
	"slices"
	"strings"
)

// UnknownSenderDomain is the sender domain of an e-mail whose From header is missing or
// names no address: all such e-mails form one cluster of their own.
const UnknownSenderDomain = "(unknown)"

// SenderDomain returns the domain of the sender of a raw RFC 5322 e-mail (an mbox "From "
// separator line before the headers is skipped): the part after the last @ of the From
// header's address, lower-cased, without a trailing dot. The address is what net/mail
// parses; when the header is malformed (it often is in spam) and net/mail refuses it, the
// first word@domain of the header's value. A text without a header block, a From header or
// an address in it has UnknownSenderDomain.
func SenderDomain(text string) string {
	if rest, ok := strings.CutPrefix(text, "From "); ok {
		// The mbox separator "From sender date": the message starts on the next line.
		_, text, _ = strings.Cut(rest, "\n")
	}
	from := ""
	if m, err := netmail.ReadMessage(strings.NewReader(text)); err == nil {
		from = m.Header.Get("From")
	} else {
		from = rawHeader(text, "From")
	}
	if from == "" {
		return UnknownSenderDomain
	}
	addr := ""
	if a, err := netmail.ParseAddress(from); err == nil {
		addr = a.Address
	} else {
		addr = firstAddress(from)
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return UnknownSenderDomain
	}
	domain := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(addr[at+1:])), ".")
	if domain == "" {
		return UnknownSenderDomain
	}
	return domain
}

// rawHeader returns the value of the first header called name in the header block of a
// message (up to its first blank line), unfolded, for messages whose other header lines
// net/mail rejects.
func rawHeader(text, name string) string {
	var value []string
	in := false
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			return strings.Join(value, " ")
		case in && (line[0] == ' ' || line[0] == '\t'):
			value = append(value, strings.TrimSpace(line))
		case in:
			return strings.Join(value, " ")
		default:
			k, v, ok := strings.Cut(line, ":")
			if ok && strings.EqualFold(strings.TrimSpace(k), name) {
				in, value = true, []string{strings.TrimSpace(v)}
			}
		}
	}
	return strings.Join(value, " ")
}

// firstAddress returns the first word of s that holds an @ (angle brackets, quotes and
// trailing punctuation removed), or "".
func firstAddress(s string) string {
	for _, w := range strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '<' || r == '>' || r == '"' || r == ',' || r == '(' || r == ')' || r == ';'
	}) {
		if strings.Contains(w, "@") {
			return w
		}
	}
	return ""
}

// senderDomains returns the sender domain of every text as ids into names, the distinct
// domains in sorted order; nil, nil when no text has a sender domain (not e-mails).
func senderDomains(texts []string) (ids []int32, names []string) {
	domains := make([]string, len(texts))
	known := false
	for k, t := range texts {
		domains[k] = SenderDomain(t)
		known = known || domains[k] != UnknownSenderDomain
	}
	if !known {
		return nil, nil
	}
	names = slices.Clone(domains)
	slices.Sort(names)
	names = slices.Compact(names)
	return groupIDs(domains, seq(len(domains)), names)
}

// seq returns 0, 1, …, n−1.
func seq(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}
