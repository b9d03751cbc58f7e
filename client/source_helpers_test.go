package client_test

import (
	"encoding/json"
	"strconv"

	"github.com/confide-fl/confide/data"
)

func fmtF(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }

func jsonOf(s *data.Schema) ([]byte, error) { return json.Marshal(s) }
