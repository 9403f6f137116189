// Package config reads config.yaml and applies YOLOFORGE_* environment overrides (what docker-compose sets).
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole server configuration.
type Config struct {
	Listen     string   `yaml:"listen"`
	ORTLibrary string   `yaml:"ort_library"`
	Model      Model    `yaml:"model"`
	Engine     Engine   `yaml:"engine"`
	Batcher    Batcher  `yaml:"batcher"`
	Limits     Limits   `yaml:"limits"`
	Auth       Auth     `yaml:"auth"`
	Redis      Redis    `yaml:"redis"`
	Postgres   Postgres `yaml:"postgres"`
	Streams    Streams  `yaml:"streams"`
	LogLevel   string   `yaml:"log_level"`
	Shutdown   Duration `yaml:"shutdown_timeout"`
}

// Model describes the served model.
type Model struct {
	Name    string         `yaml:"name"`
	Version string         `yaml:"version"` // first 12 hex digits of the model file's sha256
	Task    string         `yaml:"task"`
	Imgsz   int            `yaml:"imgsz"`
	Names   []string       `yaml:"names"`
	Files   map[int]string `yaml:"files"` // batch size → ONNX file (0: dynamic batch)
}

// Engine is the ONNX Runtime configuration.
type Engine struct {
	Provider  string `yaml:"provider"` // cpu, openvino, cuda, tensorrt
	Precision string `yaml:"precision"`
	Threads   int    `yaml:"threads"`
	DeviceID  int    `yaml:"device_id"`
	FP16      bool   `yaml:"fp16"`
	Spin      bool   `yaml:"spin"` // idle ONNX Runtime threads spin: lower latency, less CPU for requests
	CacheDir  string `yaml:"cache_dir"`
	// Workers is the number of engine copies per device, fed by one batcher queue; on a CPU each takes
	// Threads threads (0: the cores shared out between the copies)
	Workers int `yaml:"workers"`
	// Devices are the GPUs to run workers on (CUDA, TensorRT); empty: device_id alone
	Devices []int `yaml:"devices"`
}

// Batcher bounds dynamic batching.
type Batcher struct {
	MaxBatchSize int      `yaml:"max_batch_size"`
	BatchWait    Duration `yaml:"batch_wait"`
	MaxQueue     int      `yaml:"max_queue"`
	Workers      int      `yaml:"workers"`
}

// Limits protect the server.
type Limits struct {
	MaxBodyMB      float64  `yaml:"max_body_mb"`
	RequestTimeout Duration `yaml:"request_timeout"`
	RetryAfterS    int      `yaml:"retry_after_s"`
}

// Auth says where API keys come from: Postgres (hashed) and/or YOLOFORGE_API_KEYS.
type Auth struct {
	Required bool     `yaml:"required"`
	Keys     []string `yaml:"keys"` // plain keys from the environment; hashed at start
	Refresh  Duration `yaml:"refresh"`
}

// Redis is the answer cache.
type Redis struct {
	Enabled bool     `yaml:"enabled"`
	Addr    string   `yaml:"addr"`
	TTL     Duration `yaml:"ttl"`
	Timeout Duration `yaml:"timeout"`
}

// Postgres keeps API keys and the inference log.
type Postgres struct {
	Enabled        bool     `yaml:"enabled"`
	DSN            string   `yaml:"dsn"`
	LogBatch       int      `yaml:"log_batch"`
	LogInterval    Duration `yaml:"log_interval"`
	LogBuffer      int      `yaml:"log_buffer"`
	ConnectTimeout Duration `yaml:"connect_timeout"`
}

// Streams is the bundle's stream service, which the server fronts on its own origin and keys.
type Streams struct {
	// URL of the stream service (http://streams:8100 in docker-compose); empty: the server has no stream routes
	URL string `yaml:"url"`
}

// Duration reads "250ms", "5s", or a number of seconds.
type Duration struct{ time.Duration }

// UnmarshalYAML accepts Go durations and plain seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the Go form.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. 250ms, 5s, 1m)", s)
	}
	return v, nil
}

