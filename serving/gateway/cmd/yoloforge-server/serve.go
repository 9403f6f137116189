package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/yoloforge/yoloforge/serving/gateway/internal/api"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/auth"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/batcher"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/cache"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/config"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/engine"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/gpu"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/store"
	"github.com/yoloforge/yoloforge/serving/gateway/internal/workers"
)

// serve runs the server until a signal, a failed model load or a failed listener: the HTTP server, the model
// load and the background loops run under one errgroup, so the first failure stops them all.
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
	if path := os.Getenv("YOLOFORGE_CPU_PROFILE"); path != "" { // where the server's CPU goes (go tool pprof)
		stopProfile, err := startCPUProfile(path)
		if err != nil {
			return err
		}
		defer stopProfile()
	}

	keys := auth.NewKeys(cfg.Auth.Keys)
	answers, closeCache := openCache(cfg.Redis, log)
	defer closeCache()
	var db *store.Store
	var logger api.Logger
	if cfg.Postgres.Enabled {
		db, err = store.Open(ctx, cfg.Postgres.DSN, store.Options{Batch: cfg.Postgres.LogBatch,
			Interval: cfg.Postgres.LogInterval.Duration, Buffer: cfg.Postgres.LogBuffer,
			ConnectTimeout: cfg.Postgres.ConnectTimeout.Duration}, log)
		if err != nil {
			return err
		}
		defer db.Close()
		logger = db
	}
	deps := &dependencies{states: map[string]string{"cache": "disabled", "database": "disabled"}}
	srv := api.New(serverOptions(cfg), api.Deps{Keys: keys, Cache: answers, Logger: logger, Log: log,
		Dependencies: deps.get, LogDropped: func() float64 {
			if db == nil {
				return 0
			}
			return float64(db.Dropped())
		}})
	if onGPU(cfg.Engine) { // GPU memory and utilisation beside the server's own series
		if gpus, err := gpu.Open(); err != nil {
			log.Warn("no GPU metrics", "err", err)
		} else {
			defer gpus.Close()
			if err := srv.Register(gpus); err != nil {
				log.Warn("no GPU metrics", "err", err)
			}
		}
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	httpServer := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: cfg.Limits.RequestTimeout.Duration, WriteTimeout: cfg.Limits.RequestTimeout.Duration + 5*time.Second,
		IdleTimeout: 120 * time.Second}
	log.Info("listening", "addr", ln.Addr().String(), "model", cfg.Model.Name, "version", cfg.Model.Version,
		"provider", cfg.Engine.Provider, "auth", cfg.Auth.Required, "keys_from_env", len(cfg.Auth.Keys))

	g, gctx := errgroup.WithContext(ctx)
	var eng *workers.Pool // set by the loader; read after g.Wait
	g.Go(func() error {
		err := httpServer.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	})
	g.Go(func() error { // the engine loads while /healthz already answers
		started := time.Now()
		type result struct {
			pool *workers.Pool
			err  error
		}
		done := make(chan result, 1)
		go func() {
			pool, err := openWorkers(cfg)
			done <- result{pool, err}
		}()
		select {
		case <-gctx.Done(): // stopped during a long load (a TensorRT build): the process exit ends it
			return nil
		case r := <-done:
			if r.err != nil {
				srv.Failed()
				return fmt.Errorf("loading the model: %w", r.err)
			}
			eng = r.pool
			srv.Attach(r.pool)
			log.Info("model loaded", "seconds", time.Since(started).Seconds(), "workers", r.pool.Size())
			return nil
		}
	})
	g.Go(func() error { // dependency states for /readyz and the metrics
		every(gctx, 2*time.Second, func() { deps.check(gctx, answers, db, srv.Metrics()) })
		return nil
	})
	if db != nil {
		g.Go(func() error { // migrations (retried while Postgres is down), then the stored keys, refreshed
			db.KeepMigrating(gctx, 3*time.Second)
			every(gctx, cfg.Auth.Refresh.Duration, func() {
				if hashes, err := db.KeyHashes(gctx); err == nil {
					keys.Set(hashes)
				}
			})
			return nil
		})
	}
	g.Go(func() error { // shutdown: on a signal or the first failure
		<-gctx.Done()
		log.Info("shutting down", "timeout", cfg.Shutdown.Duration.String())
		shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.Duration)
		defer cancel()
		if err := httpServer.Shutdown(shutdownCtx); err != nil {
			log.Warn("requests still running at the shutdown timeout", "error", err)
		}
		srv.Close()
		return nil
	})
	err = g.Wait()
	if eng != nil {
		eng.Close()
	}
	if err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// openWorkers opens the engine copies: engine.workers per device (each GPU of engine.devices, or the CPU). On a
