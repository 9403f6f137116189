// Package store keeps API keys and the inference log in PostgreSQL (pgx). Schema migrations run at start; the
// log is written asynchronously, in batches with COPY. Postgres is optional at run time: when it is down the
// server keeps serving, keeps the last known keys, and holds a bounded backlog of log rows to write later.
package store

import (
	"context"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Schema is every migration in order, as one SQL script (what the bundle ships as schema.sql).
func Schema() string {
	var b strings.Builder
	for _, m := range migrationFiles() {
		data, _ := migrations.ReadFile("migrations/" + m)
		fmt.Fprintf(&b, "-- %s\n%s\n", m, data)
	}
	return b.String()
}

func migrationFiles() []string {
	entries, _ := fs.ReadDir(migrations, "migrations")
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// Entry is one inference log row.
type Entry struct {
	At           time.Time
	KeyID        string
	ModelVersion string
	Status       int
	Cached       bool
	LatencyMS    float64
	ImageBytes   int
	Detections   int
	ErrorCode    string
}

// Store is a Postgres connection pool plus the log writer.
type Store struct {
	pool     *pgxpool.Pool
	log      *slog.Logger
	entries  chan Entry
	batch    int
	interval time.Duration
	buffer   int
	migrated atomic.Bool
	up       atomic.Bool
	dropped  atomic.Int64
	written  atomic.Int64
	done     chan struct{}
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

// Options size the log writer.
type Options struct {
	Batch          int
	Interval       time.Duration
	Buffer         int
	ConnectTimeout time.Duration
}

// Open makes the pool (connections are made when needed) and starts the migration and log goroutines.
func Open(ctx context.Context, dsn string, opts Options, log *slog.Logger) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres.dsn: %w", err)
	}
	cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres pool: %w", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	s := &Store{pool: pool, log: log, entries: make(chan Entry, max(opts.Buffer, 1)), batch: max(opts.Batch, 1),
		interval: opts.Interval, buffer: max(opts.Buffer, 1), done: make(chan struct{}), stop: stop}
	s.wg.Add(1)
	go s.writeLog(runCtx)
	return s, nil
}

// Migrate applies the migrations not yet applied, under an advisory lock so replicas starting together agree.
func (s *Store) Migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		s.up.Store(false)
		return fmt.Errorf("connecting to postgres: %w", err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7243817)`); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrations table: %w", err)
	}
	for _, name := range migrationFiles() {
		version, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s has no number", name)
		}
		var applied bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`,
			version).Scan(&applied); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
		if applied {
			continue
		}
		sql, _ := migrations.ReadFile("migrations/" + name)
		if _, err := tx.Exec(ctx, string(sql)); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, version,
			name); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
		s.log.Info("applied migration", "name", name)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	s.migrated.Store(true)
	s.up.Store(true)
	return nil
}

// KeepMigrating retries Migrate until it succeeds or ctx ends (Postgres may start after the server).
func (s *Store) KeepMigrating(ctx context.Context, every time.Duration) {
	for !s.migrated.Load() {
		if err := s.Migrate(ctx); err != nil {
			s.log.Warn("postgres unavailable; serving without it, retrying", "error", err, "retry_in", every)
		} else {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// CreateKey stores a new key's hash under a name.
func (s *Store) CreateKey(ctx context.Context, name string, hash []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (name, key_hash) VALUES ($1, $2)`, name, hash)
	if err != nil {
		return fmt.Errorf("storing key %q: %w", name, err)
	}
	return nil
}

// RevokeKey marks every key of that name revoked; it returns how many.
func (s *Store) RevokeKey(ctx context.Context, name string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL`, name)
	if err != nil {
		return 0, fmt.Errorf("revoking key %q: %w", name, err)
	}
	return tag.RowsAffected(), nil
}

// KeyHashes returns the hashes of the keys not revoked.
func (s *Store) KeyHashes(ctx context.Context) ([][]byte, error) {
	rows, err := s.pool.Query(ctx, `SELECT key_hash FROM api_keys WHERE revoked_at IS NULL`)
	if err != nil {
		s.up.Store(false)
		return nil, err
	}
	hashes, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, err
	}
	s.up.Store(true)
	return hashes, nil
}

// Log queues one row; when the backlog is full the row is dropped and counted, never waited for.
func (s *Store) Log(e Entry) {
	select {
	case s.entries <- e:
	default:
		s.dropped.Add(1)
	}
}

// Dropped and Written count log rows.
func (s *Store) Dropped() int64 { return s.dropped.Load() }

// Written counts rows committed to Postgres.
func (s *Store) Written() int64 { return s.written.Load() }

// State pings Postgres.
func (s *Store) State(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		s.up.Store(false)
		return "down"
	}
	s.up.Store(true)
	return "up"
}

func (s *Store) writeLog(ctx context.Context) {
	defer s.wg.Done()
	ticker := time.NewTicker(s.interval)
	defer ticker.Stop()
	var pending []Entry
	bound := func() { // the backlog is bounded: the oldest rows go first, and are counted
		if over := len(pending) - s.buffer; over > 0 {
			s.dropped.Add(int64(over))
			pending = pending[over:]
		}
	}
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if !s.migrated.Load() { // Postgres not reached since the start: the table may not exist yet
			bound()
			return
		}
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n, err := s.copy(fctx, pending)
		if err != nil {
			if s.up.Swap(false) {
				s.log.Warn("inference log not written; keeping a backlog", "rows", len(pending), "error", err)
			}
			bound()
			return
		}
		s.up.Store(true)
		s.written.Add(n)
		pending = pending[:0]
	}
	for {
		select {
		case e := <-s.entries:
			pending = append(pending, e)
			if len(pending) >= s.batch {
				flush()
			}
		case <-ticker.C:
			flush()
		case <-ctx.Done():
			for { // drain what is queued, then one last write
				select {
				case e := <-s.entries:
					pending = append(pending, e)
					continue
				default:
				}
				break
			}
			flush()
			// what the last write could not store is counted, so that written + dropped = rows logged
			s.dropped.Add(int64(len(pending)))
			s.log.Info("inference log closed", "written", s.written.Load(), "dropped", s.dropped.Load())
			return
		}
	}
}

func (s *Store) copy(ctx context.Context, rows []Entry) (int64, error) {
	return s.pool.CopyFrom(ctx, pgx.Identifier{"inference_log"},
		[]string{"at", "key_id", "model_version", "status", "cached", "latency_ms", "image_bytes", "detections", "error_code"},
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			e := rows[i]
			var code *string
			if e.ErrorCode != "" {
				code = &e.ErrorCode
			}
			return []any{e.At, e.KeyID, e.ModelVersion, e.Status, e.Cached, float32(e.LatencyMS), e.ImageBytes,
				e.Detections, code}, nil
		}))
}

// KeyID is how the log names a key: the first 12 hex digits of its hash.
func KeyID(hash []byte) string {
	if len(hash) == 0 {
		return ""
	}
	return hex.EncodeToString(hash)[:12]
}

// Close writes what is queued and closes the pool.
func (s *Store) Close() {
	s.stop()
	s.wg.Wait()
	s.pool.Close()
}

// ErrDisabled is returned by key commands when postgres.enabled is false.
var ErrDisabled = errors.New("postgres is disabled in the configuration")
