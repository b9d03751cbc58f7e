package server

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// SQLiteStore is the durable Store of `confide server --state-dir DIR`: an embedded SQLite
// database (modernc.org/sqlite, pure Go) in DIR/state.db, in WAL mode with synchronous =
// FULL, so Append returns only once its records are committed to disk. Load folds what it
// holds into the State a coordinator resumes from (Options.Resume). Model parameters are
// stored once per distinct vector (a failed round repeats the previous one) and only the
// last KeepCheckpoints rounds and the best one (highest central accuracy) keep theirs.
//
// The schema, readable with the sqlite3 shell (`sqlite3 DIR/state.db .schema`):
//
//	meta        key/value: schema version, boots (how many times the server started)
//	clients     id, committee_eligible                 one row per registered client
//	committees  session, formed_round, members (JSON: members[i] holds member id i+1),
//	            holders (JSON member ids that confirmed their shares), public_key
//	key_setup   session, stage, member, client, message  accepted key-setup messages
//	blobs       sha256, data                            parameter vectors (float64, LE)
//	rounds      round, failed, reason, metrics (JSON, with the central evaluation as
//	            central_*), contributors (JSON), params
//	            (blobs.sha256 or NULL once pruned), strategy_state, sampler_state
//	privacy     client, round, epsilon, delta, reported   record-level ε: the server's
//	            account when it issued a fit task (reported 0), a client's report (1), or
//	            the account after taking back the charge of a task the client refused (2)
//	user_level  round, record (JSON UserLevelPrivacyRecord)
type SQLiteStore struct {
	db   *sql.DB
	path string
	// KeepCheckpoints is how many of the latest rounds keep their parameters (default 5);
	// the best round's are kept too.
	KeepCheckpoints int
}

var _ Store = (*SQLiteStore)(nil)