// Default is the configuration a missing field takes.
func Default() Config {
	return Config{
		Listen:  ":8080",
		Engine:  Engine{Provider: "cpu", Precision: "fp32", Workers: 1},
		Batcher: Batcher{MaxBatchSize: 8, BatchWait: Duration{5 * time.Millisecond}, MaxQueue: 64, Workers: 1},
		Limits:  Limits{MaxBodyMB: 10, RequestTimeout: Duration{30 * time.Second}, RetryAfterS: 1},
		Auth:    Auth{Required: true, Refresh: Duration{30 * time.Second}},
		Redis:   Redis{Enabled: true, Addr: "localhost:6379", TTL: Duration{time.Hour}, Timeout: Duration{100 * time.Millisecond}},
		Postgres: Postgres{Enabled: true, DSN: "postgres://yoloforge:yoloforge@localhost:5432/yoloforge?sslmode=disable",
			LogBatch: 500, LogInterval: Duration{time.Second}, LogBuffer: 10000, ConnectTimeout: Duration{2 * time.Second}},
		LogLevel: "info",
		Shutdown: Duration{15 * time.Second},
	}
}

// Load reads path over the defaults, applies the environment and checks the result. Relative model paths are
// relative to the config file.
func Load(path string, env func(string) (string, bool)) (Config, error) {
	cfg := Default()
	if err := cfg.decodeFile(path); err != nil {
		return cfg, err
	}
	if err := applyEnv(&cfg, env); err != nil {
		return cfg, err
	}
	base := filepath.Dir(path)
	for b, f := range cfg.Model.Files {
		if !filepath.IsAbs(f) {
			cfg.Model.Files[b] = filepath.Join(base, f)
		}
	}
	if cfg.ORTLibrary != "" && !filepath.IsAbs(cfg.ORTLibrary) {
		cfg.ORTLibrary = filepath.Join(base, cfg.ORTLibrary)
	}
	return cfg, cfg.Validate()
}

// decodeFile reads the settings of the file at path over cfg; a key the server does not know is an error.
func (cfg *Config) decodeFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Overrides lists the environment variables Load reads, for the README and the .env example.
var Overrides = []string{
	"YOLOFORGE_LISTEN", "YOLOFORGE_ORT_LIBRARY", "YOLOFORGE_API_KEYS", "YOLOFORGE_AUTH_REQUIRED",
	"YOLOFORGE_REDIS_ADDR", "YOLOFORGE_REDIS_ENABLED", "YOLOFORGE_CACHE_TTL",
	"YOLOFORGE_POSTGRES_DSN", "YOLOFORGE_POSTGRES_ENABLED", "YOLOFORGE_ENGINE_PROVIDER", "YOLOFORGE_ENGINE_THREADS", "YOLOFORGE_ENGINE_WORKERS", "YOLOFORGE_ENGINE_SPIN",
	"YOLOFORGE_MAX_BATCH_SIZE", "YOLOFORGE_BATCH_WAIT", "YOLOFORGE_MAX_QUEUE", "YOLOFORGE_MAX_BODY_MB",
	"YOLOFORGE_REQUEST_TIMEOUT", "YOLOFORGE_LOG_LEVEL",
}

