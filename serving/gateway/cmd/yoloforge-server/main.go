// Command yoloforge-server serves a yoloforge bundle's model over HTTP (serving/openapi.yaml).
//
//	yoloforge-server [serve] [-config config.yaml]    run the server
//	yoloforge-server keys create -name NAME            make an API key (stored hashed in Postgres), print it once
//	yoloforge-server keys revoke -name NAME            revoke a name's keys
//	yoloforge-server healthcheck [-url URL]            exit 0 when /healthz answers (the container health check)
//	yoloforge-server schema                            print the SQL schema
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/api"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/auth"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/batcher"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/cache"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/config"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/engine"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/gpu"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/store"
)

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args)
	case "keys":
		err = keys(args)
	case "healthcheck":
		err = healthcheck(args)
	case "schema":
		fmt.Print(store.Schema())
	default:
		err = fmt.Errorf("unknown command %q: serve, keys create|revoke, healthcheck or schema", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "yoloforge-server:", err)
		os.Exit(1)
	}
}

func defaultConfigPath() string {
	if p := os.Getenv("YOLOFORGE_CONFIG"); p != "" {
		return p
	}
	return "config.yaml"
}

func loadConfig(path string) (config.Config, error) {
	cfg, err := config.Load(path, os.LookupEnv)
	if err != nil {
		return cfg, fmt.Errorf("config %s:\n%w", path, err)
	}
	return cfg, nil
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := fs.String("config", defaultConfigPath(), "config file (YOLOFORGE_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	keys := auth.NewKeys(cfg.Auth.Keys)
	var answers cache.Cache = cache.Disabled{}
	if cfg.Redis.Enabled {
		r := cache.NewRedis(cfg.Redis.Addr, cfg.Redis.TTL.Duration, cfg.Redis.Timeout.Duration)
		r.OnError = func(op string, err error) {
			log.Warn("redis unavailable; serving without the cache", "op", op, "error", err)
		}
		defer r.Close()
		answers = r
	}
	var db *store.Store
	var logger api.Logger
	if cfg.Postgres.Enabled {
		db, err = store.Open(ctx, cfg.Postgres.DSN, store.Options{Batch: cfg.Postgres.LogBatch,
			Interval: cfg.Postgres.LogInterval.Duration, Buffer: cfg.Postgres.LogBuffer,
			ConnectTimeout: cfg.Postgres.ConnectTimout.Duration}, log)
		if err != nil {
			return err
		}
		defer db.Close()
		logger = db
	}

	deps := &dependencies{states: map[string]string{"cache": "disabled", "database": "disabled"}}
	info := api.ModelInfo{Name: cfg.Model.Name, Version: cfg.Model.Version, Task: cfg.Model.Task,
		Names: cfg.Model.Names, Imgsz: cfg.Model.Imgsz, Engine: api.EngineInfo{Backend: "onnxruntime",
			Precision: cfg.Engine.Precision, Batch: maxBatch(cfg.Model.Files, cfg.Batcher.MaxBatchSize),
			Device: device(cfg.Engine), MaxBatchSize: cfg.Batcher.MaxBatchSize,
			BatchWaitMS: float64(cfg.Batcher.BatchWait.Microseconds()) / 1000}}
	dropped := func() float64 {
		if db == nil {
			return 0
		}
		return float64(db.Dropped())
	}
	srv := api.New(api.Options{Info: info, MaxBody: int64(cfg.Limits.MaxBodyMB * (1 << 20)),
		RequestTimeout: cfg.Limits.RequestTimeout.Duration, RetryAfter: cfg.Limits.RetryAfterS,
		AuthRequired: cfg.Auth.Required, Batcher: batcher.Options{MaxBatch: cfg.Batcher.MaxBatchSize,
			MaxWait: cfg.Batcher.BatchWait.Duration, MaxQueue: cfg.Batcher.MaxQueue, Workers: cfg.Batcher.Workers}},
		keys, answers, logger, log, deps.get, dropped)

	bg, cancelBG := context.WithCancel(context.Background())
	defer cancelBG()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // dependency states for /readyz and the metrics
		defer wg.Done()
		for {
			deps.check(bg, answers, db, srv.Metrics())
			select {
			case <-bg.Done():
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
	if db != nil {
		wg.Add(1)
		go func() { // migrations (retried while Postgres is down), then the stored keys, refreshed
			defer wg.Done()
			db.KeepMigrating(bg, 3*time.Second)
			for {
				if hashes, err := db.KeyHashes(bg); err == nil {
					keys.Set(hashes)
				}
				select {
				case <-bg.Done():
					return
				case <-time.After(cfg.Auth.Refresh.Duration):
				}
			}
		}()
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	httpServer := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: cfg.Limits.RequestTimeout.Duration, WriteTimeout: cfg.Limits.RequestTimeout.Duration + 5*time.Second,
		IdleTimeout: 120 * time.Second}
	served := make(chan error, 1)
	go func() { served <- httpServer.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "model", cfg.Model.Name, "version", cfg.Model.Version,
		"provider", cfg.Engine.Provider, "auth", cfg.Auth.Required, "keys_from_env", len(cfg.Auth.Keys))

	if cfg.Engine.Provider != "cpu" { // GPU memory and utilisation beside the server's own series
		if gpus, err := gpu.Open(); err != nil {
			log.Warn("no GPU metrics", "err", err)
		} else {
			defer gpus.Close()
			if err := srv.Register(gpus); err != nil {
				log.Warn("no GPU metrics", "err", err)
			}
		}
	}

	var eng engine.Engine
	loaded := make(chan error, 1)
	go func() {
		started := time.Now()
		e, err := engine.Open(engine.Config{Library: cfg.ORTLibrary, Models: cfg.Model.Files, Imgsz: cfg.Model.Imgsz,
			Provider: cfg.Engine.Provider, Threads: cfg.Engine.Threads, DeviceID: cfg.Engine.DeviceID,
			FP16: cfg.Engine.FP16, Spin: cfg.Engine.Spin, CacheDir: cfg.Engine.CacheDir})
		if err != nil {
			srv.Failed()
			loaded <- err
			return
		}
		eng = e
		srv.Attach(e)
		log.Info("model loaded", "seconds", time.Since(started).Seconds())
		loaded <- nil
	}()

	var failure error
	select {
	case err := <-loaded:
		if err != nil {
			failure = fmt.Errorf("loading the model: %w", err)
			break
		}
		select {
		case <-ctx.Done():
		case err := <-served:
			failure = err
		}
	case <-ctx.Done():
	case err := <-served:
		failure = err
	}
	log.Info("shutting down", "timeout", cfg.Shutdown.Duration.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.Duration)
	defer cancel()
	if err := httpServer.Shutdown(shutdownCtx); err != nil {
		log.Warn("requests still running at the shutdown timeout", "error", err)
	}
	srv.Close()
	if eng != nil {
		eng.Close()
	}
	cancelBG()
	wg.Wait()
	if failure != nil && !errors.Is(failure, http.ErrServerClosed) {
		return failure
	}
	log.Info("stopped")
	return nil
}

type dependencies struct {
	mu     sync.RWMutex
	states map[string]string
}

func (d *dependencies) get() map[string]string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make(map[string]string, len(d.states))
	for k, v := range d.states {
		out[k] = v
	}
	return out
}

func (d *dependencies) check(ctx context.Context, c cache.Cache, db *store.Store, m *api.Metrics) {
	states := map[string]string{"cache": c.State(), "database": "disabled"}
	if db != nil {
		states["database"] = db.State(ctx)
	}
	for name, state := range states {
		up := 0.0
		if state == "up" {
			up = 1
		}
		m.DepUp.WithLabelValues(name).Set(up)
	}
	d.mu.Lock()
	d.states = states
	d.mu.Unlock()
}

func maxBatch(files map[int]string, fallback int) int {
	best := 0
	for b := range files {
		best = max(best, b)
	}
	if best == 0 {
		return fallback
	}
	return best
}

func device(e config.Engine) string {
	if e.Provider == "cpu" {
		return "cpu"
	}
	return fmt.Sprintf("cuda:%d", e.DeviceID)
}

func keys(args []string) error {
	if len(args) == 0 || (args[0] != "create" && args[0] != "revoke") {
		return errors.New("usage: yoloforge-server keys create|revoke -name NAME [-config config.yaml]")
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	path := fs.String("config", defaultConfigPath(), "config file (YOLOFORGE_CONFIG)")
	name := fs.String("name", "", "who the key is for (required)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("-name is required (who or what the key is for)")
	}
	cfg, err := config.Load(*path, os.LookupEnv)
	if err != nil && cfg.Postgres.DSN == "" {
		return err
	}
	if !cfg.Postgres.Enabled {
		return fmt.Errorf("%w: keys live in Postgres; without it, set YOLOFORGE_API_KEYS", store.ErrDisabled)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	db, err := store.Open(ctx, cfg.Postgres.DSN, store.Options{Batch: 1, Interval: time.Second, Buffer: 1,
		ConnectTimeout: cfg.Postgres.ConnectTimout.Duration}, newLogger("warn"))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return fmt.Errorf("%w (is Postgres running at %s?)", err, cfg.Postgres.DSN)
	}
	if args[0] == "revoke" {
		n, err := db.RevokeKey(ctx, *name)
		if err != nil {
			return err
		}
		fmt.Printf("revoked %d key(s) named %q (servers drop them within auth.refresh)\n", n, *name)
		return nil
	}
	key, err := auth.NewKey()
	if err != nil {
		return err
	}
	if err := db.CreateKey(ctx, *name, auth.Hash(key)); err != nil {
		return err
	}
	fmt.Println(key)
	fmt.Fprintf(os.Stderr, "API key for %q created; it is shown only now (Postgres keeps its hash). Use it as: "+
		"Authorization: Bearer <key>\n", *name)
	return nil
}

func healthcheck(args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080/healthz", "health URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	client := http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(*url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", *url, resp.StatusCode)
	}
	return nil
}