// CPU, copies without a thread count share the cores out between them.
func openWorkers(cfg config.Config) (*workers.Pool, error) {
	devices := cfg.Engine.Devices
	if !onGPU(cfg.Engine) || len(devices) == 0 {
		devices = []int{cfg.Engine.DeviceID}
	}
	threads := cfg.Engine.Threads
	if threads == 0 && !onGPU(cfg.Engine) && cfg.Engine.Workers > 1 {
		threads = max(1, runtime.NumCPU()/cfg.Engine.Workers)
	}
	var ws []workers.Worker
	for _, device := range devices {
		for k := range cfg.Engine.Workers {
			e, err := engine.Open(engine.Config{Library: cfg.ORTLibrary, Models: cfg.Model.Files, Imgsz: cfg.Model.Imgsz,
				Provider: cfg.Engine.Provider, Threads: threads, DeviceID: device, FP16: cfg.Engine.FP16,
				Spin: cfg.Engine.Spin, CacheDir: cfg.Engine.CacheDir})
			if err != nil {
				for _, w := range ws {
					w.Engine.Close()
				}
				return nil, err
			}
			name := fmt.Sprintf("cpu/%d", k)
			if onGPU(cfg.Engine) {
				name = fmt.Sprintf("cuda:%d/%d", device, k)
			}
			if threads > 0 {
				name += fmt.Sprintf(" threads %d", threads)
			}
			ws = append(ws, workers.Worker{Name: name, Engine: e})
		}
	}
	return workers.New(ws)
}

// every runs f now and then at each interval until ctx is done.
func every(ctx context.Context, interval time.Duration, f func()) {
	for {
		f()
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func openCache(cfg config.Redis, log *slog.Logger) (cache.Cache, func()) {
	if !cfg.Enabled {
		return cache.Disabled{}, func() {}
	}
	r := cache.NewRedis(cfg.Addr, cfg.TTL.Duration, cfg.Timeout.Duration)
	r.OnError = func(op string, err error) {
		log.Warn("redis unavailable; serving without the cache", "op", op, "error", err)
	}
	return r, func() {
		r.Close()
		if n := r.Dropped(); n > 0 {
			log.Info("answers not cached: the cache's backlog was full", "dropped", n)
		}
	}
}

// backend is what GET /v1/model names as the engine: the OpenVINO provider runs OpenVINO's own CPU plugin.
func backend(e config.Engine) string {
	if e.Provider == "openvino" {
		return "openvino"
	}
	return "onnxruntime"
}

// onGPU: the CUDA and TensorRT providers run on an NVIDIA GPU; cpu and openvino on the CPU.
func onGPU(e config.Engine) bool { return e.Provider == "cuda" || e.Provider == "tensorrt" }

func serverOptions(cfg config.Config) api.Options {
	info := api.ModelInfo{Name: cfg.Model.Name, Version: cfg.Model.Version, Task: cfg.Model.Task,
		Names: cfg.Model.Names, Imgsz: cfg.Model.Imgsz, Engine: api.EngineInfo{Backend: backend(cfg.Engine),
			Precision: cfg.Engine.Precision, Batch: maxBatch(cfg.Model.Files, cfg.Batcher.MaxBatchSize),
			Device: device(cfg.Engine), MaxBatchSize: cfg.Batcher.MaxBatchSize,
			BatchWaitMS: float64(cfg.Batcher.BatchWait.Microseconds()) / 1000}}
	opts := api.Options{Info: info, MaxBody: int64(cfg.Limits.MaxBodyMB * (1 << 20)),
		RequestTimeout: cfg.Limits.RequestTimeout.Duration, RetryAfter: cfg.Limits.RetryAfterS,
		AuthRequired: cfg.Auth.Required, Batcher: batcher.Options{MaxBatch: cfg.Batcher.MaxBatchSize,
			MaxWait: cfg.Batcher.BatchWait.Duration, MaxQueue: cfg.Batcher.MaxQueue, Workers: cfg.Batcher.Workers}}
	if cfg.Streams.URL != "" {
		opts.StreamsURL, _ = url.Parse(cfg.Streams.URL) // Validate has checked it
	}
	return opts
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
	if !onGPU(e) {
		return "cpu"
	}
	return fmt.Sprintf("cuda:%d", e.DeviceID)
}

// startCPUProfile writes Go's CPU profile of the whole run to path, until the returned function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("YOLOFORGE_CPU_PROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("YOLOFORGE_CPU_PROFILE: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