const sqliteSchemaVersion = "1"

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clients (id TEXT PRIMARY KEY, committee_eligible INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS committees (session BLOB PRIMARY KEY, formed_round INTEGER NOT NULL, members TEXT NOT NULL, holders TEXT NOT NULL, public_key BLOB NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS key_setup (id INTEGER PRIMARY KEY AUTOINCREMENT, session BLOB NOT NULL, stage INTEGER NOT NULL, member INTEGER NOT NULL, client TEXT NOT NULL, message BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (sha256 BLOB PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (round INTEGER PRIMARY KEY, failed INTEGER NOT NULL, reason TEXT NOT NULL, metrics TEXT NOT NULL, contributors TEXT NOT NULL, params BLOB REFERENCES blobs(sha256), strategy_state BLOB, sampler_state BLOB);
CREATE TABLE IF NOT EXISTS privacy (client TEXT NOT NULL, round INTEGER NOT NULL, epsilon REAL NOT NULL, delta REAL NOT NULL, reported INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS privacy_client ON privacy (client, reported);
CREATE TABLE IF NOT EXISTS user_level (round INTEGER PRIMARY KEY, record TEXT NOT NULL);
`

// OpenSQLiteStore opens (creating if needed) the store in dir, a directory of its own
// (mode 0700: it holds the federation's state), and counts this start as a boot.
func OpenSQLiteStore(dir string) (*SQLiteStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("server: state directory: %w", err)
	}
	path := filepath.Join(dir, "state.db")
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("server: state store %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer; SQLite serialises anyway
	s := &SQLiteStore{db: db, path: path, KeepCheckpoints: 5}
	if err := s.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("server: state store %s: %w", path, err)
	}
	return s, nil
}

func (s *SQLiteStore) init() error {
	if _, err := s.db.Exec(sqliteSchema); err != nil {
		return err
	}
	var v string
	switch err := s.db.QueryRow(`SELECT value FROM meta WHERE key = 'schema'`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := s.db.Exec(`INSERT INTO meta (key, value) VALUES ('schema', ?), ('boots', '0')`, sqliteSchemaVersion); err != nil {
			return err
		}
	case err != nil:
		return err
	case v != sqliteSchemaVersion:
		return fmt.Errorf("schema version %s, this server reads %s: use the server version that wrote it", v, sqliteSchemaVersion)
	}
	_, err := s.db.Exec(`UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'boots'`)
	return err
}

// Path is the database file.
func (s *SQLiteStore) Path() string { return s.path }

// Close closes the database.
func (s *SQLiteStore) Close() error { return s.db.Close() }

// Append commits the records in one transaction.
func (s *SQLiteStore) Append(records []Record) error {
	if len(records) == 0 {
		return nil
	}
	tx, err := s.db.Begin()
	if err != nil {
		return fmt.Errorf("server: state store: %w", err)
	}
	defer tx.Rollback()
	pruned := false
	for _, rec := range records {
		if err := s.appendOne(tx, rec); err != nil {
			return fmt.Errorf("server: state store: %T: %w", rec, err)
		}
		_, isRound := rec.(RoundRecord)
		pruned = pruned || isRound
	}
	if pruned {
		if err := s.prune(tx); err != nil {
			return fmt.Errorf("server: state store: pruning checkpoints: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("server: state store: commit: %w", err)
	}
	return nil
}

func (s *SQLiteStore) appendOne(tx *sql.Tx, rec Record) error {
	switch r := rec.(type) {
	case ClientRecord:
		_, err := tx.Exec(`INSERT INTO clients (id, committee_eligible) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET committee_eligible = excluded.committee_eligible`, r.ClientID, r.CommitteeEligible)
		return err
	case KeySetupRecord:
		_, err := tx.Exec(`INSERT INTO key_setup (session, stage, member, client, message) VALUES (?, ?, ?, ?, ?)`, r.Session[:], int(r.Stage), int(r.Member), r.Client, r.Message)
		return err
	case CommitteeRecord:
		members, _ := json.Marshal(r.Members)
		holders, _ := json.Marshal(r.Holders)
		_, err := tx.Exec(`INSERT INTO committees (session, formed_round, members, holders, public_key, seq) VALUES (?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM committees))
			ON CONFLICT (session) DO UPDATE SET formed_round = excluded.formed_round, members = excluded.members, holders = excluded.holders, public_key = excluded.public_key`,
			r.Session[:], r.FormedRound, string(members), string(holders), r.PublicKey)
		return err
	case RoundRecord:
		metrics, err := json.Marshal(finiteMetrics(r.Metrics))
		if err != nil {
			return err
		}
		contributors, _ := json.Marshal(r.Contributors)
		var key []byte
		if r.Params != nil {
			data := encodeParams(r.Params)
			sum := sha256.Sum256(data)
			key = sum[:]
			if _, err := tx.Exec(`INSERT OR IGNORE INTO blobs (sha256, data) VALUES (?, ?)`, key, data); err != nil {
				return err
			}
		}
		_, err = tx.Exec(`INSERT OR REPLACE INTO rounds (round, failed, reason, metrics, contributors, params, strategy_state, sampler_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			int64(r.Round), r.Failed, r.Reason, string(metrics), string(contributors), key, r.StrategyState, r.SamplerState)
		return err
	case EvaluationRecord:
		// The round's central evaluation joins its metrics as central_<metric> (the
		// initial model's, round 0, has no round row).
		patch := map[string]float64{}
		for k, v := range finiteMetrics(r.Metrics) {
			patch["central_"+k] = v
		}
		b, err := json.Marshal(patch)
		if err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE rounds SET metrics = json_patch(metrics, ?) WHERE round = ?`, string(b), int64(r.Round))
		return err
	case PrivacyRecord:
		kind := privacyIssued
		switch {
		case r.Reported:
			kind = privacyReported
		case r.Withdrawn:
			kind = privacyWithdrawn
		}
		_, err := tx.Exec(`INSERT INTO privacy (client, round, epsilon, delta, reported) VALUES (?, ?, ?, ?, ?)`, r.ClientID, int64(r.Round), r.Epsilon, r.Delta, kind)
		return err
	case UserLevelPrivacyRecord:
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = tx.Exec(`INSERT OR REPLACE INTO user_level (round, record) VALUES (?, ?)`, int64(r.Round), string(b))
		return err
	case StatisticsRecord:
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = tx.Exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('dataset_statistics', ?)`, string(b))
		return err
	}
	return fmt.Errorf("unknown record type")
}

// finiteMetrics drops non-finite values, which JSON cannot hold.
func finiteMetrics(m map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			out[k] = v
		}
	}
	return out
}

