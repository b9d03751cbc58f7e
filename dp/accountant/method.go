package accountant

import (
	"encoding/json"
	"fmt"
)

// Method selects how a history of steps is turned into (ε, δ).
type Method int

const (
	// MethodRDP composes Rényi DP order by order and converts to (ε, δ) (rdp.go,
	// convert.go). The default: cheap, exact arithmetic, a valid but loose bound.
	MethodRDP Method = iota
	// MethodPRV composes privacy loss random variables numerically by FFT (Gopi, Lee,
	// Wutschitz 2021; prv.go) and reports the upper end of an interval that contains the
	// exact ε of the composition: tighter than RDP, at a cost that grows with √steps.
	MethodPRV
)

func (m Method) String() string {
	switch m {
	case MethodRDP:
		return "rdp"
	case MethodPRV:
		return "prv"
	}
	return fmt.Sprintf("Method(%d)", int(m))
}

// Describe names the method with its source, for human-readable output.
func (m Method) Describe() string {
	switch m {
	case MethodRDP:
		return "RDP (Mironov, Talwar, Zhang 2019)"
	case MethodPRV:
		return "PRV (Gopi, Lee, Wutschitz 2021)"
	}
	return m.String()
}

// ParseMethod reads "rdp" or "prv"; the empty string is RDP.
func ParseMethod(s string) (Method, error) {
	switch s {
	case "rdp", "":
		return MethodRDP, nil
	case "prv":
		return MethodPRV, nil
	}
	return 0, fmt.Errorf("accountant: unknown accountant %q (want rdp or prv)", s)
}

// MarshalText writes the method's name, so configs and ledgers hold "rdp" or "prv".
func (m Method) MarshalText() ([]byte, error) {
	if m != MethodRDP && m != MethodPRV {
		return nil, fmt.Errorf("accountant: unknown accountant %d", int(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText reads a name written by MarshalText.
func (m *Method) UnmarshalText(b []byte) error {
	v, err := ParseMethod(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

var (
	_ json.Marshaler   = Method(0)
	_ json.Unmarshaler = (*Method)(nil)
)

// MarshalJSON writes the method's name as a JSON string.
func (m Method) MarshalJSON() ([]byte, error) {
	b, err := m.MarshalText()
	if err != nil {
		return nil, err
	}
	return json.Marshal(string(b))
}

// UnmarshalJSON reads a JSON string written by MarshalJSON.
func (m *Method) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("accountant: accountant must be a string (rdp or prv): %w", err)
	}
	return m.UnmarshalText([]byte(s))
}