func applyEnv(cfg *Config, env func(string) (string, bool)) error {
	var errs []error
	str := func(name string, dst *string) {
		if v, ok := env(name); ok {
			*dst = v
		}
	}
	boolean := func(name string, dst *bool) {
		if v, ok := env(name); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: want true or false", name, v))
				return
			}
			*dst = b
		}
	}
	integer := func(name string, dst *int) {
		if v, ok := env(name); ok {
			i, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: want a whole number", name, v))
				return
			}
			*dst = i
		}
	}
	duration := func(name string, dst *Duration) {
		if v, ok := env(name); ok {
			d, err := parseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				return
			}
			dst.Duration = d
		}
	}
	str("YOLOFORGE_LISTEN", &cfg.Listen)
	str("YOLOFORGE_ORT_LIBRARY", &cfg.ORTLibrary)
	if v, ok := env("YOLOFORGE_API_KEYS"); ok {
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				cfg.Auth.Keys = append(cfg.Auth.Keys, k)
			}
		}
	}
	boolean("YOLOFORGE_AUTH_REQUIRED", &cfg.Auth.Required)
	str("YOLOFORGE_REDIS_ADDR", &cfg.Redis.Addr)
	boolean("YOLOFORGE_REDIS_ENABLED", &cfg.Redis.Enabled)
	duration("YOLOFORGE_CACHE_TTL", &cfg.Redis.TTL)
	str("YOLOFORGE_POSTGRES_DSN", &cfg.Postgres.DSN)
	boolean("YOLOFORGE_POSTGRES_ENABLED", &cfg.Postgres.Enabled)
	str("YOLOFORGE_ENGINE_PROVIDER", &cfg.Engine.Provider)
	integer("YOLOFORGE_ENGINE_THREADS", &cfg.Engine.Threads)
	integer("YOLOFORGE_ENGINE_WORKERS", &cfg.Engine.Workers)
	boolean("YOLOFORGE_ENGINE_SPIN", &cfg.Engine.Spin)
	integer("YOLOFORGE_MAX_BATCH_SIZE", &cfg.Batcher.MaxBatchSize)
	duration("YOLOFORGE_BATCH_WAIT", &cfg.Batcher.BatchWait)
	integer("YOLOFORGE_MAX_QUEUE", &cfg.Batcher.MaxQueue)
	if v, ok := env("YOLOFORGE_MAX_BODY_MB"); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("YOLOFORGE_MAX_BODY_MB=%q: want a number", v))
		} else {
			cfg.Limits.MaxBodyMB = f
		}
	}
	duration("YOLOFORGE_REQUEST_TIMEOUT", &cfg.Limits.RequestTimeout)
	str("YOLOFORGE_STREAMS_URL", &cfg.Streams.URL)
	str("YOLOFORGE_LOG_LEVEL", &cfg.LogLevel)
	return errors.Join(errs...)
}

// Validate names every wrong field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}
	switch c.Model.Task {
	case "detect", "segment", "classify":
	default:
		bad("model.task", "%q is not detect, segment or classify", c.Model.Task)
	}
	if c.Model.Imgsz < 32 {
		bad("model.imgsz", "%d is below 32", c.Model.Imgsz)
	}
	if len(c.Model.Names) == 0 {
		bad("model.names", "the class names are missing")
	}
	if len(c.Model.Files) == 0 {
		bad("model.files", "no ONNX file (batch size: path)")
	}
	for b, f := range c.Model.Files {
		if b < 0 {
			bad("model.files", "batch %d is negative", b)
		}
		if _, err := os.Stat(f); err != nil {
			bad("model.files", "batch %d: %v", b, err)
		}
	}
	switch c.Engine.Provider {
	case "cpu", "openvino", "cuda", "tensorrt":
	default:
		bad("engine.provider", "%q is not cpu, openvino, cuda or tensorrt", c.Engine.Provider)
	}
	if c.Engine.Workers < 1 {
		bad("engine.workers", "%d is below 1 (engine copies per device)", c.Engine.Workers)
	}
	for _, d := range c.Engine.Devices {
		if d < 0 {
			bad("engine.devices", "GPU %d is negative", d)
		}
	}
	if c.ORTLibrary == "" {
		bad("ort_library", "the path of libonnxruntime.so is missing (or set YOLOFORGE_ORT_LIBRARY)")
	}
	if c.Batcher.MaxBatchSize < 1 {
		bad("batcher.max_batch_size", "%d is below 1", c.Batcher.MaxBatchSize)
	}
	if c.Batcher.MaxQueue < 1 {
		bad("batcher.max_queue", "%d is below 1", c.Batcher.MaxQueue)
	}
	if c.Batcher.BatchWait.Duration < 0 {
		bad("batcher.batch_wait", "is negative")
	}
	if c.Limits.MaxBodyMB <= 0 {
		bad("limits.max_body_mb", "%g is not positive", c.Limits.MaxBodyMB)
	}
	if c.Limits.RequestTimeout.Duration <= 0 {
		bad("limits.request_timeout", "is not positive")
	}
	if c.Streams.URL != "" {
		if u, err := url.Parse(c.Streams.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("streams.url", "%q is not an http(s) URL such as http://streams:8100", c.Streams.URL)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "%q is not debug, info, warn or error", c.LogLevel)
	}
	return errors.Join(errs...)
}