// prune drops the parameters of rounds older than the last KeepCheckpoints, except the
// best round's and the latest round's, and the blobs nothing references any more.
func (s *SQLiteStore) prune(tx *sql.Tx) error {
	keep := max(s.KeepCheckpoints, 1)
	_, err := tx.Exec(`UPDATE rounds SET params = NULL WHERE params IS NOT NULL
		AND round NOT IN (SELECT round FROM rounds WHERE params IS NOT NULL ORDER BY round DESC LIMIT ?)
		AND round NOT IN (SELECT round FROM rounds WHERE failed = 0 AND json_extract(metrics, '$.central_accuracy') IS NOT NULL
			ORDER BY json_extract(metrics, '$.central_accuracy') DESC, round DESC LIMIT 1)`, keep)
	if err != nil {
		return err
	}
	_, err = tx.Exec(`DELETE FROM blobs WHERE sha256 NOT IN (SELECT params FROM rounds WHERE params IS NOT NULL)`)
	return err
}

func encodeParams(p []float64) []byte {
	b := make([]byte, 8*len(p))
	for i, v := range p {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
	}
	return b
}

func decodeParams(b []byte) ([]float64, error) {
	if len(b)%8 != 0 {
		return nil, fmt.Errorf("parameter blob of %d bytes is not a float64 vector", len(b))
	}
	p := make([]float64, len(b)/8)
	for i := range p {
		p[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return p, nil
}

// State is a federation's durable state, folded from its records: what a coordinator
// resumes from (Options.Resume).
type State struct {
	// Boots counts the server's starts with this state, this one included.
	Boots   int
	Clients []ClientRecord
	// Committee is the latest key committee that finished its setup (nil: none).
	Committee *CommitteeRecord
	// Round is the last round that finished (successfully or not); Params the global
	// model after it, StrategyState and SamplerState the strategy's and the sampling
	// generator's state then.
	Round         uint64
	Params        []float64
	StrategyState []byte
	SamplerState  []byte
	// Rounds are the finished rounds' records, parameters left out.
	Rounds []RoundRecord
	// FitTasks counts, per client, the rounds the server issued it a DP-SGD fit task in (its
	// record-level account), FitLastRound the latest of them, FitWithdrawn the rounds whose
	// charge it took back (the client refused the task); Reported is the largest ε each
	// client reported.
	FitTasks     map[string]int
	FitLastRound map[string]uint64
	FitWithdrawn map[string]int
	Reported     map[string]float64
	// UserLevel is the latest user-level privacy record (nil: none).
	UserLevel *UserLevelPrivacyRecord
	// Statistics is the dataset's estimated statistics (nil: none estimated).
	Statistics *StatisticsRecord
}

// The privacy table's reported column: what a row's ε is.
const (
	privacyIssued    = 0 // the server's account when it issued a fit task
	privacyReported  = 1 // a client's report of its ledger
	privacyWithdrawn = 2 // the server's account after taking back a refused task's charge
)

// Load reads the state. A fresh store gives a State with Round 0 and nil Params.
func (s *SQLiteStore) Load() (*State, error) {
	st := &State{FitTasks: map[string]int{}, FitLastRound: map[string]uint64{}, FitWithdrawn: map[string]int{}, Reported: map[string]float64{}}
	fail := func(what string, err error) (*State, error) {
		return nil, fmt.Errorf("server: state store %s: reading %s: %w", s.path, what, err)
	}
	var boots string
	if err := s.db.QueryRow(`SELECT value FROM meta WHERE key = 'boots'`).Scan(&boots); err != nil {
		return fail("meta", err)
	}
	fmt.Sscan(boots, &st.Boots)
	var stats string
	switch err := s.db.QueryRow(`SELECT value FROM meta WHERE key = 'dataset_statistics'`).Scan(&stats); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fail("dataset statistics", err)
	default:
		st.Statistics = &StatisticsRecord{}
		if err := json.Unmarshal([]byte(stats), st.Statistics); err != nil {
			return fail("dataset statistics", err)
		}
	}
	rows, err := s.db.Query(`SELECT id, committee_eligible FROM clients ORDER BY id`)
	if err != nil {
		return fail("clients", err)
	}
	for rows.Next() {
		var c ClientRecord
		if err := rows.Scan(&c.ClientID, &c.CommitteeEligible); err != nil {
			rows.Close()
			return fail("clients", err)
		}
		st.Clients = append(st.Clients, c)
	}
	rows.Close()
	var (
		session          []byte
		members, holders string
		com              CommitteeRecord
	)
	switch err := s.db.QueryRow(`SELECT session, formed_round, members, holders, public_key FROM committees ORDER BY seq DESC LIMIT 1`).Scan(&session, &com.FormedRound, &members, &holders, &com.PublicKey); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fail("committees", err)
	default:
		if len(session) != len(com.Session) || json.Unmarshal([]byte(members), &com.Members) != nil || json.Unmarshal([]byte(holders), &com.Holders) != nil {
			return fail("committees", errors.New("malformed committee row"))
		}
		copy(com.Session[:], session)
		st.Committee = &com
	}
	rows, err = s.db.Query(`SELECT round, failed, reason, metrics, contributors, params, strategy_state, sampler_state FROM rounds ORDER BY round`)
	if err != nil {
		return fail("rounds", err)
	}
	var lastParams []byte
	for rows.Next() {
		var (
			rr                    RoundRecord
			metrics, contributors string
			params                []byte
		)
		if err := rows.Scan(&rr.Round, &rr.Failed, &rr.Reason, &metrics, &contributors, &params, &rr.StrategyState, &rr.SamplerState); err != nil {
			rows.Close()
			return fail("rounds", err)
		}
		if json.Unmarshal([]byte(metrics), &rr.Metrics) != nil || json.Unmarshal([]byte(contributors), &rr.Contributors) != nil {
			rows.Close()
			return fail("rounds", fmt.Errorf("malformed row of round %d", rr.Round))
		}
		rr.Privacy = privacyOf(rr.Metrics)
		st.Rounds = append(st.Rounds, rr)
		st.Round = rr.Round
		if params != nil {
			lastParams = params
		}
		if rr.StrategyState != nil {
			st.StrategyState = rr.StrategyState
		}
		if rr.SamplerState != nil {
			st.SamplerState = rr.SamplerState
		}
	}
	rows.Close()
	if n := len(st.Rounds); n > 0 && lastParams == nil {
		return fail("rounds", fmt.Errorf("no round up to %d has parameters: the database is corrupted; restore it from a backup", st.Rounds[n-1].Round))
	}
	if lastParams != nil {
		var data []byte
		if err := s.db.QueryRow(`SELECT data FROM blobs WHERE sha256 = ?`, lastParams).Scan(&data); err != nil {
			return fail("the latest parameters", err)
		}
		if got := sha256.Sum256(data); !bytes.Equal(got[:], lastParams) {
			return fail("the latest parameters", errors.New("checksum mismatch: the database is corrupted; restore it from a backup"))
		}
		if st.Params, err = decodeParams(data); err != nil {
			return fail("the latest parameters", err)
		}
	}
	rows, err = s.db.Query(`SELECT client, reported, COUNT(DISTINCT round), MAX(round), MAX(epsilon) FROM privacy GROUP BY client, reported`)
	if err != nil {
		return fail("privacy", err)
	}
	for rows.Next() {
		var (
			client string
			kind   int
			n      int
			last   uint64
			eps    float64
		)
		if err := rows.Scan(&client, &kind, &n, &last, &eps); err != nil {
			rows.Close()
			return fail("privacy", err)
		}
		switch kind {
		case privacyReported:
			st.Reported[client] = eps
		case privacyWithdrawn:
			st.FitWithdrawn[client] = n
		default:
			st.FitTasks[client], st.FitLastRound[client] = n, last
		}
	}
	rows.Close()
	var ul string
	switch err := s.db.QueryRow(`SELECT record FROM user_level ORDER BY round DESC LIMIT 1`).Scan(&ul); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fail("user_level", err)
	default:
		var rec UserLevelPrivacyRecord
		if err := json.Unmarshal([]byte(ul), &rec); err != nil {
			return fail("user_level", err)
		}
		st.UserLevel = &rec
	}
	return st, nil
}
